//! The engine in this process. Jobs arrive already templated and preprocessed (the
//! producer thread does that), and are submitted as soon as the engine has room for them,
//! so continuous batching always has the next requests queued.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc::Receiver;
use vlm_core::{ChatMessage, ContentPart, FinishReason, Role, SamplingParams};
use vlm_engine::{Engine, PixelBudget, RequestInput};

use super::job::{Backend, ImagePartError, Job, PrepareError};
use crate::images::engine_image;
use crate::journal::Prediction;
use crate::prompt::PromptPart;

pub struct InProcess {
    engine: Arc<Engine>,
    /// Requests held by the engine at once (running + waiting); each holds its pixels.
    window: usize,
    /// Qwen2-VL's pixel budget for every image (`--min-pixels` / `--max-pixels`).
    pixel_budget: PixelBudget,
}

impl InProcess {
    /// `window` should exceed the engine's `max_num_seqs` a little, so a finished
    /// sequence's slot is refilled at once.
    pub fn new(engine: Arc<Engine>, window: usize) -> Self {
        Self {
            engine,
            window: window.max(1),
            pixel_budget: PixelBudget::default(),
        }
    }

    /// Resizes every image within this budget instead of the checkpoint's.
    pub fn with_pixel_budget(mut self, budget: PixelBudget) -> Self {
        self.pixel_budget = budget;
        self
    }
}

/// The same sampling a `/v1/chat/completions` request with `max_tokens`, `stop` and
/// `temperature` gets from vlm-serve.
pub fn eval_sampling(max_tokens: usize, stop: Vec<String>, temperature: f32) -> SamplingParams {
    SamplingParams {
        max_tokens,
        stop,
        temperature,
        ..SamplingParams::default()
    }
}

impl Backend for InProcess {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": "in-process",
            "model_path": self.engine.model_path().display().to_string(),
            "max_model_len": self.engine.max_model_len(),
        })
    }

    fn prepare(&self, mut job: Job) -> Result<Job, PrepareError> {
        let content = std::mem::take(&mut job.parts)
            .into_iter()
            .map(|p| match p {
                PromptPart::Text(t) => Ok(ContentPart::Text(t)),
                PromptPart::Image { column, bytes } => engine_image(&bytes)
                    .map(ContentPart::Image)
                    .map_err(|error| ImagePartError { column, error }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let input = RequestInput::Chat(vec![ChatMessage::new(Role::User, content)]);
        job.prepared = Some(self.engine.prepare(input, self.pixel_budget)?);
        Ok(job)
    }

    fn queue_depth(&self) -> usize {
        8
    }

    fn run(&self, mut jobs: Receiver<Job>, done: &mut dyn FnMut(Prediction)) {
        let runtime = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => {
                while let Some(job) = jobs.blocking_recv() {
                    done(Prediction::failed(
                        job.doc_id,
                        format!("cannot start a runtime: {e}"),
                    ));
                }
                return;
            }
        };
        runtime.block_on(async {
            let mut in_flight = tokio::task::JoinSet::new();
            let mut doc_of = HashMap::new();
            let mut open = true;
            loop {
                tokio::select! {
                    job = jobs.recv(), if open && in_flight.len() < self.window => {
                        let Some(job) = job else {
                            open = false;
                            continue;
                        };
                        let Some(prompt) = job.prepared else {
                            done(Prediction::failed(job.doc_id, "the job was not prepared".into()));
                            continue;
                        };
                        match self.engine.submit_prepared(prompt, eval_sampling(job.max_tokens, job.stop, job.temperature)) {
                            Ok(stream) => {
                                let handle = in_flight.spawn(stream.collect());
                                doc_of.insert(handle.id(), job.doc_id);
                            }
                            Err(e) => done(Prediction::failed(job.doc_id, e.to_string())),
                        }
                    }
                    Some(joined) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                        let id = match &joined {
                            Ok((id, _)) => *id,
                            Err(e) => e.id(),
                        };
                        let Some(doc_id) = doc_of.remove(&id) else {
                            tracing::error!("a finished request has no document; skipped");
                            continue;
                        };
                        done(match joined {
                            Ok((_, (completions, usage))) => match completions.into_iter().next() {
                                Some(c) if c.finish_reason != FinishReason::Abort => Prediction {
                                    doc_id,
                                    response: c.text,
                                    error: None,
                                    prompt_tokens: Some(usage.prompt_tokens),
                                    completion_tokens: Some(usage.completion_tokens),
                                    finish_reason: Some(c.finish_reason.as_str().into()),
                                },
                                _ => Prediction::failed(doc_id, "the engine stopped before answering".into()),
                            },
                            Err(e) => Prediction::failed(doc_id, format!("collector task failed: {e}")),
                        });
                    }
                    else => break,
                }
            }
        });
    }
}
