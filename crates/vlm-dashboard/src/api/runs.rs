//! Runs: listed per task or overall, one in detail, a task's leaderboard, and queueing a
//! run (model x task) for the workers of the runs store.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vlm_eval::identity::task_identities;
use vlm_eval::sweep::ModelEntry;
use vlm_eval::tasks;
use vlm_runs::{NewRun, RunFilter, RunStatus};

use super::catalog::parse;
use super::query::{ApiPath, ApiQuery};
use crate::error::ApiError;
use crate::state::DashboardState;

#[derive(Deserialize)]
pub struct RunsQuery {
    model: Option<String>,
    task: Option<String>,
    status: Option<String>,
}

fn status_filter(status: Option<&str>) -> Result<Option<RunStatus>, ApiError> {
    status
        .map(|s| {
            RunStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status {s:?}: expected queued, running, completed or failed"
                ))
            })
        })
        .transpose()
}

pub async fn all_runs(
    State(state): State<Arc<DashboardState>>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = RunFilter {
        model: q.model,
        task: q.task,
        status: status_filter(q.status.as_deref())?,
    };
    let runs = state.store.runs(&filter).await?;
    Ok(Json(Value::Array(runs.iter().map(|r| r.view()).collect())))
}

async fn known_task(state: &DashboardState, task: &str) -> Result<(), ApiError> {
    if tasks::by_name(task).is_some() || state.store.task(task).await?.is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no task `{task}`")))
    }
}

pub async fn task_runs(
    State(state): State<Arc<DashboardState>>,
    ApiPath(task): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    known_task(&state, &task).await?;
    let filter = RunFilter {
        model: q.model,
        task: Some(task),
        status: status_filter(q.status.as_deref())?,
    };
    let runs = state.store.runs(&filter).await?;
    Ok(Json(Value::Array(runs.iter().map(|r| r.view()).collect())))
}

pub async fn leaderboard(
    State(state): State<Arc<DashboardState>>,
    ApiPath(task): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    known_task(&state, &task).await?;
    let rows = state.store.leaderboard(&task).await?;
    let mut out = Vec::new();
    for row in &rows {
        let mut view = row.view();
        // Samples and breakdown from the run itself.
        if let Some(run) = state.store.get(row.run_id.as_str()).await? {
            view["samples"] = json!(run.progress_total);
            view["details"] = run.details.clone().unwrap_or(Value::Null);
        }
        out.push(view);
    }
    Ok(Json(Value::Array(out)))
}

pub async fn run(
    State(state): State<Arc<DashboardState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    let mut view = run.view();
    view["config"] = run.config.clone();
    view["details"] = run.details.clone().unwrap_or(Value::Null);
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRun {
    model_name: String,
    limit: Option<usize>,
    data_dir: Option<String>,
}

/// Queues the model on the task for the workers (409 when one is already queued or running
/// with the same identity).
pub async fn queue_run(
    State(state): State<Arc<DashboardState>>,
    ApiPath(task): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: QueueRun = parse(body)?;
    let task_def = tasks::by_name(&task)
        .ok_or_else(|| ApiError::not_found(format!("no task `{task}` that vlm-eval can run")))?;
    let model = state
        .store
        .model(&request.model_name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no model `{}`", request.model_name)))?;
    let entry: ModelEntry = serde_json::from_value(model.settings.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "model `{}` has no runnable settings (register it with POST /api/evals/models or a sweep): {e}",
            model.name
        ))
    })?;
    let data_dir = request
        .data_dir
        .map(std::path::PathBuf::from)
        .or_else(|| state.config.data_dir.clone());
    let limit = request.limit;
    // Resolving and fingerprinting the model reads its weights: off the async workers.
    let identity = {
        let (entry, data_dir) = (entry.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || {
            let model = entry.spec(false).identity()?;
            let task = tasks::by_name(&task).expect("known");
            task_identities(&model, &[task], data_dir.as_deref(), limit)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::bad_request(format!("cannot queue: {e}")))?
        .remove(0)
    };
    let filter = RunFilter {
        model: Some(model.name.clone()),
        task: Some(task_def.name().to_string()),
        ..RunFilter::default()
    };
    if let Some(open) = state.store.runs(&filter).await?.into_iter().find(|r| {
        r.identity_key == identity.key && matches!(r.status, RunStatus::Queued | RunStatus::Running)
    }) {
        return Err(ApiError::conflict(format!(
            "run {} of {} on {} is already {}",
            open.id.as_str(),
            model.name,
            task_def.name(),
            open.status.as_str()
        )));
    }
    let new = NewRun {
        model: model.name.clone(),
        task: task_def.name().to_string(),
        identity_key: identity.key.clone(),
        config: json!({
            "entry": entry,
            "data_dir": data_dir,
            "limit": limit,
            "resume": true,
            "identity": identity.value,
        }),
        primary_metric: task_def.primary_key(),
        output_dir: None,
    };
    let id = state.store.enqueue(&new).await?;
    let run = state
        .store
        .get(id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("the queued run vanished"))?;
    Ok(Json(run.view()))
}
