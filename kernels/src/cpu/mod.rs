//! CPU kernels: the packed f32 GEMM and paged decode attention, run on candle's pinned pool.

mod disjoint;
mod features;
pub mod gemm_f32;
pub mod paged_attention;

pub use features::avx2_fma;
pub use gemm_f32::PackedF32Weight;
pub use paged_attention::{paged_attention, PagedKv, PagedQuery};
