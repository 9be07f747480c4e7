//! The compute kernels on plain slices (no tensor type): CPU SIMD now, CUDA sources later
//! behind `--features cuda`. The model layers turn tensors into slices and call these.

pub mod cpu;
mod error;

pub use error::KernelError;
