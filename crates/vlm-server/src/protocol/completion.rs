//! `/v1/completions` bodies: the request with its prompt forms, and the response (streamed
//! chunks share its shape).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{SamplingFields, StreamOptions, UsageBody};

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptIn,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    /// Alternatives per token (0-20); the chosen token's logprob is always included.
    pub logprobs: Option<i64>,
    pub echo: Option<bool>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// OpenAI's structured outputs (`json_object`, `json_schema`), as vLLM takes them here too.
    pub response_format: Option<serde_json::Value>,
    /// vLLM's structured outputs (`json`, `regex`, `choice`, `grammar`, `json_object`).
    pub structured_outputs: Option<serde_json::Value>,
}

/// A string, a list of strings, a list of token ids, or a list of lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptIn {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Serialize)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageBody>,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    pub index: usize,
    pub text: String,
    pub logprobs: Option<CompletionLogprobs>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    pub text_offset: Vec<usize>,
}
