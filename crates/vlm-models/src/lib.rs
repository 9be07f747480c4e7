//! Everything that turns (images, text) into logits: checkpoint loading, image
//! preprocessing, chat templates and tokenization, and the LLaVA and Qwen2-VL networks over a
//! decoder that reads and writes a caller-owned KV cache.

pub mod decoder;
mod error;
mod family;
pub mod layers;
pub mod llava;
pub mod loader;
mod model;
pub mod preprocess;
pub mod qwen2_vl;
pub mod text;

pub use decoder::{LogitRows, MropePositions, SeqStep};
pub use error::{ModelError, Result, UnsupportedConfig};
pub use family::{ImagePixels, PreparedImage, PreparedPrompt};
pub use loader::LoadOptions;
pub use model::{distribution_distance, VlmModel};
