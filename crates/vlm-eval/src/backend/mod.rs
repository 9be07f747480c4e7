//! Where responses come from: the engine in this process, any OpenAI-compatible server (or
//! several replicas of one), or a server the run deploys itself.
//! Both receive the same prompts (content parts in lmms-eval's chat order, images as
//! `convert("RGB")` pixels) and the same generation settings (greedy, `max_tokens`).

mod deploy;
mod in_process;
mod job;
mod openai;
mod replicas;

pub use deploy::{log_tail, DeployError, DeployOptions, Deployment};
pub use in_process::InProcess;
pub use job::{Backend, ImagePartError, Job, PrepareError};
pub use openai::{OpenAiBackend, OpenAiError, OpenAiOptions};
