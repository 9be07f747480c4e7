//! `vlm-eval`'s flags for an evaluation: the model, in-process or behind a server (given,
//! replicated or deployed for the run), the requests, resuming and recording.

use clap::Args;

use super::common_args::CommonArgs;
use crate::cli::{EngineArgs, ModelArgs};

// (A doc comment here would become the command's about text.)
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
    #[command(flatten)]
    pub(super) model: ModelArgs,
    /// Evaluate against an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)
    /// instead of loading the model here; --model is then the name sent in requests. Give
    /// it several times for replicas of one model: requests go to the least busy, and a
    /// failing one is left out while its requests are retried on the others.
    #[arg(long, conflicts_with = "deploy")]
    pub(super) base_url: Vec<String>,
    /// Start a server for the run and evaluate against it: a shell command with `{port}`
    /// (and `{model}`, replaced by --model), e.g. "vllm serve {model} --port {port}". It is
    /// stopped after the run; its log is deploy.log in --output-dir.
    #[arg(long)]
    pub(super) deploy: Option<String>,
    /// Seconds the deployed server may take to answer /v1/models.
    #[arg(long, default_value_t = 900)]
    pub(super) deploy_timeout: u64,
    /// Seconds the deployed server gets to exit after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 20)]
    pub(super) deploy_grace: u64,
    /// Replace every task's max_new_tokens (lmms-eval's --gen_kwargs max_new_tokens=N), e.g.
    /// for MathVista's 16384 on a model with a shorter context. Part of the run's identity.
    #[arg(long)]
    pub(super) max_new_tokens: Option<usize>,
    /// Bearer key for --base-url.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub(super) api_key: Option<String>,
    /// Requests in flight against --base-url.
    #[arg(long, default_value_t = 8)]
    pub(super) concurrency: usize,
    /// Attempts per request against --base-url (transport errors, timeouts, 408/429/5xx).
    #[arg(long, default_value_t = 5)]
    pub(super) max_retries: usize,
    /// Seconds before a request to --base-url times out.
    #[arg(long, default_value_t = 600)]
    pub(super) request_timeout: u64,
    /// Keep the answers already in --output-dir and only ask for the missing or failed ones.
    #[arg(long)]
    pub(super) resume: bool,
    /// Record each task's run in this runs store: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub(super) db: Option<String>,
    /// The model's name in the runs store (default: --model).
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Qwen2-VL: fewest pixels an image is resized to (overrides the checkpoint's min_pixels).
    #[arg(long)]
    pub(super) min_pixels: Option<u64>,
    /// Qwen2-VL: most pixels an image is resized to (overrides the checkpoint's max_pixels).
    #[arg(long)]
    pub(super) max_pixels: Option<u64>,
    /// Runs a worker claimed for these tasks ("task=id,..."): recorded into, not duplicated.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub(super) claimed_runs: Vec<String>,
    /// The in-process engine.
    #[command(flatten)]
    pub(super) engine: EngineArgs,
}
