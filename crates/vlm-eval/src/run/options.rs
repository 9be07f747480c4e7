//! What a run is asked to do: where the data and the outputs are, how many rows, whether to
//! keep earlier answers, and which reasoning blocks to strip before scoring.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    pub limit: Option<usize>,
    pub output_dir: PathBuf,
    pub resume: bool,
    pub reasoning_tags: Vec<(String, String)>,
}
