//! The compute kernels on plain slices (no tensor type): CPU SIMD now, CUDA sources later
//! behind `--features cuda`. The model layers turn tensors into slices and call these.

pub mod cpu;

/// A kernel refused its inputs; the message says which shape or table is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KernelError(pub String);
