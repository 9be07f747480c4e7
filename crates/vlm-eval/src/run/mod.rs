//! A run: for each task, load its split, pick the rows (`--limit`), get a response for
//! every row not already answered (`--resume`), then score them all in document order and
//! write the samples file.

mod error;
mod evaluate;
mod options;
mod output_dir;
mod score;
mod split;

pub use error::RunError;
pub use evaluate::{evaluate, Progress};
pub use options::RunOptions;
pub use score::{rescore, TaskRun};
pub use split::{check_datasets, DatasetInfo};
