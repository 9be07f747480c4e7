//! The SSE body shared by chat and text completions: whatever opening chunks the endpoint
//! wants, one chunk per engine event the endpoint turns into one, the usage chunk when the
//! client asked for it, then `data: [DONE]`. Dropping the body (the client went away)
//! drops the engine stream, which aborts the request and frees its KV blocks.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Serialize;
use vlm_core::{TokenEvent, Usage};
use vlm_engine::RequestStream;

use crate::error::ApiError;

/// What every chunk or response of one request shares.
pub(super) struct Reply {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Whether the client asked for logprobs.
    pub logprobs: bool,
}

pub(super) fn event(body: &impl Serialize) -> Event {
    Event::default().data(serde_json::to_string(body).unwrap_or_default())
}

/// How an endpoint spells its chunks.
pub(super) trait ChunkWriter: Send + 'static {
    /// The chunk for one engine event; `None` when it carries nothing to send.
    fn token(&self, event: TokenEvent) -> Option<Event>;
    /// The `choices: []` chunk with the request's usage.
    fn usage(&self, usage: Usage) -> Event;
}

pub(super) fn sse_response<W: ChunkWriter>(
    writer: W,
    opening: Vec<Event>,
    stream: RequestStream,
    include_usage: bool,
) -> Response {
    struct St<W> {
        writer: W,
        stream: RequestStream,
        pending: VecDeque<Event>,
        open: usize,
        completion_tokens: usize,
        done: bool,
    }
    let st = St {
        writer,
        open: stream.n(),
        stream,
        pending: opening.into(),
        completion_tokens: 0,
        done: false,
    };
    let body = stream::unfold(st, move |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok::<_, Infallible>(event), st));
            }
            if st.done {
                return None;
            }
            if st.open == 0 {
                if include_usage {
                    let usage = Usage {
                        prompt_tokens: st.stream.prompt_tokens,
                        completion_tokens: st.completion_tokens,
                    };
                    st.pending.push_back(st.writer.usage(usage));
                }
                st.pending.push_back(Event::default().data("[DONE]"));
                st.done = true;
                continue;
            }
            // The engine went away mid-request: end the stream without [DONE].
            let token = st.stream.next().await?;
            if token.finish_reason.is_some() {
                st.open -= 1;
                st.completion_tokens += token.usage.map_or(0, |u| u.completion_tokens);
            }
            if let Some(error) = &token.error {
                // The engine failed this request: an error event in OpenAI's shape, then
                // the stream ends without [DONE], as vLLM ends a failed stream.
                st.pending
                    .push_back(event(&ApiError::internal(error.clone()).body()));
                st.done = true;
                continue;
            }
            if let Some(chunk) = st.writer.token(token) {
                st.pending.push_back(chunk);
            }
        }
    });
    Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response()
}
