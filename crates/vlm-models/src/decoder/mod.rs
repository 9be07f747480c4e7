//! The Llama / Qwen2 text decoder shared by LLaVA and Qwen2-VL: batched over sequences of
//! different lengths, positions given by the caller, keys and values written through
//! [`KvCache`], which the engine owns.

mod attention;
mod config;
mod kv;
mod paged_attention;
mod rotary;
mod stack;
mod steps;

pub use attention::{DecoderInput, SeqSlice};
pub use config::{DecoderConfig, Flavor};
pub use kv::{ContiguousKvCache, KvCache};
pub use paged_attention::PagedLayer;
pub use rotary::{MropePositions, RotaryEmbedding};
pub use stack::Decoder;
pub use steps::{LogitRows, SeqStep};
