use serde::{Deserialize, Serialize};

use crate::FinishReason;

/// Token counts of one request, as OpenAI's `usage` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    pub fn total_tokens(&self) -> usize {
        self.prompt_tokens + self.completion_tokens
    }
}

/// One generated token of one completion (`index` among the request's `n`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEvent {
    pub index: usize,
    pub token_id: u32,
    /// Text this token adds. Empty while the text might still turn into a stop string (held
    /// back), or when a token completes no character yet.
    pub text: String,
    pub logprob: f32,
    /// The most likely alternatives and their log-probabilities, when asked for.
    pub top_logprobs: Vec<(u32, f32)>,
    /// Set on the completion's last event.
    pub finish_reason: Option<FinishReason>,
    /// Set on the completion's last event.
    pub usage: Option<Usage>,
}
