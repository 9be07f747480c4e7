//! The output directory's files: where each task's predictions and samples go, and
//! `run.json`, which ties the directory to one model and backend so `--resume` never mixes
//! two runs' answers.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::RunError;

pub fn predictions_path(output_dir: &Path, task: &str) -> PathBuf {
    output_dir.join(format!("predictions_{task}.jsonl"))
}

pub fn samples_path(output_dir: &Path, task: &str) -> PathBuf {
    output_dir.join(format!("samples_{task}.jsonl"))
}

/// The task file a task's predictions answer, kept beside them.
fn definition_path(output_dir: &Path, task: &str) -> PathBuf {
    output_dir.join(format!("predictions_{task}.task.toml"))
}

/// For a task from a task file: earlier predictions answer the file as it was, so if the
/// file changed since (or they predate this record), they are moved aside to
/// `earlier_predictions_<task>.<hash>.jsonl` rather than resumed; then the file's text is
/// recorded beside the predictions. Returns where earlier answers went, if they moved.
pub(super) fn set_aside_changed_task(
    output_dir: &Path,
    task: &str,
    definition: Option<&str>,
) -> Result<Option<PathBuf>, RunError> {
    let Some(definition) = definition else {
        return Ok(None);
    };
    let journal = predictions_path(output_dir, task);
    let record = definition_path(output_dir, task);
    let before = std::fs::read_to_string(&record).ok();
    let mut moved = None;
    if journal.exists() && before.as_deref() != Some(definition) {
        let tag = before.map_or_else(
            || "unrecorded".to_string(),
            |b| blake3::hash(b.as_bytes()).to_hex()[..12].to_string(),
        );
        let aside = output_dir.join(format!("earlier_predictions_{task}.{tag}.jsonl"));
        std::fs::rename(&journal, &aside).map_err(|error| output_error("move", &journal, error))?;
        moved = Some(aside);
    }
    std::fs::write(&record, definition).map_err(|error| output_error("write", &record, error))?;
    Ok(moved)
}

/// Records which model and backend an output directory's predictions came from, so a
/// `--resume` never mixes two runs' answers. A fresh run removes every task's earlier
/// predictions and samples, since they no longer belong to the directory's run.
pub(super) fn check_resume_identity(
    output_dir: &Path,
    identity: &Value,
    resume: bool,
) -> Result<(), RunError> {
    let path = output_dir.join("run.json");
    if resume {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let before: Value =
                serde_json::from_str(&text).map_err(|error| RunError::UnreadableRunRecord {
                    path: path.clone(),
                    error,
                })?;
            if &before != identity {
                return Err(RunError::OtherRun {
                    output_dir: output_dir.to_path_buf(),
                    before: Box::new(before),
                    identity: Box::new(identity.clone()),
                });
            }
        }
    }
    create_dir(output_dir)?;
    if !resume {
        for entry in std::fs::read_dir(output_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with("predictions_") || name.starts_with("samples_"))
                && (name.ends_with(".jsonl") || name.ends_with(".task.toml"))
            {
                std::fs::remove_file(entry.path())
                    .map_err(|error| output_error("remove", &entry.path(), error))?;
            }
        }
    }
    std::fs::write(&path, format!("{identity:#}\n"))
        .map_err(|error| output_error("write", &path, error))
}

pub(super) fn create_dir(dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|error| output_error("create", dir, error))
}

/// `cannot <action> <path>: <error>`.
pub(super) fn output_error(action: &'static str, path: &Path, error: std::io::Error) -> RunError {
    RunError::Output {
        action,
        path: path.to_path_buf(),
        error,
    }
}
