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
/// published under another id) in the data directory and cache before the hub; checked to
/// fit the task (a task file's columns), for evaluating and rescoring alike.
pub(super) fn load_dataset(task: &dyn Task, options: &RunOptions) -> Result<Dataset, RunError> {
    let ds = non_empty(Dataset::load(&task.dataset(), options.data_dir.as_deref())?)?;
    task.check(&ds.rows)
        .map_err(|error| RunError::TaskDoesNotFit {
            task: task.name().to_string(),
            repo: ds.repo.clone(),
            error: Box::new(error),
        })?;
    Ok(ds)
}

/// Every task's dataset can be found (not read): checked before a server is deployed, so a
/// missing dataset fails at once.
pub fn check_datasets(tasks: &[Box<dyn Task>], options: &RunOptions) -> Result<(), RunError> {
    for task in tasks {
        crate::dataset::locate(&task.dataset(), options.data_dir.as_deref())?;
    }
    Ok(())
}

/// A split without rows would score nothing and look like a finished run: an error.
fn non_empty(ds: Dataset) -> Result<Dataset, RunError> {
    if ds.rows.is_empty() {
        return Err(RunError::EmptySplit {
            repo: ds.repo,
            split: ds.split,
            place: ds
                .located
                .files
                .first()
                .and_then(|f| f.parent())
                .map_or_else(|| "its files".into(), |d| d.display().to_string()),
        });
    }
    Ok(ds)
}

/// The rows `--limit` picks (all without it), as the task widens them.
pub(super) fn selected(task: &dyn Task, ds: &Dataset, limit: Option<usize>) -> Vec<usize> {
    match limit {
        Some(n) => task.limit(&ds.rows, n),
        None => (0..ds.rows.len()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Located, Origin};

    #[test]
    fn a_split_without_rows_is_an_error() {
        let ds = Dataset {
            repo: "lmms-lab/MME".into(),
            split: "test".into(),
            located: Located {
                files: vec!["/data/lmms-lab/MME/test.parquet".into()],
                origin: Origin::DataDir("/data".into()),
                revision: None,
            },
            rows: Vec::new(),
        };
        let err = non_empty(ds).unwrap_err().to_string();
        assert!(
            err.contains("lmms-lab/MME test") && err.contains("no rows"),
            "{err}"
        );
        assert!(err.contains("/data/lmms-lab/MME"), "{err}");
    }
}
