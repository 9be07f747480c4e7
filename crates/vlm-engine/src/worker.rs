//! The engine thread: owns the model and the KV cache, runs one batched step after another,
//! and streams each sequence's tokens to its caller.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::Tensor;
use vlm_core::{FinishReason, TokenEvent, Usage};
use vlm_models::decoder::KvCache;
use vlm_models::{LogitRows, ModelError, SeqStep, VlmModel};

use crate::config::EngineConfig;
use crate::image_cache::ImageCache;
use crate::kv_cache::{BlockPool, PagedKvCache};
use crate::metrics::EngineStats;
use crate::output::LogprobText;
use crate::scheduler::{Planned, Scheduler};
use crate::sequence::Sequence;

pub(crate) enum Command {
    Submit(Vec<Sequence>),
    Abort(u64),
    /// Stop taking work; finish what is in flight (`drain`) or abort it.
    Shutdown {
        drain: bool,
    },
}

/// How a sequence leaves the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exit {
    /// Its last token event (stop or length) has been sent.
    Finished,
    /// Cancelled, disconnected or shut down: its stream still needs its end.
    Aborted,
    /// Its own work failed (an error or a panic in its step): its stream ends with the
    /// error, and no other sequence is touched.
    Failed(String),
}

pub(crate) struct Worker {
    model: Arc<VlmModel>,
    scheduler: Scheduler,
    pool: BlockPool,
    kv: PagedKvCache,
    images: ImageCache,
    /// Stacked image features of requests being prefilled, by request id.
    features: HashMap<u64, Option<Tensor>>,
    logprob_text: LogprobText,
    stats: Arc<Mutex<EngineStats>>,
    max_model_len: usize,
    commands: Receiver<Command>,
    /// See [`EngineConfig::fail_steps_with_token`].
    fail_steps_with_token: Option<u32>,
}

impl Worker {
    pub fn new(
        model: Arc<VlmModel>,
        config: &EngineConfig,
        blocks: usize,
        kv: PagedKvCache,
        stats: Arc<Mutex<EngineStats>>,
        max_model_len: usize,
        commands: Receiver<Command>,
    ) -> Self {
        Self {
            logprob_text: LogprobText::new(model.tokenizer()),
            scheduler: Scheduler::new(
                config.max_num_seqs,
                config.max_batched_tokens,
                model.image_token_id(),
            ),
            model,
            pool: BlockPool::new(blocks, config.block_size, config.enable_prefix_caching),
            kv,
            images: ImageCache::new(config.image_cache_entries),
            features: HashMap::new(),
            stats,
            max_model_len,
            commands,
            fail_steps_with_token: config.fail_steps_with_token,
        }
    }

    pub fn run(mut self) {
        let mut draining = false;
        loop {
            // Block for work when idle; otherwise take whatever has arrived.
            let command = if self.scheduler.is_idle() {
                if draining {
                    break;
                }
                match self.commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        draining = true;
                        None
                    }
                }
            };
            if let Some(command) = command {
                match command {
                    Command::Submit(seqs) => self.scheduler.submit(seqs),
                    Command::Abort(request) => self.abort(|s| s.request.id == request),
                    Command::Shutdown { drain } => {
                        draining = true;
                        if !drain {
                            self.abort(|_| true);
                        }
                    }
                }
                self.publish_stats();
                continue;
            }
            self.abort(|s| s.request.events.is_closed());
            // A step fails its requests one by one; a panic outside any request's own work
            // (scheduling) fails the running ones, and the engine goes on.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.step())) {
                let message = format!("engine step failed: {}", panic_message(&*panic));
                tracing::error!("{message}; failing the running requests");
                let running = self.scheduler.running_requests();
                for seq in self
                    .scheduler
                    .remove_where(|s| running.contains(&s.request.id))
                {
                    self.retire(seq, Exit::Failed(message.clone()));
                }
            }
            self.publish_stats();
        }
        self.abort(|_| true);
        self.publish_stats();
    }

    fn publish_stats(&self) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.running = self.scheduler.num_running();
        stats.waiting = self.scheduler.num_waiting();
        stats.kv_blocks_used = self.pool.used();
        stats.kv_blocks_total = self.pool.total();
        stats.kv_blocks_cached = self.pool.cached_count();
        stats.block_size = self.pool.block_size();
    }

    /// Removes matching sequences and retires them as aborted.
    fn abort(&mut self, matches: impl Fn(&Sequence) -> bool) {
        for seq in self.scheduler.remove_where(matches) {
            self.retire(seq, Exit::Aborted);
        }
    }

    /// The one way a sequence leaves the engine: its KV blocks go back to the pool, its
    /// request's image features are dropped once no sequence of it remains, it is counted,
    /// and an aborted one's stream ends (a finished one's last token event already did).
    fn retire(&mut self, mut seq: Sequence, exit: Exit) {
        self.pool.release(&mut seq.blocks);
        self.kv.remove(seq.id);
        let error = match &exit {
            Exit::Failed(message) => Some(message.clone()),
            _ => None,
        };
        if exit != Exit::Finished {
            let usage = Usage {
                prompt_tokens: seq.prompt_len(),
                completion_tokens: seq.output.len(),
            };
            let _ = seq.request.events.send(TokenEvent {
                index: seq.index,
                token_id: 0,
                text: seq.text.flush(),
                logprob: 0.0,
                token: String::new(),
                top_logprobs: Vec::new(),
                finish_reason: Some(FinishReason::Abort),
                usage: Some(usage),
                error,
            });
        }
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            match exit {
                Exit::Aborted | Exit::Failed(_) => stats.aborted_requests += 1,
                Exit::Finished => stats.finished_requests += 1,
            }
        }
        if !self.scheduler.has_request(seq.request.id) {
            self.features.remove(&seq.request.id);
        }
    }

    /// Features of every image of the request, stacked in prompt order, from the cache or
    /// encoded now (all missing images of the request in one batch).
    fn request_features(&mut self, seq_index: usize) -> Result<Option<Tensor>, ModelError> {
        let request = self.scheduler.running()[seq_index].request.clone();
        if let Some(f) = self.features.get(&request.id) {
            return Ok(f.clone());
        }
        let images = &request.prompt.images;
        let mut found: Vec<Option<Tensor>> =
            images.iter().map(|i| self.images.get(&i.key)).collect();
        let missing: Vec<usize> = (0..images.len()).filter(|&i| found[i].is_none()).collect();
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.image_cache_hits += (images.len() - missing.len()) as u64;
            stats.image_cache_misses += missing.len() as u64;
        }
        if !missing.is_empty() {
            // One image repeated in a prompt is encoded once.
            let mut unique: Vec<usize> = Vec::new();
            for &i in &missing {
                if !unique.iter().any(|&u| images[u].key == images[i].key) {
                    unique.push(i);
                }
            }
            let batch: Vec<_> = unique.iter().map(|&i| &images[i]).collect();
            let encoded = self.model.encode_images(&batch)?;
            for (&i, features) in unique.iter().zip(encoded) {
                self.images.insert(images[i].key, features.clone());
                for &j in &missing {
                    if images[j].key == images[i].key {
                        found[j] = Some(features.clone());
                    }
                }
            }
        }
        let stacked = if found.is_empty() {
            None
        } else {
            let parts: Vec<Tensor> = found
                .into_iter()
                .map(|f| f.expect("filled above"))
                .collect();
            Some(Tensor::cat(&parts, 0)?)
        };
        self.features.insert(request.id, stacked.clone());
        Ok(stacked)
    }

    /// One batched step. Whatever fails in one sequence's own work (its images, its
    /// forward, its sampling) fails that sequence alone: a failed batched forward is run
    /// again one sequence at a time (rewriting the same KV positions) to find which.
    fn step(&mut self) {
        let step = self.scheduler.schedule(&mut self.pool);
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.preemptions += step.preempted as u64;
            stats.prefix_cache_queries += step.prefix_queries as u64;
            stats.prefix_cache_hits += step.prefix_hits as u64;
        }
        if step.preempted > 0 {
            tracing::debug!(
                preempted = step.preempted,
                "out of KV blocks: preempted sequences to recompute later"
            );
        }
        let plan = step.planned;
        if plan.is_empty() {
            return;
        }
        let mut exits: Vec<(usize, Exit)> = Vec::new();
        // Image features for every prefill chunk that covers image tokens.
        let mut ready = Vec::with_capacity(plan.len());
        for p in plan {
            match self.chunk_features(&p) {
                Ok(features) => ready.push((p, features)),
                Err(e) => exits.push((p.seq, Exit::Failed(e.to_string()))),
            }
        }
        let rows: Vec<Result<Vec<f32>, String>> = match self.forward(&ready) {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) if ready.len() > 1 => {
                tracing::warn!(error = %e, "batched step failed; running its sequences one by one");
                (0..ready.len())
                    .map(|i| {
                        self.forward(&ready[i..=i])
                            .map(|mut rows| rows.swap_remove(0))
                    })
                    .collect()
            }
            Err(e) => vec![Err(e)],
        };
        let now = Instant::now();
        for ((p, _), row) in ready.iter().zip(rows) {
            let logits = match row {
                Ok(logits) => logits,
                Err(e) => {
                    tracing::error!(error = %e, "a sequence's step failed; failing its request");
                    exits.push((p.seq, Exit::Failed(e)));
                    continue;
                }
            };
            let prompt_len = self.scheduler.running()[p.seq].prompt_len();
            if p.range.start < prompt_len {
                self.stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .prompt_tokens += (p.range.end.min(prompt_len) - p.range.start) as u64;
            }
            self.scheduler.advance(p.seq, p.range.end, &mut self.pool);
            if self.scheduler.running()[p.seq].pending() > 0 {
                continue; // a prefill chunk; the prompt is not complete yet
            }
            match catch_unwind(AssertUnwindSafe(|| self.sample(p.seq, &logits, now))) {
                Ok(Ok(true)) => exits.push((p.seq, Exit::Finished)),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "a sequence cannot go on; failing its request");
                    exits.push((p.seq, Exit::Failed(e)));
                }
                Err(panic) => exits.push((
                    p.seq,
                    Exit::Failed(format!("sampling failed: {}", panic_message(&*panic))),
                )),
            }
        }
        let indices = exits.iter().map(|(i, _)| *i).collect();
        for (index, seq) in self.scheduler.finish(indices) {
            if let Some((_, exit)) = exits.iter().find(|(i, _)| *i == index) {
                self.retire(seq, exit.clone());
            }
        }
    }

    /// The forward of some planned chunks, one logits row per chunk; an error or a panic
    /// comes back as its message.
    fn forward(&mut self, items: &[(Planned, Option<Tensor>)]) -> Result<Vec<Vec<f32>>, String> {
        let running = self.scheduler.running();
        if let Some(token) = self.fail_steps_with_token {
            if items
                .iter()
                .any(|(p, _)| running[p.seq].request.prompt.token_ids.contains(&token))
            {
                return Err(format!("injected fault: token {token} in the step"));
            }
        }
        let mut steps: Vec<SeqStep<'_>> = Vec::new();
        // The step row whose logits finish each planned sequence (if it is complete).
        let mut last_step = Vec::with_capacity(items.len());
        for (p, features) in items {
            let seq = &running[p.seq];
            self.kv.set_table(seq.id, &seq.blocks);
            let prompt = &seq.request.prompt;
            let prompt_len = prompt.token_ids.len();
            let (start, end) = (p.range.start, p.range.end);
            if start < prompt_len {
                steps.push(prompt.prefill_step(
                    seq.id,
                    start..end.min(prompt_len),
                    features.clone(),
                ));
            }
            if end > prompt_len {
                let from = start.max(prompt_len);
                let tokens = &seq.output[from - prompt_len..end - prompt_len];
                steps.push(prompt.decode_step(seq.id, from, tokens));
            }
            last_step.push(steps.len() - 1);
        }
        let (model, kv) = (&self.model, &mut self.kv);
        let run = || -> Result<Vec<Vec<f32>>, ModelError> {
            let logits = model.forward(&steps, kv as &mut dyn KvCache, LogitRows::LastPerSeq)?;
            let mut rows = logits.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
            Ok(last_step
                .iter()
                .map(|&r| std::mem::take(&mut rows[r]))
                .collect())
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(rows) => rows.map_err(|e| e.to_string()),
            Err(panic) => Err(format!("the model panicked: {}", panic_message(&*panic))),
        }
    }

    /// The image-feature rows a planned chunk needs (its image tokens, in order).
    fn chunk_features(&mut self, p: &Planned) -> Result<Option<Tensor>, ModelError> {
        let seq = &self.scheduler.running()[p.seq];
        let prompt = &seq.request.prompt;
        let image_token = self.model.image_token_id();
        let end = p.range.end.min(prompt.token_ids.len());
        if p.range.start >= end {
            return Ok(None);
        }
        let before = prompt.token_ids[..p.range.start]
            .iter()
            .filter(|&&t| t == image_token)
            .count();
        let inside = prompt.token_ids[p.range.start..end]
            .iter()
            .filter(|&&t| t == image_token)
            .count();
        if inside == 0 {
            return Ok(None);
        }
        let all = self.request_features(p.seq)?.ok_or_else(|| {
            ModelError::InvalidStep("image tokens in a prompt without images".into())
        })?;
        Ok(Some(all.narrow(0, before, inside)?))
    }

    /// Samples the next token of `running[index]` and streams it. Returns whether the
    /// sequence finished, or why it cannot go on (its structured output failed).
    fn sample(&mut self, index: usize, logits: &[f32], now: Instant) -> Result<bool, String> {
        let model = self.model.clone();
        let eos = model.eos_token_ids();
        let seq = self.scheduler.running_mut(index);
        let params = &seq.request.params;
        let early = seq.output.len() < params.min_tokens;
        let mut banned = Vec::new();
        if early {
            banned.extend(params.stop_token_ids.iter().copied());
            if !params.ignore_eos {
                banned.extend(eos.iter().copied());
            }
        }
        let allowed = seq.constraint.as_mut().map(|c| c.allowed()).transpose()?;
        let sampled = seq.sampler.sample(
            logits,
            &seq.request.prompt.token_ids,
            &seq.output,
            &banned,
            allowed.as_ref(),
        );
        seq.output.push(sampled.token);
        let mut finish = None;
        if !params.ignore_eos && eos.contains(&sampled.token)
            || params.stop_token_ids.contains(&sampled.token)
        {
            finish = Some(FinishReason::Stop);
        }
        // A structured output ends where its format is complete: with its last token's
        // text, or at an end-of-sequence token it allowed (which is not text).
        let mut format_complete = false;
        if let (Some(constraint), None) = (seq.constraint.as_mut(), finish) {
            constraint.accept(sampled.token)?;
            format_complete = constraint.is_complete();
            if format_complete && eos.contains(&sampled.token) {
                finish = Some(FinishReason::Stop);
            }
        }
        // The end-of-sequence token itself is not text.
        let update = if finish.is_some() {
            Default::default()
        } else {
            seq.text.update(self.model.tokenizer(), &seq.output)
        };
        let mut text = update.delta;
        if (update.stopped || format_complete) && finish.is_none() {
            finish = Some(FinishReason::Stop);
        }
        if finish.is_none()
            && (seq.output.len() >= params.max_tokens || seq.len() >= self.max_model_len)
        {
            finish = Some(FinishReason::Length);
        }
        if finish.is_some() && !update.stopped {
            text.push_str(&seq.text.flush());
        }
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.generation_tokens += 1;
            match seq.last_token_at {
                None => stats.time_to_first_token.observe(now - seq.request.arrived),
                Some(t) => stats.inter_token_latency.observe(now - t),
            }
        }
        seq.last_token_at = Some(now);
        let usage = finish.map(|_| Usage {
            prompt_tokens: seq.prompt_len(),
            completion_tokens: seq.output.len(),
        });
        let tokenizer = model.tokenizer();
        let (token, top_logprobs) = if params.logprobs.is_some() {
            (
                self.logprob_text.token(tokenizer, sampled.token),
                self.logprob_text
                    .alternatives(tokenizer, &sampled.top_logprobs),
            )
        } else {
            (String::new(), Vec::new())
        };
        let _ = seq.request.events.send(TokenEvent {
            index: seq.index,
            token_id: sampled.token,
            text,
            logprob: sampled.logprob,
            token,
            top_logprobs,
            finish_reason: finish,
            usage,
            error: None,
        });
        Ok(finish.is_some())
    }
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
