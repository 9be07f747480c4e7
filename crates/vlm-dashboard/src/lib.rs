//! The dashboard: a REST API over the runs store (`/api/evals/...`: tasks, models, runs,
//! leaderboards, artifacts, samples, live events) and the page that reads it, served by
//! one binary with its assets embedded.

mod api;
mod error;
mod page;
mod state;

pub use state::{DashboardConfig, DashboardState, ImagesKey};

use std::sync::Arc;

use axum::Router;

/// The dashboard's routes: the page at `/`, the API under `/api/evals`.
pub fn router(state: Arc<DashboardState>) -> Router {
    Router::new()
        .merge(page::routes())
        .nest("/api/evals", api::routes(state.clone()))
        .fallback(|| async { error::ApiError::not_found("no such page or API route") })
        .with_state(state)
}
