//! `POST /v1/chat/completions`, streamed (SSE) or not.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use vlm_core::{ChatMessage, ContentPart, FinishReason, Role, TokenEvent};
use vlm_engine::{EngineHandle, PixelBudget, RequestInput, RequestStream};

use super::blocking;
use crate::body::parse_json;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::media::load_image;
use crate::protocol::chat::*;
use crate::protocol::common::{finish_reason, response_id, UsageBody};
use crate::sampling::{sampling_params, settle_max_tokens};
use crate::state::{unix_now, AppState};

pub async fn handle(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(state, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatCompletionRequest = parse_json(body)?;
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
    let prompt = blocking(move || {
        let messages = convert_messages(messages_in, &prepare_state.config)?;
        Ok(prepare_state
            .engine
            .prepare(RequestInput::Chat(messages), budget)?)
    })
    .await?;
    settle_max_tokens(
        &mut params,
        requested,
        prompt.token_ids.len(),
        state.engine.max_model_len(),
    )?;
    let want_logprobs = params.logprobs.is_some();
    let stream = state.engine.submit_prepared(prompt, params)?;
    let reply = Reply {
        id: response_id("chatcmpl"),
        created: unix_now(),
        model,
        logprobs: want_logprobs,
        engine: state.engine.clone(),
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Sse::new(sse_events(reply, stream, include_usage))
            .keep_alive(KeepAlive::default())
            .into_response())
    } else {
        Ok(Json(reply.collect(stream).await).into_response())
    }
}

/// OpenAI messages -> engine messages, images loaded and checked.
pub(super) fn convert_messages(
    messages: Vec<MessageIn>,
    config: &ServerConfig,
) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").with_param("messages"));
    }
    let mut images = 0;
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}].role {other:?} is not supported (system, developer, user, assistant)"
                ))
                .with_param(format!("messages[{i}].role")))
            }
        };
        let content = match m.content {
            None => Vec::new(),
            Some(ContentIn::Text(text)) => vec![ContentPart::Text(text)],
            Some(ContentIn::Parts(parts)) => {
                let mut content = Vec::with_capacity(parts.len());
                for (j, part) in parts.into_iter().enumerate() {
                    match part {
                        PartIn::Text { text } => content.push(ContentPart::Text(text)),
                        PartIn::ImageUrl { image_url } => {
                            images += 1;
                            if images > config.limit_images_per_prompt {
                                return Err(ApiError::bad_request(format!(
                                    "at most {} images per prompt on this server (--limit-images-per-prompt)",
                                    config.limit_images_per_prompt
                                ))
                                .with_param("messages"));
                            }
                            let param = format!("messages[{i}].content[{j}].image_url");
                            content.push(ContentPart::Image(load_image(
                                image_url.url(),
                                config,
                                &param,
                            )?));
                        }
                    }
                }
                content
            }
        };
        out.push(ChatMessage::new(role, content));
    }
    Ok(out)
}

/// What every chunk or response of one request shares.
struct Reply {
    id: String,
    created: u64,
    model: String,
    logprobs: bool,
    engine: Arc<EngineHandle>,
}

impl Reply {
    fn token_logprob(&self, id: u32, logprob: f32, top: &[(u32, f32)]) -> TokenLogprob {
        let token = self.engine.token_text(id);
        TokenLogprob {
            bytes: token.as_bytes().to_vec(),
            token,
            logprob,
            top_logprobs: top
                .iter()
                .map(|&(t, lp)| {
                    let token = self.engine.token_text(t);
                    TopLogprob {
                        bytes: token.as_bytes().to_vec(),
                        token,
                        logprob: lp,
                    }
                })
                .collect(),
        }
    }

    async fn collect(&self, stream: RequestStream) -> ChatCompletion {
        let (completions, usage) = stream.collect().await;
        let choices = completions
            .into_iter()
            .map(|c| ChatChoice {
                index: c.index,
                logprobs: self.logprobs.then(|| ChatLogprobs {
                    content: c
                        .token_ids
                        .iter()
                        .zip(&c.logprobs)
                        .zip(&c.top_logprobs)
                        .map(|((&id, &lp), top)| self.token_logprob(id, lp, top))
                        .collect(),
                }),
                message: AssistantMessage {
                    role: "assistant",
                    content: c.text,
                    refusal: None,
                },
                finish_reason: finish_reason(c.finish_reason),
            })
            .collect();
        ChatCompletion {
            id: self.id.clone(),
            object: "chat.completion",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.into(),
            system_fingerprint: None,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Option<UsageBody>>) -> Event {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            system_fingerprint: None,
        };
        Event::default().data(serde_json::to_string(&chunk).unwrap_or_default())
    }
}

/// The SSE body: a role chunk per choice, a chunk per token with text (or logprobs), the
/// finish reason, the usage chunk when asked, then `[DONE]`. Dropping it (the client went
/// away) drops the engine stream, which aborts the request and frees its blocks.
fn sse_events(
    reply: Reply,
    stream: RequestStream,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct St {
        reply: Reply,
        stream: RequestStream,
        pending: VecDeque<Event>,
        open: usize,
        completion_tokens: usize,
        done: bool,
        include_usage: bool,
        usage_slot: Option<Option<UsageBody>>,
    }
    let n = stream.n();
    let usage_slot = include_usage.then_some(None);
    let mut pending = VecDeque::new();
    for index in 0..n {
        let delta = Delta {
            role: Some("assistant"),
            content: Some(String::new()),
        };
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: None,
        };
        pending.push_back(reply.chunk(vec![choice], usage_slot));
    }
    let st = St {
        reply,
        stream,
        pending,
        open: n,
        completion_tokens: 0,
        done: false,
        include_usage,
        usage_slot,
    };
    stream::unfold(st, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.done {
                return None;
            }
            if st.open == 0 {
                if st.include_usage {
                    let usage = vlm_core::Usage {
                        prompt_tokens: st.stream.prompt_tokens,
                        completion_tokens: st.completion_tokens,
                    };
                    let event = st.reply.chunk(Vec::new(), Some(Some(usage.into())));
                    st.pending.push_back(event);
                }
                st.pending.push_back(Event::default().data("[DONE]"));
                st.done = true;
                continue;
            }
            match st.stream.next().await {
                Some(event) => {
                    if event.finish_reason.is_some() {
                        st.open -= 1;
                        st.completion_tokens += event.usage.map_or(0, |u| u.completion_tokens);
                    }
                    if let Some(chunk) = token_chunk(&st.reply, &event, st.usage_slot) {
                        st.pending.push_back(chunk);
                    }
                }
                // The engine went away mid-request: end the stream without [DONE].
                None => return None,
            }
        }
    })
}

fn token_chunk(
    reply: &Reply,
    event: &TokenEvent,
    usage: Option<Option<UsageBody>>,
) -> Option<Event> {
    let real_token = event.finish_reason != Some(FinishReason::Abort);
    let logprobs = (reply.logprobs && real_token).then(|| ChatLogprobs {
        content: vec![reply.token_logprob(event.token_id, event.logprob, &event.top_logprobs)],
    });
    if event.text.is_empty() && event.finish_reason.is_none() && logprobs.is_none() {
        return None;
    }
    let choice = ChunkChoice {
        index: event.index,
        delta: Delta {
            role: None,
            content: (!event.text.is_empty()).then(|| event.text.clone()),
        },
        logprobs,
        finish_reason: event.finish_reason.map(finish_reason),
    };
    Some(reply.chunk(vec![choice], usage))
}
