//! Where responses come from: the engine in this process, or any OpenAI-compatible server.
//! Both receive the same prompts (content parts in lmms-eval's chat order, images as
//! `convert("RGB")` pixels) and the same generation settings (greedy, `max_tokens`).

mod in_process;
mod job;
mod openai;

pub use in_process::InProcess;
pub use job::{Backend, ImagePartError, Job, PrepareError};
pub use openai::{OpenAiBackend, OpenAiError, OpenAiOptions};
