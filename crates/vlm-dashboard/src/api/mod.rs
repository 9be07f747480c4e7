//! `/api/evals/...`: the REST API over the runs store. Reading is open unless the dashboard
//! protects reads; writing (POST) needs the API key when one is set.

mod catalog;
mod compare;
mod events;
mod files;
mod query;
mod runs;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::DashboardState;

pub fn routes(state: Arc<DashboardState>) -> Router<Arc<DashboardState>> {
    Router::new()
        .route("/tasks", get(catalog::tasks).post(catalog::add_task))
        .route("/tasks/{name}", get(catalog::task))
        .route("/models", get(catalog::models).post(catalog::add_model))
        .route("/models/{name}", get(catalog::model))
        .route(
            "/tasks/{task}/runs",
            get(runs::task_runs).post(runs::queue_run),
        )
        .route("/tasks/{task}/leaderboard", get(runs::leaderboard))
        .route("/runs", get(runs::all_runs))
        .route("/runs/{id}", get(runs::run))
        .route("/runs/{id}/artifacts", get(files::artifacts))
        .route("/runs/{id}/artifacts/{name}", get(files::artifact))
        .route("/runs/{id}/samples", get(files::samples))
        .route(
            "/runs/{id}/samples/{doc_id}/images/{k}",
            get(files::sample_image),
        )
        .route("/runs/{id}/events", get(events::events))
        .route("/compare", get(compare::compare))
        .fallback(|| async { ApiError::not_found("no such API route") })
        .layer(middleware::from_fn_with_state(state, guard))
}

/// The API key check: writing routes, and every route when reads are protected.
async fn guard(State(state): State<Arc<DashboardState>>, request: Request, next: Next) -> Response {
    let Some(key) = &state.config.api_key else {
        return next.run(request).await;
    };
    let writing = request.method() != Method::GET && request.method() != Method::HEAD;
    if !writing && !state.config.protect_reads {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}
