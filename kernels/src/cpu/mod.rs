//! CPU kernels: the packed GEMM (f32, bf16 and f16 panels), the q4_0 / q8_0 GEMM and paged
//! attention, run on candle's pinned pool.

mod attend_wide;
mod disjoint;
mod features;
pub mod gemm_packed;
pub mod gemm_q4k;
pub mod gemm_quant;
pub mod paged_attention;
mod quant_blocks;
mod quantize_q8;
mod softmax_exp;

pub use features::{avx2_fma, avx512, f16c};
pub use gemm_packed::{PackedF32Weight, PackedWeight, PanelElem};
pub use gemm_q4k::PackedQ4K;
pub use gemm_quant::{PackedQuant, QuantBlock, Q4_0, Q8_0};
pub use paged_attention::{paged_attention, PagedKv, PagedQuery};
