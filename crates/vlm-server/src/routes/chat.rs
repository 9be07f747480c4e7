//! `POST /v1/chat/completions`, streamed (SSE) or not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use vlm_core::{FinishReason, TokenEvent, Usage};
use vlm_engine::{PixelBudget, RequestInput, RequestStream};

use super::blocking::blocking;
use super::stream::{event, sse_response, ChunkWriter, Reply};
use crate::body::parse_json;
use crate::error::ApiError;
use crate::messages::convert_messages;
use crate::output_format::{compile, requested_format};
use crate::protocol::chat::*;
use crate::protocol::common::{response_id, UsageBody};
use crate::state::{unix_now, AppState};
use crate::validate::{sampling_params, settle_max_tokens};

pub async fn handle(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatCompletionRequest = parse_json(body)?;
    refuse_unenforced(&req)?;
    let format = requested_format(
        req.response_format.as_ref(),
        req.structured_outputs.as_ref(),
    )?;
    let model = state.check_model(Some(&req.model))?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (Some(true), None) => Some(0),
        (Some(true), Some(k)) if k >= 0 => Some(k as usize),
        (_, Some(k)) if k < 0 => {
            return Err(
                ApiError::bad_request(format!("top_logprobs must be >= 0, got {k}"))
                    .with_param("top_logprobs"),
            )
        }
        (_, Some(k)) if k > 0 => {
            return Err(ApiError::bad_request("top_logprobs needs logprobs: true")
                .with_param("top_logprobs"))
        }
        _ => None,
    };
    let max_tokens = req.max_completion_tokens.or(req.sampling.max_tokens);
    let (mut params, requested) = sampling_params(req.sampling, max_tokens, logprobs)?;
    let budget = req
        .mm_processor_kwargs
        .map_or(PixelBudget::default(), |k| PixelBudget {
            min_pixels: k.min_pixels,
            max_pixels: k.max_pixels,
        });
    let prepare_state = state.clone();
    let messages_in = req.messages;
    let (prompt, grammar) = blocking(&state, move || {
        let grammar = compile(&prepare_state.engine, format.as_ref())?;
        let messages = convert_messages(messages_in, &prepare_state.config)?;
        let prompt = prepare_state
            .engine
            .prepare(RequestInput::Chat(messages), budget)?;
        Ok((prompt, grammar))
    })
    .await?;
    settle_max_tokens(
        &mut params,
        requested,
        prompt.token_ids.len(),
        state.engine.max_model_len(),
    )?;
    let want_logprobs = params.logprobs.is_some();
    let stream = state
        .engine
        .submit_constrained(prompt, params, grammar.as_ref())?;
    let reply = Reply {
        id: response_id("chatcmpl"),
        created: unix_now(),
        model,
        logprobs: want_logprobs,
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        // With include_usage every chunk carries `"usage": null` until the last.
        let usage_slot = include_usage.then_some(None);
        // The assistant role goes out with each completion's first token, after prefill,
        // as vLLM sends it: clients that time the first chunk (`vllm bench serve`'s TTFT)
        // then measure the real time to the first token.
        let started = (0..stream.n()).map(|_| AtomicBool::new(false)).collect();
        let writer = ChatChunks {
            reply,
            usage_slot,
            started,
        };
        Ok(sse_response(writer, Vec::new(), stream, include_usage))
    } else {
        Ok(Json(reply.collect(stream).await?).into_response())
    }
}

/// Tool calls change what a client may expect of the reply; this server does not enforce
/// them yet, so it says so (400 naming the field) instead of answering as if it had.
fn refuse_unenforced(req: &ChatCompletionRequest) -> Result<(), ApiError> {
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(
            ApiError::bad_request("tools are not supported by this server; omit tools")
                .with_param("tools"),
        );
    }
    if req.tool_choice.as_ref().is_some_and(|c| c != "none") {
        return Err(ApiError::bad_request(
            "tool_choice is not supported by this server; omit it or use \"none\"",
        )
        .with_param("tool_choice"));
    }
    Ok(())
}

/// One token's logprobs in OpenAI's chat shape, as the engine spelled its texts.
fn token_logprob(token: &str, logprob: f32, top: &[vlm_core::TokenLogprob]) -> TokenLogprob {
    TokenLogprob {
        bytes: token.as_bytes().to_vec(),
        token: token.to_string(),
        logprob,
        top_logprobs: top
            .iter()
            .map(|t| TopLogprob {
                bytes: t.token.as_bytes().to_vec(),
                token: t.token.clone(),
                logprob: t.logprob,
            })
            .collect(),
    }
}

impl Reply {
    /// The whole response; a completion the engine failed makes it a 500 with its error.
    async fn collect(&self, stream: RequestStream) -> Result<ChatCompletion, ApiError> {
        let (completions, usage) = stream.collect().await;
        if let Some(error) = completions.iter().find_map(|c| c.error.clone()) {
            return Err(ApiError::internal(error));
        }
        let choices = completions
            .into_iter()
            .map(|c| ChatChoice {
                index: c.index,
                logprobs: self.logprobs.then(|| ChatLogprobs {
                    content: c
                        .tokens
                        .iter()
                        .zip(&c.logprobs)
                        .zip(&c.top_logprobs)
                        .map(|((token, &lp), top)| token_logprob(token, lp, top))
                        .collect(),
                }),
                message: AssistantMessage {
                    role: "assistant",
                    content: c.text,
                    refusal: None,
                },
                finish_reason: c.finish_reason.as_str(),
            })
            .collect();
        Ok(ChatCompletion {
            id: self.id.clone(),
            object: "chat.completion",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.into(),
            system_fingerprint: None,
        })
    }

    fn chat_chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Option<UsageBody>>) -> Event {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            system_fingerprint: None,
        };
        event(&chunk)
    }
}

struct ChatChunks {
    reply: Reply,
    usage_slot: Option<Option<UsageBody>>,
    /// Whether each completion's first chunk (which carries the role) has gone out.
    started: Vec<AtomicBool>,
}

impl ChunkWriter for ChatChunks {
    fn token(&self, event: TokenEvent) -> Option<Event> {
        let reply = &self.reply;
        let real_token = event.finish_reason != Some(FinishReason::Abort);
        let logprobs = (reply.logprobs && real_token).then(|| ChatLogprobs {
            content: vec![token_logprob(
                &event.token,
                event.logprob,
                &event.top_logprobs,
            )],
        });
        let first = self
            .started
            .get(event.index)
            .is_some_and(|s| !s.swap(true, Ordering::Relaxed));
        if !first && event.text.is_empty() && event.finish_reason.is_none() && logprobs.is_none() {
            return None;
        }
        let choice = ChunkChoice {
            index: event.index,
            delta: Delta {
                role: first.then_some("assistant"),
                content: (first || !event.text.is_empty()).then_some(event.text),
            },
            logprobs,
            finish_reason: event.finish_reason.map(|r| r.as_str()),
        };
        Some(reply.chat_chunk(vec![choice], self.usage_slot))
    }

    fn usage(&self, usage: Usage) -> Event {
        self.reply.chat_chunk(Vec::new(), Some(Some(usage.into())))
    }
}
