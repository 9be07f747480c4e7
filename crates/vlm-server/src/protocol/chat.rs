//! `/v1/chat/completions` bodies: the request, its messages, the response and stream chunks.

use serde::{Deserialize, Serialize};

use super::common::{SamplingFields, StreamOptions, UsageBody};

#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<MessageIn>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    pub max_completion_tokens: Option<i64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// Qwen2-VL's per-request pixel budget (vLLM's `mm_processor_kwargs`).
    pub mm_processor_kwargs: Option<PixelKwargs>,
    /// OpenAI's structured outputs (`json_object`, `json_schema`).
    pub response_format: Option<serde_json::Value>,
    /// vLLM's structured outputs (`json`, `regex`, `choice`, `grammar`, `json_object`).
    pub structured_outputs: Option<serde_json::Value>,
    /// Read only to refuse what this server cannot enforce yet (never silently ignored).
    pub tools: Option<Vec<serde_json::Value>>,
    pub tool_choice: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PixelKwargs {
    pub min_pixels: Option<u64>,
    pub max_pixels: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Option<ContentIn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ContentIn {
    Text(String),
    /// Read as JSON first, so an unknown part type is named in the error (serde's own
    /// message for an untagged enum names nothing).
    Parts(Vec<serde_json::Value>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PartIn {
    Text { text: String },
    ImageUrl { image_url: ImageUrlIn },
}

/// `{"url": "..."}`, or the bare string some clients send.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ImageUrlIn {
    Object { url: String },
    Bare(String),
}

impl ImageUrlIn {
    pub fn url(&self) -> &str {
        match self {
            ImageUrlIn::Object { url } | ImageUrlIn::Bare(url) => url,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageBody,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: String,
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatLogprobs {
    pub content: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Present (null until the last chunk) only when `stream_options.include_usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageBody>>,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}
