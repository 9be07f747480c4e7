//! The runtime around a loaded model. For now: sampling and one-shot generation of a single
//! prompt (what `vlm-run` needs); continuous batching over a paged KV cache builds on these.

mod kv_cache;
mod oneshot;
mod sampler;

pub use oneshot::{generate, EngineError, Generation};
pub use sampler::Sampler;
