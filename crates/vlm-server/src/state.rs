//! The state every handler shares: the engine handle, the server's limits, its start time.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use vlm_engine::Engine;

use crate::config::ServerConfig;
use crate::error::ApiError;

/// Shared by every handler.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    /// Unix seconds when the server started (`/v1/models`' `created`).
    pub started: u64,
    /// Permits for request preparation (image decoding, templating): at most
    /// `config.max_concurrent_preparations` at once, so decoded images bound memory.
    pub preparations: tokio::sync::Semaphore,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            engine,
            preparations: tokio::sync::Semaphore::new(config.max_concurrent_preparations.max(1)),
            config,
            started: unix_now(),
        })
    }

    /// The served name a request's `model` field refers to (404 otherwise, as vLLM does).
    pub fn check_model(&self, model: Option<&str>) -> Result<String, ApiError> {
        let names = &self.config.served_model_names;
        match model {
            // /tokenize and /detokenize may omit it.
            None => names
                .first()
                .cloned()
                .ok_or_else(|| ApiError::internal("the server has no served model name")),
            Some(m) if names.iter().any(|n| n == m) => Ok(m.to_string()),
            Some(m) => Err(ApiError::model_not_found(m)),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
