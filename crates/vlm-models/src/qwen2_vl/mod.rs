//! Qwen2-VL: a dynamic-resolution vision transformer with 2D rotary attention and a patch
//! merger, and a Qwen2 decoder with multimodal (3D) rotary positions.

mod config;
mod model;
mod rope_index;
mod vision;

pub use config::{Qwen2VlConfig, VisionConfig};
pub(crate) use model::Qwen2VlModel;
pub use model::KEY_LAYOUT;
pub use rope_index::mrope_positions;
