//! What the engine streams back: one event per generated token, with every string a
//! caller shows already made (text delta, logprob token texts), and token counts.

use serde::{Deserialize, Serialize};

use crate::sampling::FinishReason;

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
    /// The token's own text as logprobs show it (special tokens included, with the
    /// leading space it has mid-sentence); empty unless the request asked for logprobs.
    pub token: String,
    /// The most likely alternatives, when asked for.
    pub top_logprobs: Vec<TokenLogprob>,
    /// Set on the completion's last event.
    pub finish_reason: Option<FinishReason>,
    /// Set on the completion's last event.
    pub usage: Option<Usage>,
    /// Set on the last event of a completion the engine failed (finish reason `Abort`): a
    /// server-side error in this request's own work, which no other request shares.
    pub error: Option<String>,
}

/// One candidate token and its log-probability, with its text as logprobs show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token_id: u32,
    pub token: String,
    pub logprob: f32,
}
