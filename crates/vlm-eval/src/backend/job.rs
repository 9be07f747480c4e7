//! The contract between a run and a backend: one [`Job`] per row, prepared on the producer
//! thread, answered as a [`Prediction`].

use tokio::sync::mpsc::Receiver;
use vlm_engine::{EngineError, PreparedPrompt};

use crate::images::ImageError;
use crate::journal::Prediction;
use crate::prompt::PromptPart;

/// One request to answer.
#[derive(Debug)]
pub struct Job {
    pub doc_id: usize,
    /// Images as the dataset holds them; each backend converts them as it sends them.
    pub parts: Vec<PromptPart>,
    pub max_tokens: usize,
    /// Strings that end the answer (the task's `until`); none for most tasks.
    pub stop: Vec<String>,
    /// 0: greedy, as every shipped task asks.
    pub temperature: f32,
    /// In-process: templated, tokenized and preprocessed ahead, off the engine's path.
    pub prepared: Option<PreparedPrompt>,
}

/// An image part of a prompt that could not be converted for the model.
#[derive(Debug, thiserror::Error)]
#[error("`{column}`: {error}")]
pub struct ImagePartError {
    /// The dataset column the image came from.
    pub column: String,
    pub error: ImageError,
}

/// Why a job could not be prepared; recorded as the sample's failure.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Image(#[from] ImagePartError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub trait Backend: Sync {
    /// `config.model_backend`-style description for results.json.
    fn describe(&self) -> serde_json::Value;

    /// Work done on the producer thread before the job is queued (image conversion,
    /// templating, preprocessing); an error becomes the sample's recorded failure.
    fn prepare(&self, job: Job) -> Result<Job, PrepareError>;

    /// How many prepared jobs may wait ahead of the backend (bounds memory).
    fn queue_depth(&self) -> usize;

    /// Answers every job from `jobs` until it closes, calling `done` (on this thread) once
    /// per job, in completion order. Failures are predictions with `error` set, never panics.
    fn run(&self, jobs: Receiver<Job>, done: &mut dyn FnMut(Prediction));
}
