//! Where responses come from: the engine in this process, or any OpenAI-compatible server.
//! Both receive the same prompts (content parts in lmms-eval's chat order, images as
//! `convert("RGB")` pixels) and the same generation settings (greedy, `max_tokens`).

mod in_process;
mod openai;

use tokio::sync::mpsc::Receiver;
use vlm_engine::PreparedPrompt;

pub use in_process::InProcess;
pub use openai::{OpenAiBackend, OpenAiOptions};

use crate::journal::Prediction;
use crate::tasks::PromptPart;

/// One request to answer.
#[derive(Debug)]
pub struct Job {
    pub doc_id: usize,
    /// Images as the dataset holds them; each backend converts them as it sends them.
    pub parts: Vec<PromptPart>,
    pub max_tokens: usize,
    /// In-process: templated, tokenized and preprocessed ahead, off the engine's path.
    pub prepared: Option<PreparedPrompt>,
}

pub trait Backend: Sync {
    /// `config.model_backend`-style description for results.json.
    fn describe(&self) -> serde_json::Value;

    /// Work done on the producer thread before the job is queued (image conversion,
    /// templating, preprocessing); an error becomes the sample's recorded failure.
    fn prepare(&self, job: Job) -> Result<Job, String>;

    /// How many prepared jobs may wait ahead of the backend (bounds memory).
    fn queue_depth(&self) -> usize;

    /// Answers every job from `jobs` until it closes, calling `done` (on this thread) once
    /// per job, in completion order. Failures are predictions with `error` set, never panics.
    fn run(&self, jobs: Receiver<Job>, done: &mut dyn FnMut(Prediction));
}
