//! Benchmark evaluation with scores identical to lmms-eval's: task prompts, answer parsers
//! and aggregation ported rule for rule (including Python's `random` stream where a parser
//! guesses), so a number from `vlm-eval` can be put next to a paper's.
//!
//! A run ([`evaluate`]) loads each task's dataset split, builds every row's prompt once,
//! gets the responses from a [`Backend`] (the engine in this process, or an
//! OpenAI-compatible server), journals them, scores them with the task's rules and writes
//! the samples files; [`write_results`] then writes `results.json`. [`rescore`] scores
//! saved predictions without a model.

mod backend;
mod dataset;
pub mod identity;
mod images;
mod journal;
pub mod judge;
mod prompt;
mod python;
mod reasoning;
mod report;
mod run;
mod sample_images;
pub mod sweep;
pub mod tasks;

pub use backend::{
    log_tail, Backend, DeployError, DeployOptions, Deployment, ImagePartError, InProcess, Job,
    OpenAiBackend, OpenAiError, OpenAiOptions, PrepareError,
};
pub use dataset::{Cell, DatasetError, Row};
pub use images::ImageError;
pub use journal::{JournalError, Prediction};
pub use prompt::{Prompt, PromptPart};
pub use reasoning::{default_tags, parse_tags, ReasoningTagsError};
pub use report::{
    details, read_results, results_files, table, write_results, FinishedRun, FinishedTask,
    ReadBackError, ResultsWriteError, RunInfo,
};
pub use run::{
    check_datasets, evaluate, rescore, DatasetInfo, Progress, RunError, RunOptions, TaskRun,
};
pub use sample_images::SampleImages;
pub use tasks::{Task, TaskError, TaskScores};
