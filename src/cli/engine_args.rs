//! The engine flags `vlm-serve` and `vlm-eval` share.

use vlm_engine::EngineConfig;

#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Memory for the KV cache in GiB (as vLLM's VLLM_CPU_KVCACHE_SPACE).
    #[arg(long, env = "VLM_KV_CACHE_GB", default_value_t = 4.0)]
    pub kv_cache_gb: f64,
    /// Longest prompt + completion (default: the model's max_position_embeddings).
    #[arg(long)]
    pub max_model_len: Option<usize>,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 64)]
    pub max_num_seqs: usize,
    /// Most tokens one engine step computes, decodes plus prefill chunks (default: vlm-serve
    /// 2048; vlm-eval 512 on CPU, where larger prefill chunks measured slower per token,
    /// and 4096 on CUDA).
    #[arg(long)]
    pub max_batched_tokens: Option<usize>,
    /// Compute every prompt in full instead of reusing the keys and values of a prefix
    /// computed before (prefix caching is on by default, as in vLLM; outputs are the same
    /// either way on the CPU).
    #[arg(long)]
    pub no_prefix_caching: bool,
    /// Test-only fault injection: fail every engine step that includes a prompt with this
    /// token id (to test that a failure costs only its own request).
    #[arg(long, hide = true)]
    pub fail_steps_with_token: Option<u32>,
}

impl EngineArgs {
    /// The engine configuration, with the binary's own `max_batched_tokens` default.
    pub fn config(&self, default_batched_tokens: usize) -> EngineConfig {
        EngineConfig {
            kv_cache_gb: self.kv_cache_gb,
            max_model_len: self.max_model_len,
            max_num_seqs: self.max_num_seqs,
            max_batched_tokens: self.max_batched_tokens.unwrap_or(default_batched_tokens),
            fail_steps_with_token: self.fail_steps_with_token,
            enable_prefix_caching: !self.no_prefix_caching,
            ..EngineConfig::default()
        }
    }
}
