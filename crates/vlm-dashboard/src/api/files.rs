//! A run's folder: its files (listed and downloaded, never anything outside the folder) and
//! its samples (`samples_<task>.jsonl`), paged and filtered.

use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vlm_runs::Run;

use super::query::{ApiPath, ApiQuery};
use crate::error::ApiError;
use crate::state::DashboardState;

pub(super) async fn run_of(state: &DashboardState, id: &str) -> Result<Run, ApiError> {
    state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

/// The run's folder, canonical, and inside `--output-root` when one is set.
pub(super) fn run_folder(state: &DashboardState, run: &Run) -> Result<PathBuf, ApiError> {
    let recorded = run
        .output_dir
        .as_deref()
        .ok_or_else(|| ApiError::not_found(format!("run {} has no folder", run.id.as_str())))?;
    let mut folder = PathBuf::from(recorded);
    if folder.is_relative() {
        if let Some(root) = &state.config.output_root {
            folder = root.join(folder);
        }
    }
    let folder = folder.canonicalize().map_err(|_| {
        ApiError::not_found(format!(
            "run {}'s folder {recorded} is not here",
            run.id.as_str()
        ))
    })?;
    if let Some(root) = &state.config.output_root {
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        if !folder.starts_with(&root) {
            return Err(ApiError::not_found(format!(
                "run {}'s folder is outside the dashboard's --output-root",
                run.id.as_str()
            )));
        }
    }
    Ok(folder)
}

/// A file of the run's folder, by plain name, whose real path (symlinks resolved) stays
/// inside the folder; every route that reads a run's files goes through here.
pub(super) fn file_in_folder(folder: &FsPath, name: &str) -> Result<PathBuf, ApiError> {
    let name = plain_name(name)?;
    let real = folder
        .join(name)
        .canonicalize()
        .map_err(|_| ApiError::not_found(format!("the run has no file {name}")))?;
    if !real.starts_with(folder) {
        return Err(ApiError::bad_request(format!(
            "{name} leads outside the run's folder"
        )));
    }
    if !real.is_file() {
        return Err(ApiError::not_found(format!("{name} is not a file")));
    }
    Ok(real)
}

pub async fn artifacts(
    State(state): State<Arc<DashboardState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let run = run_of(&state, &id).await?;
    let folder = run_folder(&state, &run)?;
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&folder)
        .map_err(|e| ApiError::not_found(format!("cannot list the run's folder: {e}")))?;
    for entry in entries.flatten() {
        let path = entry.path();
        // Only regular files that stay inside the folder (a symlink out is not listed).
        let Ok(real) = path.canonicalize() else {
            continue;
        };
        if !real.starts_with(&folder) || !real.is_file() {
            continue;
        }
        let size = real.metadata().map(|m| m.len()).unwrap_or(0);
        files.push(json!({"name": entry.file_name().to_string_lossy(), "bytes": size}));
    }
    files.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(Value::Array(files)))
}

/// A file name of the run's folder: one plain component, nothing else.
fn plain_name(name: &str) -> Result<&str, ApiError> {
    let mut components = FsPath::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) if !name.contains(['/', '\\', '\0']) => Ok(name),
        _ => Err(ApiError::bad_request(format!(
            "{name:?} is not a file name of the run's folder"
        ))),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("jsonl") => "application/x-ndjson",
        Some("log" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub async fn artifact(
    State(state): State<Arc<DashboardState>>,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let name = plain_name(&name)?;
    let run = run_of(&state, &id).await?;
    let folder = run_folder(&state, &run)?;
    let real = file_in_folder(&folder, name)?;
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|e| ApiError::not_found(format!("cannot read {name}: {e}")))?;
    let disposition = format!("attachment; filename=\"{}\"", name.replace('"', ""));
    Ok((
        [
            (header::CONTENT_TYPE, content_type(name).to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct SamplesQuery {
    offset: Option<usize>,
    limit: Option<usize>,
    correct: Option<bool>,
}

/// Whether a sample line counts as answered right: a positive score.
fn is_correct(sample: &Value) -> bool {
    sample["score"].as_f64().is_some_and(|s| s > 0.0)
}

/// The run's samples as the samples file holds them, one object per line.
pub(super) fn read_samples(state: &DashboardState, run: &Run) -> Result<Vec<Value>, ApiError> {
    let folder = run_folder(state, run)?;
    // The task name comes from the store (a synced file may say anything): the samples
    // file must still be a plain name inside the folder.
    let file = file_in_folder(&folder, &format!("samples_{}.jsonl", run.task))?;
    let text = std::fs::read_to_string(&file).map_err(|_| {
        ApiError::not_found(format!(
            "run {} has no samples file (samples_{}.jsonl)",
            run.id.as_str(),
            run.task
        ))
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect())
}

pub async fn samples(
    State(state): State<Arc<DashboardState>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SamplesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let run = run_of(&state, &id).await?;
    let all = read_samples(&state, &run)?;
    let matching: Vec<&Value> = all
        .iter()
        .filter(|s| q.correct.is_none_or(|c| is_correct(s) == c))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| {
            json!({
                "doc_id": s["doc_id"],
                "id": s["id"],
                "input": s["input"],
                "target": s["target"],
                "response": s["response"],
                "parsed": s["parsed"],
                "score": s["score"],
                "correct": is_correct(s),
                "error": s.get("error"),
            })
        })
        .collect();
    Ok(Json(json!({
        "total": matching.len(),
        "offset": offset,
        "limit": limit,
        "samples": page,
    })))
}

/// Splits kept loaded for thumbnails.
const LOADED_SPLITS: usize = 2;

fn image_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xFF, 0xD8, ..] => "image/jpeg",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [b'B', b'M', ..] => "image/bmp",
        _ => "application/octet-stream",
    }
}

/// `GET /runs/{id}/samples/{doc_id}/images/{k}`: the k-th image the sample's prompt showed,
/// from the task's dataset (the run's data directory, else the dashboard's `--data-dir`).
pub async fn sample_image(
    State(state): State<Arc<DashboardState>>,
    ApiPath((id, doc_id, k)): ApiPath<(String, usize, usize)>,
) -> Result<Response, ApiError> {
    let run = run_of(&state, &id).await?;
    // A task file's run carries the file's text.
    let task = match run.config["task_file"].as_str() {
        Some(text) => vlm_eval::tasks::from_definition(text).ok(),
        None => vlm_eval::tasks::by_name(&run.task),
    }
    .ok_or_else(|| ApiError::not_found(format!("task {} has no dataset here", run.task)))?;
    let data_dir = run.config["data_dir"]
        .as_str()
        .map(PathBuf::from)
        .or_else(|| state.config.data_dir.clone());
    let key = (run.task.clone(), data_dir.clone());
    let cached = {
        let images = state.images.lock().unwrap_or_else(|p| p.into_inner());
        images
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    let split = match cached {
        Some(split) => split,
        None => {
            let loaded = tokio::task::spawn_blocking(move || {
                vlm_eval::SampleImages::load(task, data_dir.as_deref())
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::not_found(format!("the task's dataset is not here: {e}")))?;
            let loaded = Arc::new(loaded);
            let mut images = state.images.lock().unwrap_or_else(|p| p.into_inner());
            images.insert(0, (key, loaded.clone()));
            images.truncate(LOADED_SPLITS);
            loaded
        }
    };
    let bytes = split
        .images(doc_id)
        .into_iter()
        .nth(k)
        .ok_or_else(|| ApiError::not_found(format!("sample {doc_id} has no image {k}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, image_type(&bytes).to_string()),
            (header::CACHE_CONTROL, "max-age=3600".to_string()),
        ],
        bytes.to_vec(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names() {
        assert!(plain_name("results.json").is_ok());
        for bad in ["..", ".", "../x", "/etc/passwd", "a/b", "a\\b", "", "x\0y"] {
            assert!(plain_name(bad).is_err(), "{bad:?}");
        }
    }
}
