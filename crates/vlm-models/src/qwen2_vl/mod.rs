//! Qwen2-VL: a dynamic-resolution vision transformer with 2D rotary attention and a patch
//! merger, and a Qwen2 decoder with multimodal (3D) rotary positions.

mod config;
mod model;
mod rope_index;
mod vision;

pub use config::{Qwen2VlConfig, VisionConfig};
pub use model::Qwen2VlModel;
pub use rope_index::mrope_positions;

use crate::loader::KeyLayout;

/// Hub checkpoints (and transformers 5's save_pretrained) use `model.*` for the decoder and
/// `visual.*` for the vision tower; transformers 5's modules are `model.language_model.*`
/// and `model.visual.*`.
pub const KEY_LAYOUT: KeyLayout = KeyLayout {
    legacy_prefixes: &[
        ("model.language_model.", "model."),
        ("model.visual.", "visual."),
    ],
};
