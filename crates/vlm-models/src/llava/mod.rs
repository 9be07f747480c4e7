//! LLaVA-1.5: a CLIP vision tower, a two-layer projector, and a Llama decoder.

mod clip;
mod config;
mod model;
mod projector;

pub use config::{ClipVisionConfig, FeatureLayers, LlavaConfig};
pub use model::LlavaModel;

use crate::loader::KeyLayout;

/// llava-hf hub checkpoints predate transformers 5's `model.` nesting; transformers 5's own
/// `save_pretrained` writes those names too, except for the vision tower's `vision_model.`.
pub const KEY_LAYOUT: KeyLayout = KeyLayout {
    legacy_prefixes: &[
        ("model.language_model.", "language_model.model."),
        ("lm_head.", "language_model.lm_head."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.vision_tower.", "vision_tower."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ],
};
