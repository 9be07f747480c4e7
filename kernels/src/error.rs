//! Why a kernel refused its inputs.

/// A kernel refused its inputs; the message says which shape or table is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KernelError(pub String);
