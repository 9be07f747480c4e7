//! The public face of the engine: start it on a model, submit requests, read token streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use vlm_core::{ChatMessage, FinishReason, SamplingParams, TokenEvent, Usage};
use vlm_models::preprocess::PixelBudget;
use vlm_models::{PreparedPrompt, VlmModel};

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::image_cache::ImageCache;
use crate::kv_cache::{BlockPool, KvLayout, PagedKvCache};
use crate::metrics::EngineStats;
use crate::sampler::Sampler;
use crate::scheduler::Scheduler;
use crate::sequence::{Request, Sequence};
use crate::text_stream::TextStream;
use crate::worker::{Command, Worker};

/// What to generate from.
#[derive(Debug, Clone)]
pub enum RequestInput {
    /// A conversation, templated with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is (with the tokenizer's special tokens, e.g. a BOS).
    Text(String),
    /// Token ids, used as is.
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub input: RequestInput,
    pub sampling: SamplingParams,
    /// Qwen2-VL's per-request `min_pixels` / `max_pixels`.
    pub pixel_budget: PixelBudget,
}

impl GenerationRequest {
    pub fn chat(messages: Vec<ChatMessage>, sampling: SamplingParams) -> Self {
        Self {
            input: RequestInput::Chat(messages),
            sampling,
            pixel_budget: PixelBudget::default(),
        }
    }
}

/// A running engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct EngineHandle {
    model: Arc<VlmModel>,
    commands: Mutex<Sender<Command>>,
    stats: Arc<Mutex<EngineStats>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_request: AtomicU64,
    next_sequence: AtomicUsize,
    max_model_len: usize,
    capacity_tokens: usize,
    /// Ids and text of the prefix [`token_text`](Self::token_text) decodes after.
    token_text_prefix: std::sync::OnceLock<(Vec<u32>, String)>,
}

pub struct Engine;

impl Engine {
    /// Sizes the KV cache from `config.kv_cache_gb`, logs its capacity, and starts the
    /// engine thread, which owns the model's compute from now on.
    pub fn start(model: Arc<VlmModel>, config: EngineConfig) -> Result<EngineHandle, EngineError> {
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
        let text = model.text_config();
        let options = model.load_options();
        let layout = KvLayout {
            layers: text.num_hidden_layers,
            kv_heads: text.num_kv_heads(),
            head_dim: text.head_dim(),
            dtype: options.dtype,
        };
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
        let capacity_tokens = blocks * config.block_size;
        tracing::info!(
            blocks,
            block_size = config.block_size,
            tokens = capacity_tokens,
            max_model_len,
            max_concurrency_at_max_len =
                format!("{:.2}", capacity_tokens as f64 / max_model_len as f64),
            "KV cache ready"
        );
        let kv = PagedKvCache::new(layout, blocks, config.block_size, &options.device)
            .map_err(vlm_models::ModelError::from)?;
        let stats = Arc::new(Mutex::new(EngineStats {
            kv_blocks_total: blocks,
            block_size: config.block_size,
            ..EngineStats::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = Worker {
            model: model.clone(),
            scheduler: Scheduler::new(config.max_num_seqs, config.max_batched_tokens),
            pool: BlockPool::new(blocks, config.block_size),
            kv,
            images: ImageCache::new(config.image_cache_entries),
            features: HashMap::new(),
            stats: stats.clone(),
            max_model_len,
            commands: rx,
        };
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
        Ok(EngineHandle {
            model,
            commands: Mutex::new(tx),
            stats,
            thread: Mutex::new(Some(thread)),
            next_request: AtomicU64::new(1),
            next_sequence: AtomicUsize::new(1),
            max_model_len,
            capacity_tokens,
            token_text_prefix: std::sync::OnceLock::new(),
        })
    }
}

impl EngineHandle {
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
        let prompt = self.prepare(request.input, request.pixel_budget)?;
        self.submit_prepared(prompt, request.sampling)
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

    /// One token's own text (for logprobs), special tokens included, with the leading
    /// space it has mid-sentence: decoders drop a first token's space (Metaspace), so the
    /// token is decoded after a fixed one-letter prefix that is then cut off.
    pub fn token_text(&self, id: u32) -> String {
        let tokenizer = self.model.tokenizer();
        let (prefix, head) = self.token_text_prefix.get_or_init(|| {
            let ids = tokenizer.encode("a", false).unwrap_or_default();
            let head = tokenizer.decode(&ids, false).unwrap_or_default();
            (ids, head)
        });
        let mut ids = prefix.clone();
        ids.push(id);
        match tokenizer.decode(&ids, false) {
            Ok(text) if !head.is_empty() && text.starts_with(head.as_str()) => {
                text[head.len()..].to_string()
            }
            _ => tokenizer.decode(&[id], false).unwrap_or_default(),
        }
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
        params.validate()?;
        let prompt_len = prompt.token_ids.len();
        let vocab = self.model.text_config().vocab_size;
        if prompt_len == 0 {
            return Err(EngineError::Model(vlm_models::ModelError::InvalidRequest(
                "the prompt is empty".into(),
            )));
        }
        if let Some(bad) = prompt.token_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::Model(vlm_models::ModelError::InvalidRequest(
                format!("token id {bad} is outside the vocabulary of {vocab}"),
            )));
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
                // n completions of one seeded request differ from each other but repeat.
                sampler: Sampler::new(&params, params.seed.map(|s| s.wrapping_add(index as u64))),
                text: TextStream::new(
                    &params.stop,
                    params.include_stop_str_in_output,
                    params.skip_special_tokens,
                ),
                last_token_at: None,
            })
            .collect();
        self.send(Command::Submit(seqs))?;
        Ok(RequestStream {
            id,
            prompt_tokens: prompt_len,
            n: params.n,
            receiver,
        })
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

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// One completion collected from a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub index: usize,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub logprobs: Vec<f32>,
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
    pub finish_reason: FinishReason,
}

/// The tokens of one request, as they are generated. Dropping it cancels the request.
pub struct RequestStream {
    pub id: u64,
    pub prompt_tokens: usize,
    n: usize,
    receiver: UnboundedReceiver<TokenEvent>,
}

impl RequestStream {
    /// The next event; `None` once every completion has finished.
    pub async fn next(&mut self) -> Option<TokenEvent> {
        self.receiver.recv().await
    }

    /// [`next`](Self::next) for callers outside an async runtime.
    pub fn next_blocking(&mut self) -> Option<TokenEvent> {
        self.receiver.blocking_recv()
    }

    /// Waits for every completion (blocking) and returns them in index order, with usage.
    pub fn collect_blocking(mut self) -> (Vec<Completion>, Usage) {
        let mut collector = Collector::new(self.n, self.prompt_tokens);
        while !collector.done() {
            match self.next_blocking() {
                Some(event) => collector.push(event),
                None => break,
            }
        }
        collector.finish()
    }

    /// How many completions the request asked for (`n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Every completion, awaited.
    pub async fn collect(mut self) -> (Vec<Completion>, Usage) {
        let mut collector = Collector::new(self.n, self.prompt_tokens);
        while !collector.done() {
            match self.next().await {
                Some(event) => collector.push(event),
                None => break,
            }
        }
        collector.finish()
    }
}

/// Folds a request's events into its completions.
struct Collector {
    completions: Vec<Completion>,
    usage: Usage,
    open: usize,
}

impl Collector {
    fn new(n: usize, prompt_tokens: usize) -> Self {
        Self {
            completions: (0..n)
                .map(|index| Completion {
                    index,
                    token_ids: Vec::new(),
                    text: String::new(),
                    logprobs: Vec::new(),
                    top_logprobs: Vec::new(),
                    finish_reason: FinishReason::Abort,
                })
                .collect(),
            usage: Usage {
                prompt_tokens,
                completion_tokens: 0,
            },
            open: n,
        }
    }

    fn done(&self) -> bool {
        self.open == 0
    }

    fn push(&mut self, event: TokenEvent) {
        let Some(c) = self.completions.get_mut(event.index) else {
            return;
        };
        // An abort event carries no token, only text that was held back.
        if event.finish_reason != Some(FinishReason::Abort) {
            c.token_ids.push(event.token_id);
            c.logprobs.push(event.logprob);
            c.top_logprobs.push(event.top_logprobs);
        }
        c.text.push_str(&event.text);
        if let Some(reason) = event.finish_reason {
            c.finish_reason = reason;
            self.usage.completion_tokens += event.usage.map_or(0, |u| u.completion_tokens);
            self.open -= 1;
        }
    }

    fn finish(self) -> (Vec<Completion>, Usage) {
        (self.completions, self.usage)
    }
}
