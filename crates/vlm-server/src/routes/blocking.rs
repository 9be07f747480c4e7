//! Request preparation off the async workers.

use crate::error::ApiError;

/// Runs request preparation (image fetching and decoding, templating, tokenizing) off the
/// async workers: it is CPU and file work.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request preparation failed: {e}")))?
}
