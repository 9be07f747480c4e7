//! The OpenAI-compatible HTTP server over an [`Engine`](vlm_engine::Engine):
//! `/v1/chat/completions`, `/v1/completions`, `/v1/models`, plus vLLM's `/tokenize`,
//! `/detokenize`, `/health`, `/version` and Prometheus `/metrics`. Every error a client can
//! cause is a 4xx in OpenAI's error shape; nothing a request carries can panic the server.

mod auth;
mod body;
mod config;
mod connections;
mod error;
mod media;
mod messages;
mod output_format;
mod protocol;
mod routes;
mod state;
mod validate;

pub use config::ServerConfig;
pub use connections::{serve, ConnectionLimits};
pub use error::ApiError;
pub use routes::router;
pub use state::AppState;
