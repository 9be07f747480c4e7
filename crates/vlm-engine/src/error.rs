//! What can go wrong submitting to or running the engine, and which of it is the client's fault.

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
    /// A structured-output format that cannot be compiled, or that this model's vocabulary
    /// cannot spell.
    #[error("invalid output format: {0}")]
    Format(String),
    #[error("invalid engine configuration: {0}")]
    Config(String),
    #[error("the engine has stopped")]
    Stopped,
}

impl EngineError {
    /// Whether the request itself is at fault (a 4xx), as opposed to the model or the engine.
    pub fn is_client_error(&self) -> bool {
        match self {
            EngineError::Sampling(_)
            | EngineError::Format(_)
            | EngineError::ExceedsContext { .. }
            | EngineError::ExceedsKvCache { .. } => true,
            EngineError::Model(e) => matches!(
                e,
                ModelError::Image { .. }
                    | ModelError::ImageProcessing { .. }
                    | ModelError::InvalidRequest(_)
                    | ModelError::ImageCountMismatch { .. }
                    | ModelError::ChatTemplate(_)
                    | ModelError::Tokenizer(_)
            ),
            EngineError::Config(_) | EngineError::Stopped => false,
        }
    }

    /// The request parameter at fault, where there is one.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            EngineError::Sampling(e) => Some(e.param),
            EngineError::ExceedsContext { .. } | EngineError::ExceedsKvCache { .. } => {
                Some("max_tokens")
            }
            EngineError::Model(ModelError::Image { .. } | ModelError::ImageProcessing { .. }) => {
                Some("messages")
            }
            _ => None,
        }
    }
}
