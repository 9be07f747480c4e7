//! Everything that turns (images, text) into logits: checkpoint loading, image
//! preprocessing, chat templates and tokenization, and the LLaVA and Qwen2-VL networks over a
//! decoder that reads and writes a caller-owned KV cache.

mod activation;
pub mod decoder;
mod error;
pub mod llava;
pub mod loader;
mod model;
pub mod preprocess;
pub mod qwen2_vl;
pub mod text;

pub use error::{ModelError, Result};
pub use model::{
    ImagePixels, LoadOptions, LogitRows, PreparedImage, PreparedPrompt, SeqStep, VlmModel,
};
