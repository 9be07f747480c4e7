use vlm_core::SamplingParamsError;
use vlm_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("invalid sampling parameter {0}")]
    Sampling(#[from] SamplingParamsError),
    #[error("the prompt ({prompt} tokens) plus max_tokens ({max_tokens}) exceeds the model's context of {limit} tokens")]
    ExceedsContext {
        prompt: usize,
        max_tokens: usize,
        limit: usize,
    },
    #[error("the prompt ({prompt} tokens) plus max_tokens ({max_tokens}) needs more KV cache than exists ({capacity} tokens); raise --kv-cache-gb or lower max_tokens")]
    ExceedsKvCache {
        prompt: usize,
        max_tokens: usize,
        capacity: usize,
    },
    #[error("invalid engine configuration: {0}")]
    Config(String),
    #[error("the engine has stopped")]
    Stopped,
}
