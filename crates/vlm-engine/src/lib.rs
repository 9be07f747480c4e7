//! The batched runtime: one model shared by many callers. Requests are prepared on the
//! caller's thread, scheduled with continuous batching over a paged KV cache sized in GiB,
//! sampled with vLLM's parameters, and streamed back token by token.

mod config;
mod constraint;
mod engine;
mod error;
mod image_cache;
mod kv_cache;
mod metrics;
mod output;
mod request;
mod sampler;
mod scheduler;
mod sequence;
mod stream;
mod threads;
mod worker;

pub use config::EngineConfig;
pub use constraint::{Grammar, GrammarCompiler, OutputFormat};
pub use engine::Engine;
pub use error::EngineError;
pub use kv_cache::{BlockPool, KvLayout, PagedKvCache};
pub use metrics::{EngineStats, Histogram};
pub use request::{GenerationRequest, RequestInput};
pub use sampler::{Sampled, Sampler};
pub use stream::{Completion, RequestStream};
pub use threads::{
    available_cores, configure_threads, current_thread_cores, format_cpu_list, parse_cpu_list,
    pin_current_thread, thread_plan, CpuListError, PinError, ThreadPlan,
};
pub use vlm_models::preprocess::PixelBudget;
pub use vlm_models::PreparedPrompt;
