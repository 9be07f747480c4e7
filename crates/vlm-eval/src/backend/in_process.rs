//! The engine in this process: every job is submitted as soon as it is prepared (up to a
//! window that bounds memory), so continuous batching sees the whole run at once.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use vlm_core::{ChatMessage, ContentPart, FinishReason, ImageData, Role, SamplingParams};
use vlm_engine::{EngineHandle, GenerationRequest};

use super::{Backend, Job};
use crate::journal::Prediction;
use crate::tasks::PromptPart;

pub struct InProcess {
    engine: Arc<EngineHandle>,
    /// Requests held by the engine at once (running + waiting).
    window: usize,
}

impl InProcess {
    pub fn new(engine: Arc<EngineHandle>, window: usize) -> Self {
        Self {
            engine,
            window: window.max(1),
        }
    }
}

pub(crate) fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Abort => "abort",
    }
}

fn failed(doc_id: usize, error: String) -> Prediction {
    Prediction {
        doc_id,
        response: String::new(),
        error: Some(error),
        prompt_tokens: None,
        completion_tokens: None,
        finish_reason: None,
    }
}

/// The same sampling a `/v1/chat/completions` request with `max_tokens` and
/// `temperature: 0` gets from vlm-serve.
pub fn eval_sampling(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        max_tokens,
        temperature: 0.0,
        ..SamplingParams::default()
    }
}

fn request(job: Job) -> GenerationRequest {
    let content = job
        .parts
        .into_iter()
        .map(|p| match p {
            PromptPart::Text(t) => ContentPart::Text(t),
            PromptPart::Image { bytes, .. } => ContentPart::Image(ImageData(bytes)),
        })
        .collect();
    GenerationRequest::chat(
        vec![ChatMessage::new(Role::User, content)],
        eval_sampling(job.max_tokens),
    )
}

impl Backend for InProcess {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": "in-process",
            "model_path": self.engine.model_path().display().to_string(),
            "max_model_len": self.engine.max_model_len(),
        })
    }

    fn prepare_image(&self, bytes: &Arc<[u8]>) -> Result<Arc<[u8]>, String> {
        crate::images::rgb_image(bytes)
    }

    fn queue_depth(&self) -> usize {
        self.window
    }

    fn run(&self, jobs: Receiver<Job>, done: &mut dyn FnMut(Prediction)) {
        let runtime = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => {
                for job in jobs {
                    done(failed(job.doc_id, format!("cannot start a runtime: {e}")));
                }
                return;
            }
        };
        runtime.block_on(async {
            let mut in_flight = tokio::task::JoinSet::new();
            let mut doc_of = std::collections::HashMap::new();
            let mut exhausted = false;
            loop {
                while !exhausted && in_flight.len() < self.window {
                    // Wait for the producer only when nothing is generating.
                    let next = if in_flight.is_empty() {
                        jobs.recv().ok()
                    } else {
                        match jobs.try_recv() {
                            Ok(job) => Some(job),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => None,
                        }
                    };
                    let Some(job) = next else {
                        exhausted = true;
                        break;
                    };
                    let doc_id = job.doc_id;
                    match self.engine.submit(request(job)) {
                        Ok(stream) => {
                            let handle = in_flight.spawn(stream.collect());
                            doc_of.insert(handle.id(), doc_id);
                        }
                        Err(e) => done(failed(doc_id, e.to_string())),
                    }
                }
                let Some(joined) = in_flight.join_next_with_id().await else {
                    if exhausted {
                        break;
                    }
                    continue;
                };
                let id = match &joined {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                let doc_id = doc_of.remove(&id).unwrap_or_default();
                let prediction = match joined {
                    Ok((_, (completions, usage))) => match completions.into_iter().next() {
                        Some(c) if c.finish_reason != FinishReason::Abort => Prediction {
                            doc_id,
                            response: c.text,
                            error: None,
                            prompt_tokens: Some(usage.prompt_tokens),
                            completion_tokens: Some(usage.completion_tokens),
                            finish_reason: Some(finish_reason_name(c.finish_reason).into()),
                        },
                        _ => failed(doc_id, "the engine stopped before answering".into()),
                    },
                    Err(e) => failed(doc_id, format!("collector task failed: {e}")),
                };
                done(prediction);
            }
        });
    }
}
