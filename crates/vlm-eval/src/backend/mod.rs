//! Where responses come from: the engine in this process, or any OpenAI-compatible server.
//! Both receive the same prompts (content parts in lmms-eval's chat order, images as
//! `convert("RGB")` pixels) and the same generation settings (greedy, `max_tokens`).

mod in_process;
mod openai;

use std::sync::mpsc::Receiver;
use std::sync::Arc;

pub use in_process::InProcess;
pub use openai::{OpenAiBackend, OpenAiOptions};

use crate::journal::Prediction;
use crate::tasks::PromptPart;

/// One request to answer.
#[derive(Debug, Clone)]
pub struct Job {
    pub doc_id: usize,
    pub parts: Vec<PromptPart>,
    pub max_tokens: usize,
}

pub trait Backend: Sync {
    /// `config.model_backend`-style description for results.json.
    fn describe(&self) -> serde_json::Value;

    /// The image bytes this backend sends for a dataset image (run on the job producer).
    fn prepare_image(&self, bytes: &Arc<[u8]>) -> Result<Arc<[u8]>, String>;

    /// How many prepared jobs may wait ahead of the backend (bounds memory).
    fn queue_depth(&self) -> usize;

    /// Answers every job from `jobs` until it closes, calling `done` (on this thread) once
    /// per job, in completion order. Failures are predictions with `error` set, never panics.
    fn run(&self, jobs: Receiver<Job>, done: &mut dyn FnMut(Prediction));
}
