//! The rows a task runs on: its dataset split, found and loaded, and the `--limit`
//! selection from it.

use super::error::RunError;
use super::options::RunOptions;
use crate::dataset::{Dataset, Origin};
use crate::tasks::Task;

/// Where a task's rows came from.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    pub repo: String,
    pub split: String,
    pub revision: Option<String>,
    pub source: String,
}

impl DatasetInfo {
    pub(super) fn of(ds: &Dataset) -> Self {
        Self {
            repo: ds.repo.clone(),
            split: ds.split.clone(),
            revision: ds.located.revision.clone(),
            source: match &ds.located.origin {
                Origin::DataDir(p) | Origin::HfCache(p) => p.display().to_string(),
                Origin::Hub => "hub".into(),
            },
        }
    }
}

/// The task's dataset, trying its repository id and then its aliases (the same data
/// published under another id) in the data directory and cache before the hub.
pub(super) fn load_dataset(task: &dyn Task, options: &RunOptions) -> Result<Dataset, RunError> {
    let (repo, split) = task.dataset();
    Ok(Dataset::load(
        repo,
        task.dataset_aliases(),
        split,
        options.data_dir.as_deref(),
    )?)
}

/// The rows `--limit` picks (all without it), as the task widens them.
pub(super) fn selected(task: &dyn Task, ds: &Dataset, limit: Option<usize>) -> Vec<usize> {
    match limit {
        Some(n) => task.limit(&ds.rows, n),
        None => (0..ds.rows.len()).collect(),
    }
}
