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
use axum::http::{header, Method, StatusCode};
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
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(state, guard))
}

/// The API key check: writing routes, and every route when reads are protected.
async fn guard(State(state): State<Arc<DashboardState>>, request: Request, next: Next) -> Response {
    let writing = request.method() != Method::GET && request.method() != Method::HEAD;
    // Writing takes JSON only: a page elsewhere cannot post a form or text/plain to it
    // without a CORS preflight, so a dashboard without a key is not writable cross-site.
    if writing {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            )
            .into_response();
        }
    }
    let Some(key) = &state.config.api_key else {
        return next.run(request).await;
    };
    if !writing && !state.config.protect_reads {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    if given == Some(key.as_str()) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}
