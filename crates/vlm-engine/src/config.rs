//! How the engine sizes its KV cache and batches.

/// How the engine sizes its KV cache and batches.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Memory for keys and values, in GiB (vLLM's VLLM_CPU_KVCACHE_SPACE).
    pub kv_cache_gb: f64,
    /// Tokens per KV block.
    pub block_size: usize,
    /// Longest prompt + completion; defaults to the model's `max_position_embeddings`.
    pub max_model_len: Option<usize>,
    /// Most sequences running at once.
    pub max_num_seqs: usize,
    /// Most tokens one step computes (decodes plus prefill chunks).
    pub max_batched_tokens: usize,
    /// Reuse the keys and values of a prompt prefix computed before (full blocks, matched
    /// by content): vLLM's automatic prefix caching.
    pub enable_prefix_caching: bool,
    /// Distinct images whose vision features are kept.
    pub image_cache_entries: usize,
    /// Test-only fault injection: a forward step fails when a sequence in it has this token
    /// id in its prompt, so tests can check that such a failure costs only that request.
    #[doc(hidden)]
    pub fail_steps_with_token: Option<u32>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kv_cache_gb: 4.0,
            block_size: 16,
            max_model_len: None,
            max_num_seqs: 64,
            max_batched_tokens: 2048,
            enable_prefix_caching: true,
            image_cache_entries: 256,
            fail_steps_with_token: None,
        }
    }
}
