//! [`ServerConfig`]: the limits and switches the HTTP layer enforces (names, key, media).

use std::path::PathBuf;
use std::time::Duration;

/// What the HTTP layer enforces; the engine's own limits (context, KV cache) come from it.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Names the model answers to; the first is the one `/v1/models` lists first.
    pub served_model_names: Vec<String>,
    /// `Authorization: Bearer <key>` required on `/v1/*` when set.
    pub api_key: Option<String>,
    pub limit_images_per_prompt: usize,
    /// Local image paths (`file://` or bare) are read only under this directory.
    pub allowed_local_media_path: Option<PathBuf>,
    pub allow_remote_images: bool,
    pub remote_image_timeout: Duration,
    /// Largest encoded image, from any source.
    pub max_image_bytes: usize,
    /// Largest decoded image (width x height).
    pub max_image_pixels: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests whose images are decoded and prompts prepared at once; the rest wait.
    pub max_concurrent_preparations: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            served_model_names: vec!["model".into()],
            api_key: None,
            limit_images_per_prompt: 8,
            allowed_local_media_path: None,
            allow_remote_images: false,
            remote_image_timeout: Duration::from_secs(10),
            max_image_bytes: 20 * 1024 * 1024,
            max_image_pixels: 8192 * 8192,
            max_body_bytes: 64 * 1024 * 1024,
            max_concurrent_preparations: 2,
        }
    }
}
