//! What callers submit: the input (a conversation, raw text or token ids), its sampling
//! parameters and its per-request pixel budget.

use vlm_core::{ChatMessage, SamplingParams};
use vlm_models::preprocess::PixelBudget;

use crate::constraint::OutputFormat;

/// What to generate from.
#[derive(Debug, Clone)]
pub enum RequestInput {
    /// A conversation, templated with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is (with the tokenizer's special tokens, e.g. a BOS).
    Text(String),
    /// Token ids, used as is.
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub input: RequestInput,
    pub sampling: SamplingParams,
    /// Qwen2-VL's per-request `min_pixels` / `max_pixels`.
    pub pixel_budget: PixelBudget,
    /// A structured output the completions must follow.
    pub format: Option<OutputFormat>,
}

impl GenerationRequest {
    pub fn chat(messages: Vec<ChatMessage>, sampling: SamplingParams) -> Self {
        Self {
            input: RequestInput::Chat(messages),
            sampling,
            pixel_budget: PixelBudget::default(),
            format: None,
        }
    }
}
