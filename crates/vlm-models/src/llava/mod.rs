//! LLaVA-1.5: a CLIP vision tower, a two-layer projector, and a Llama decoder.

mod clip;
mod config;
mod model;
mod projector;

pub use config::{ClipVisionConfig, FeatureLayers, LlavaConfig};
pub(crate) use model::LlavaModel;
pub use model::KEY_LAYOUT;
