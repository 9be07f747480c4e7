//! Everything that turns (images, text) into logits: checkpoint loading, image
//! preprocessing, chat templates and tokenization, and the LLaVA network over a decoder that
//! reads and writes a caller-owned KV cache.

pub mod decoder;
mod error;
pub mod llava;
pub mod loader;
mod model;
pub mod preprocess;
pub mod text;

pub use error::{ModelError, Result};
pub use model::{LoadOptions, LogitRows, PreparedImage, PreparedPrompt, SeqStep, VlmModel};
