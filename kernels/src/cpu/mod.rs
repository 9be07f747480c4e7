//! CPU kernels: the packed GEMM (f32, bf16 and f16 panels) and paged attention, run on candle's pinned pool.

mod disjoint;
mod features;
pub mod gemm_packed;
pub mod paged_attention;

pub use features::{avx2_fma, f16c};
pub use gemm_packed::{PackedF32Weight, PackedWeight, PanelElem};
pub use paged_attention::{paged_attention, PagedKv, PagedQuery};
