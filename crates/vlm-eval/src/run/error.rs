//! Why a run (or a rescoring of saved predictions) stopped.

use std::path::PathBuf;

use serde_json::Value;

use crate::dataset::DatasetError;
use crate::journal::JournalError;
use crate::tasks::TaskError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A task file that does not fit its dataset, found before anything is generated.
    #[error("task `{task}` does not fit its dataset {repo}: {error}; fix the task file")]
    TaskDoesNotFit {
        task: String,
        repo: String,
        error: Box<TaskError>,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Judge(#[from] crate::judge::JudgeError),
    /// A file or directory of the output directory could not be created, written or removed.
    #[error("cannot {action} {}: {error}", path.display())]
    Output {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{repo} {split} in {place} has no rows; the files are empty or not the dataset (download it again)")]
    EmptySplit {
        repo: String,
        split: String,
        place: String,
    },
    #[error(
        "{} holds no predictions (one JSON object per line with `doc_id` and `response`)",
        file.display()
    )]
    NoPredictions { file: PathBuf },
    #[error("{}: doc_id {doc_id} is past the {rows} rows of {repo} {split}", file.display())]
    PastTheSplit {
        file: PathBuf,
        doc_id: usize,
        rows: usize,
        repo: String,
        split: String,
    },
    #[error(
        "{task}: no prediction for doc_id {doc_id} in {} (with --limit, MME takes whole \
         image pairs: the file must answer both questions of each image)",
        file.display()
    )]
    MissingPrediction {
        task: String,
        doc_id: usize,
        file: PathBuf,
    },
    /// `--resume` found a `run.json` it cannot read.
    #[error("{} is not valid JSON ({error}); drop --resume to start over", path.display())]
    UnreadableRunRecord {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// `--resume` found another model's or backend's run in the output directory.
    #[error(
        "{} holds a run of {before}, not {identity}; pass another --output-dir or drop \
         --resume to start over",
        output_dir.display()
    )]
    OtherRun {
        output_dir: PathBuf,
        before: Box<Value>,
        identity: Box<Value>,
    },
}
