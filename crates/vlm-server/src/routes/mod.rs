//! The router: every endpoint, the `/v1` key check, the body limit and OpenAI-shaped
//! 404/405s; and `blocking`, which runs request preparation off the async workers.

mod blocking;
mod chat;
mod completions;
mod info;
mod metrics;
mod stream;
mod tokenize;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::require_key;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(chat::handle))
        .route("/completions", post(completions::handle))
        .route("/models", get(info::models))
        .route("/models/{id}", get(info::model))
        // Unknown /v1 paths too: without the key a client learns nothing (401 before 404).
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ));
    // vLLM's tokenizer endpoints read images too: behind the key like /v1/*. Health,
    // version and metrics stay open for probes and scrapers.
    let tokenizer = Router::new()
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ));
    Router::new()
        .nest("/v1", v1)
        .merge(tokenizer)
        .route("/health", get(info::health))
        .route("/version", get(info::version))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::not_found(&format!("route {}", uri.path())).into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::bad_request(format!("{method} is not allowed on {}", uri.path()))
        .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
        .into_response()
}
