//! What a run is asked to do: where the data and the outputs are, how many rows, whether to
//! keep earlier answers, and which reasoning blocks to strip before scoring.

use std::path::PathBuf;

use crate::judge::JudgeOptions;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    pub limit: Option<usize>,
    pub output_dir: PathBuf,
    pub resume: bool,
    pub reasoning_tags: Vec<(String, String)>,
    /// The judge model, for tasks that need one.
    pub judge: Option<JudgeOptions>,
    /// Replaces every task's `max_new_tokens` (lmms-eval's `--gen_kwargs max_new_tokens=N`).
    pub max_new_tokens: Option<usize>,
}
