//! Request preparation off the async workers, a bounded number at a time.

use crate::error::ApiError;
use crate::state::AppState;

/// Runs request preparation (image fetching and decoding, templating, tokenizing) off the
/// async workers: it is CPU and file work.
pub(super) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    // Decoded images are the largest thing a request makes: only so many at once.
    let _permit = state
        .preparations
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request preparation failed: {e}")))?
}
