//! The engine as callers hold it: started on a model (sizing its KV cache), it prepares
//! and queues requests, hands back their token streams, and stops.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::unbounded_channel;
use vlm_core::SamplingParams;
use vlm_models::preprocess::PixelBudget;
use vlm_models::{ModelError, PreparedPrompt, VlmModel};

use crate::config::EngineConfig;
use crate::constraint::{Grammar, GrammarCompiler, OutputFormat};
use crate::error::EngineError;
use crate::kv_cache::{BlockHasher, KvLayout, PagedKvCache};
use crate::metrics::EngineStats;
use crate::output::TextStream;
use crate::request::{GenerationRequest, RequestInput};
use crate::sampler::Sampler;
use crate::sequence::{Request, Sequence};
use crate::stream::RequestStream;
use crate::worker::{Command, Worker};

/// A running engine: the model, the engine thread that owns its compute, and the channel
/// to it. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    model: Arc<VlmModel>,
    commands: Mutex<Sender<Command>>,
    stats: Arc<Mutex<EngineStats>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_request: AtomicU64,
    next_sequence: AtomicUsize,
    max_model_len: usize,
    capacity_tokens: usize,
    /// Built on the first structured-output request (a trie over the vocabulary), or why
    /// this model's outputs cannot be constrained.
    grammars: OnceLock<Result<GrammarCompiler, String>>,
}

impl Engine {
    /// Sizes the KV cache from `config.kv_cache_gb`, logs its capacity, and starts the
    /// engine thread, which owns the model's compute from now on.
    pub fn start(model: Arc<VlmModel>, config: EngineConfig) -> Result<Self, EngineError> {
        if config.block_size == 0 || config.max_num_seqs == 0 || config.max_batched_tokens == 0 {
            return Err(EngineError::Config(
                "block_size, max_num_seqs and max_batched_tokens must be positive".into(),
            ));
        }
        if !(config.kv_cache_gb.is_finite() && config.kv_cache_gb > 0.0) {
            return Err(EngineError::Config(format!(
                "kv_cache_gb must be positive, got {}",
                config.kv_cache_gb
            )));
        }
        let layout = KvLayout::for_model(&model);
        let blocks = (config.kv_cache_gb * (1u64 << 30) as f64
            / layout.bytes_per_block(config.block_size) as f64) as usize;
        if blocks == 0 {
            return Err(EngineError::Config(format!(
                "kv_cache_gb {} holds not even one block of {} tokens",
                config.kv_cache_gb, config.block_size
            )));
        }
        let max_model_len = config
            .max_model_len
            .unwrap_or(usize::MAX)
            .min(model.max_position_embeddings());
        let capacity_tokens = blocks.checked_mul(config.block_size).ok_or_else(|| {
            EngineError::Config(format!(
                "kv_cache_gb {} is more memory than this machine can address",
                config.kv_cache_gb
            ))
        })?;
        let text = model.text_config();
        // Per token of a step: the residual stream, norms and attention output (hidden
        // each), queries, keys and values, and the MLP's gate, up and product; plus the
        // logits of every running sequence. f32 on the CPU paths.
        let per_token = 4 * text.hidden_size
            + (text.num_attention_heads + 2 * text.num_kv_heads()) * text.head_dim()
            + 3 * text.intermediate_size;
        let activation_bytes = (config.max_batched_tokens * per_token
            + config.max_num_seqs * text.vocab_size)
            * layout.dtype.size_in_bytes();
        tracing::info!(
            blocks,
            block_size = config.block_size,
            tokens = capacity_tokens,
            kv_cache_gib = format!(
                "{:.2}",
                (blocks * layout.bytes_per_block(config.block_size)) as f64 / (1u64 << 30) as f64
            ),
            step_activations_gib_estimated =
                format!("{:.2}", activation_bytes as f64 / (1u64 << 30) as f64),
            max_model_len,
            max_concurrency_at_max_len =
                format!("{:.2}", capacity_tokens as f64 / max_model_len as f64),
            "KV cache ready"
        );
        let kv = PagedKvCache::new(
            layout,
            blocks,
            config.block_size,
            &model.load_options().device,
        )
        .map_err(ModelError::from)?;
        let stats = Arc::new(Mutex::new(EngineStats {
            kv_blocks_total: blocks,
            block_size: config.block_size,
            ..EngineStats::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = Worker::new(
            model.clone(),
            &config,
            blocks,
            kv,
            stats.clone(),
            max_model_len,
            rx,
        );
        let thread = std::thread::Builder::new()
            .name("vlm-engine".into())
            .spawn(move || {
                // The engine thread drives the compute pool: keep it on the pool's first core.
                if let Some(core) =
                    crate::threads::thread_plan().and_then(|p| p.cores.as_ref()?.first().copied())
                {
                    let _ = crate::threads::pin_current_thread(core);
                }
                worker.run()
            })
            .map_err(|e| EngineError::Config(format!("cannot start the engine thread: {e}")))?;
        Ok(Self {
            model,
            commands: Mutex::new(tx),
            stats,
            thread: Mutex::new(Some(thread)),
            next_request: AtomicU64::new(1),
            next_sequence: AtomicUsize::new(1),
            max_model_len,
            capacity_tokens,
            grammars: OnceLock::new(),
        })
    }

    pub fn model(&self) -> &Arc<VlmModel> {
        &self.model
    }

    /// Whether the engine thread is still serving.
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    pub fn max_model_len(&self) -> usize {
        self.max_model_len
    }

    /// Tokens the KV cache holds in all.
    pub fn kv_capacity_tokens(&self) -> usize {
        self.capacity_tokens
    }

    pub fn stats(&self) -> EngineStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Prepares the request on the calling thread (template, tokenizer, image decoding),
    /// checks it can ever fit, and queues it. The stream yields its tokens; dropping it
    /// cancels the request.
    pub fn submit(&self, request: GenerationRequest) -> Result<RequestStream, EngineError> {
        request.sampling.validate()?;
        let grammar = request
            .format
            .as_ref()
            .map(|f| self.compile_format(f))
            .transpose()?;
        let prompt = self.prepare(request.input, request.pixel_budget)?;
        self.submit_constrained(prompt, request.sampling, grammar.as_ref())
    }

    /// Compiles a structured-output format for this model's vocabulary. Costly for a large
    /// schema (and the first time, which builds the vocabulary's trie): call it where
    /// blocking is fine, then pass the grammar to
    /// [`submit_constrained`](Self::submit_constrained).
    pub fn compile_format(&self, format: &OutputFormat) -> Result<Grammar, EngineError> {
        let compiler = self
            .grammars
            .get_or_init(|| {
                let vocab = self.model.text_config().vocab_size;
                let spellings = self
                    .model
                    .tokenizer()
                    .token_spellings(vocab)
                    .map_err(|e| e.to_string())?;
                GrammarCompiler::new(&spellings, self.model.eos_token_ids())
            })
            .as_ref()
            .map_err(|e| {
                EngineError::Format(format!("this model's outputs cannot be constrained: {e}"))
            })?;
        compiler.compile(format).map_err(EngineError::Format)
    }

    /// Templates, tokenizes and preprocesses an input without queueing it: callers that
    /// need the prompt length first (a default `max_tokens`, `/tokenize`) then pass the
    /// result to [`submit_prepared`](Self::submit_prepared).
    pub fn prepare(
        &self,
        input: RequestInput,
        pixel_budget: PixelBudget,
    ) -> Result<PreparedPrompt, EngineError> {
        Ok(match input {
            RequestInput::Chat(messages) => self.model.prepare_with(&messages, pixel_budget)?,
            RequestInput::Text(text) => PreparedPrompt {
                token_ids: self.model.tokenizer().encode(&text, true)?,
                text,
                images: Vec::new(),
                mrope: None,
            },
            RequestInput::Tokens(token_ids) => PreparedPrompt {
                text: String::new(),
                token_ids,
                images: Vec::new(),
                mrope: None,
            },
        })
    }

    /// The text of tokens, as the stream would produce it.
    pub fn detokenize(
        &self,
        ids: &[u32],
        skip_special_tokens: bool,
    ) -> Result<String, EngineError> {
        Ok(self.model.tokenizer().decode(ids, skip_special_tokens)?)
    }

    /// The model's name on disk (its directory).
    pub fn model_path(&self) -> &std::path::Path {
        self.model.snapshot().dir()
    }

    /// Queues an already prepared prompt.
    pub fn submit_prepared(
        &self,
        prompt: PreparedPrompt,
        params: SamplingParams,
    ) -> Result<RequestStream, EngineError> {
        self.submit_constrained(prompt, params, None)
    }

    /// Queues an already prepared prompt whose completions follow `grammar` (from
    /// [`compile_format`](Self::compile_format)), each with its own parser state.
    pub fn submit_constrained(
        &self,
        prompt: PreparedPrompt,
        params: SamplingParams,
        grammar: Option<&Grammar>,
    ) -> Result<RequestStream, EngineError> {
        params.validate()?;
        let prompt_len = prompt.token_ids.len();
        let vocab = self.model.text_config().vocab_size;
        if prompt_len == 0 {
            return Err(EngineError::Model(ModelError::InvalidRequest(
                "the prompt is empty".into(),
            )));
        }
        if let Some(bad) = prompt.token_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::Model(ModelError::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            ))));
        }
        // Image placeholder tokens get image features in place of their embeddings: only the
        // images of the prompt may supply them (typed into raw text or token ids, they would
        // fail the step).
        let image_token = self.model.image_token_id();
        let placeholders = prompt
            .token_ids
            .iter()
            .filter(|&&t| t == image_token)
            .count();
        let image_tokens: usize = prompt.images.iter().map(|i| i.num_tokens).sum();
        if placeholders != image_tokens {
            let spelled = self
                .model
                .tokenizer()
                .id_to_token(image_token)
                .unwrap_or_else(|| image_token.to_string());
            return Err(EngineError::Model(ModelError::InvalidRequest(format!(
                "the prompt holds {placeholders} image placeholder token(s) ({spelled}, id {image_token}) but its images fill {image_tokens}; send images as image parts of a chat message, not as placeholder tokens"
            ))));
        }
        let needed = prompt_len + params.max_tokens;
        if needed > self.max_model_len {
            return Err(EngineError::ExceedsContext {
                prompt: prompt_len,
                max_tokens: params.max_tokens,
                limit: self.max_model_len,
            });
        }
        if needed > self.capacity_tokens {
            return Err(EngineError::ExceedsKvCache {
                prompt: prompt_len,
                max_tokens: params.max_tokens,
                capacity: self.capacity_tokens,
            });
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (events, receiver) = unbounded_channel();
        let request = Arc::new(Request {
            id,
            prompt,
            params: params.clone(),
            events,
            arrived: Instant::now(),
        });
        let seqs = (0..params.n)
            .map(|index| Sequence {
                id: self.next_sequence.fetch_add(1, Ordering::Relaxed),
                request: request.clone(),
                index,
                output: Vec::new(),
                computed: 0,
                blocks: Vec::new(),
                hasher: BlockHasher::new(),
                indexed: 0,
                // n completions of one seeded request differ from each other but repeat.
                sampler: Sampler::new(&params, params.seed.map(|s| s.wrapping_add(index as u64))),
                constraint: grammar.map(Grammar::constraint),
                text: TextStream::new(
                    &params.stop,
                    params.include_stop_str_in_output,
                    params.skip_special_tokens,
                ),
                last_token_at: None,
            })
            .collect();
        self.send(Command::Submit(seqs))?;
        Ok(RequestStream::new(id, prompt_len, params.n, receiver))
    }

    /// Cancels a request; its stream ends with `FinishReason::Abort`.
    pub fn abort(&self, request_id: u64) -> Result<(), EngineError> {
        self.send(Command::Abort(request_id))
    }

    /// Stops the engine: with `drain`, in-flight requests finish first; otherwise they end
    /// with `FinishReason::Abort`. New submissions fail from now on. Waits for the thread.
    pub fn shutdown(&self, drain: bool) {
        let _ = self.send(Command::Shutdown { drain });
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }

    fn send(&self, command: Command) -> Result<(), EngineError> {
        if !self.is_running() {
            return Err(EngineError::Stopped);
        }
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(command)
            .map_err(|_| EngineError::Stopped)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}
