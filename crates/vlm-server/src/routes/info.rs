//! `/v1/models`, `/v1/models/{id}`, `/health` and `/version`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// One served name as OpenAI's model object.
fn model_card(state: &AppState, name: &str) -> serde_json::Value {
    json!({
        "id": name,
        "object": "model",
        "created": state.started,
        "owned_by": "vlm",
        "root": state.engine.model_path().display().to_string(),
        "parent": null,
        "max_model_len": state.engine.max_model_len(),
    })
}

pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let data: Vec<_> = state
        .config
        .served_model_names
        .iter()
        .map(|name| model_card(&state, name))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}` (the SDKs' `models.retrieve`): the model, or 404 as vLLM answers.
pub async fn model(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = state.check_model(Some(&id))?;
    Ok(Json(model_card(&state, &name)))
}

/// 200 while the engine runs, 503 once it has stopped.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.engine.is_running() {
        StatusCode::OK.into_response()
    } else {
        ApiError::unavailable("the engine has stopped").into_response()
    }
}

pub async fn version() -> Json<serde_json::Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}
