//! `/v1/models`, `/health` and `/version`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let root = state.engine.model_path().display().to_string();
    let data: Vec<_> = state
        .config
        .served_model_names
        .iter()
        .map(|name| {
            json!({
                "id": name,
                "object": "model",
                "created": state.started,
                "owned_by": "vlm",
                "root": root,
                "parent": null,
                "max_model_len": state.engine.max_model_len(),
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
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
