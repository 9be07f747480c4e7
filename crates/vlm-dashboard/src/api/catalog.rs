//! Tasks and models: listed, looked up, and registered.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vlm_eval::tasks;
use vlm_runs::{ModelRecord, TaskRecord};

use super::query::ApiPath;
use crate::error::ApiError;
use crate::state::DashboardState;

/// A JSON body, its errors a 4xx that says what is wrong (413 past the body limit).
pub fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn task_view(t: &TaskRecord) -> Value {
    json!({
        "name": t.name,
        "display_name": t.display_name,
        "primary_metric": t.primary_metric,
        "created_at": t.created_at,
        "known": tasks::by_name(&t.name).is_some(),
    })
}

fn model_view(m: &ModelRecord) -> Value {
    json!({
        "name": m.name,
        "display_name": m.display_name,
        "reference": m.reference,
        "base_url": m.base_url,
        "settings": m.settings,
        "params_b": m.params_b,
        "created_at": m.created_at,
    })
}

pub async fn tasks(State(state): State<Arc<DashboardState>>) -> Result<Json<Value>, ApiError> {
    let stored = state.store.tasks().await?;
    Ok(Json(Value::Array(stored.iter().map(task_view).collect())))
}

pub async fn task(
    State(state): State<Arc<DashboardState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .store
        .task(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no task `{name}`")))?;
    Ok(Json(task_view(&t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    name: String,
    display_name: Option<String>,
    primary_metric: Option<String>,
}

pub async fn add_task(
    State(state): State<Arc<DashboardState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let new: NewTask = parse(body)?;
    let known = tasks::by_name(&new.name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown task `{}`; vlm-eval knows: {}",
            new.name,
            tasks::names().join(", ")
        ))
    })?;
    // Metrics as the store keys them (`exact_match,flexible-extract` for a filtered one).
    let keys: Vec<String> = known
        .metric_names()
        .into_iter()
        .map(|m| known.metric_key(m))
        .collect();
    let primary = new.primary_metric.unwrap_or_else(|| known.primary_key());
    if !keys.contains(&primary) {
        return Err(ApiError::bad_request(format!(
            "{} has no metric `{primary}`; its metrics: {}",
            new.name,
            keys.join(", ")
        )));
    }
    let record = TaskRecord {
        display_name: new.display_name.unwrap_or_else(|| new.name.clone()),
        name: new.name,
        primary_metric: primary,
        created_at: 0,
    };
    state.store.upsert_task(&record).await?;
    let stored = state.store.task(&record.name).await?.unwrap_or(record);
    Ok(Json(task_view(&stored)))
}

pub async fn models(State(state): State<Arc<DashboardState>>) -> Result<Json<Value>, ApiError> {
    let stored = state.store.models().await?;
    Ok(Json(Value::Array(stored.iter().map(model_view).collect())))
}

pub async fn model(
    State(state): State<Arc<DashboardState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let m = state
        .store
        .model(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no model `{name}`")))?;
    Ok(Json(model_view(&m)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    name: String,
    display_name: Option<String>,
    /// Alias, hub id or directory (loaded in-process by workers).
    model: Option<String>,
    base_url: Option<String>,
    /// Engine settings as a sweep entry takes them (dtype, kv_cache_gb, ...).
    #[serde(default)]
    settings: serde_json::Map<String, Value>,
    params_b: Option<f64>,
}

pub async fn add_model(
    State(state): State<Arc<DashboardState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let new: NewModel = parse(body)?;
    if new.model.is_some() == new.base_url.is_some() {
        return Err(ApiError::bad_request(
            "give either model (loaded by the workers) or base_url (a remote /v1)",
        ));
    }
    // The sweep entry a worker runs: checked now, so a queued run cannot fail on it later.
    let mut entry = new.settings.clone();
    entry.insert("name".into(), json!(new.name));
    if let Some(m) = &new.model {
        entry.insert("model".into(), json!(m));
    }
    if let Some(u) = &new.base_url {
        entry.insert("base_url".into(), json!(u));
    }
    let entry: vlm_eval::sweep::ModelEntry = serde_json::from_value(Value::Object(entry))
        .map_err(|e| ApiError::bad_request(format!("invalid model settings: {e}")))?;
    entry
        .check()
        .map_err(|e| ApiError::bad_request(format!("model `{}`: {e}", entry.name)))?;
    if new.params_b.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
        return Err(ApiError::bad_request(
            "params_b must be a non-negative number",
        ));
    }
    let record = ModelRecord {
        display_name: new.display_name.unwrap_or_else(|| new.name.clone()),
        name: new.name,
        reference: new.model,
        base_url: new.base_url,
        settings: serde_json::to_value(&entry).map_err(|e| ApiError::internal(e.to_string()))?,
        params_b: new.params_b,
        created_at: 0,
    };
    state.store.upsert_model(&record).await?;
    let stored = state.store.model(&record.name).await?.unwrap_or(record);
    Ok(Json(model_view(&stored)))
}
