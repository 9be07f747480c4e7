//! `POST /v1/completions`: text (or token-id) prompts, no chat template.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use vlm_core::{FinishReason, TokenEvent, TokenLogprob, Usage};
use vlm_engine::{PixelBudget, RequestInput};

use super::blocking::blocking;
use super::stream::{event, sse_response, ChunkWriter, Reply};
use crate::body::parse_json;
use crate::error::ApiError;
use crate::output_format::{compile, requested_format};
use crate::protocol::common::response_id;
use crate::protocol::completion::*;
use crate::state::{unix_now, AppState};
use crate::validate::{sampling_params, settle_max_tokens};

/// OpenAI's default for the legacy completions endpoint.
const DEFAULT_MAX_TOKENS: i64 = 16;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_json(body)?;
    let model = state.check_model(Some(&req.model))?;
    if req.echo == Some(true) {
        return Err(ApiError::bad_request("echo is not supported").with_param("echo"));
    }
    let logprobs = match req.logprobs {
        None => None,
        Some(k) if k >= 0 => Some(k as usize),
        Some(k) => {
            return Err(
                ApiError::bad_request(format!("logprobs must be >= 0, got {k}"))
                    .with_param("logprobs"),
            )
        }
    };
    let format = requested_format(
        req.response_format.as_ref(),
        req.structured_outputs.as_ref(),
    )?;
    let max_tokens = req.sampling.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let (params, requested) = sampling_params(req.sampling, Some(max_tokens), logprobs)?;
    let inputs: Vec<RequestInput> = match req.prompt {
        PromptIn::Text(t) => vec![RequestInput::Text(t)],
        PromptIn::Texts(ts) => ts.into_iter().map(RequestInput::Text).collect(),
        PromptIn::Tokens(ids) => vec![RequestInput::Tokens(ids)],
        PromptIn::TokenLists(lists) => lists.into_iter().map(RequestInput::Tokens).collect(),
    };
    if inputs.is_empty() {
        return Err(ApiError::bad_request("prompt must not be empty").with_param("prompt"));
    }
    let stream_reply = req.stream.unwrap_or(false);
    if stream_reply && inputs.len() > 1 {
        return Err(ApiError::bad_request(
            "streaming supports one prompt per request; send one request per prompt",
        )
        .with_param("prompt"));
    }
    let grammar = match format {
        Some(format) => {
            let engine = state.engine.clone();
            blocking(&state, move || compile(&engine, Some(&format))).await?
        }
        None => None,
    };
    let mut streams = Vec::with_capacity(inputs.len());
    for input in inputs {
        let engine = state.engine.clone();
        let prompt = blocking(&state, move || {
            Ok(engine.prepare(input, PixelBudget::default())?)
        })
        .await?;
        let mut p = params.clone();
        settle_max_tokens(
            &mut p,
            requested,
            prompt.token_ids.len(),
            state.engine.max_model_len(),
        )?;
        streams.push(
            state
                .engine
                .submit_constrained(prompt, p, grammar.as_ref())?,
        );
    }
    let reply = Reply {
        id: response_id("cmpl"),
        created: unix_now(),
        model,
        logprobs: logprobs.is_some(),
    };
    if stream_reply {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let Some(stream) = streams.pop() else {
            return Err(ApiError::internal("no prompt was submitted"));
        };
        let emitted = (0..stream.n()).map(|_| AtomicUsize::new(0)).collect();
        let writer = CompletionChunks { reply, emitted };
        return Ok(sse_response(writer, Vec::new(), stream, include_usage));
    }
    let mut choices = Vec::new();
    let mut usage = Usage::default();
    for (p, stream) in streams.into_iter().enumerate() {
        let n = stream.n();
        let (completions, u) = stream.collect().await;
        if let Some(error) = completions.iter().find_map(|c| c.error.clone()) {
            return Err(ApiError::internal(error));
        }
        usage.prompt_tokens += u.prompt_tokens;
        usage.completion_tokens += u.completion_tokens;
        for c in completions {
            choices.push(CompletionChoice {
                index: p * n + c.index,
                logprobs: reply.logprobs.then(|| {
                    let mut lp = CompletionLogprobs::default();
                    for (((token, &l), top), &offset) in c
                        .tokens
                        .iter()
                        .zip(&c.logprobs)
                        .zip(&c.top_logprobs)
                        .zip(&c.text_offsets)
                    {
                        push_logprob(&mut lp, token, l, top, offset);
                    }
                    lp
                }),
                text: c.text,
                finish_reason: Some(c.finish_reason.as_str()),
            });
        }
    }
    Ok(Json(Completion {
        id: reply.id.clone(),
        object: "text_completion",
        created: reply.created,
        model: reply.model.clone(),
        choices,
        usage: Some(usage.into()),
        system_fingerprint: None,
    })
    .into_response())
}

/// Appends one token's logprobs, as the engine spelled its texts.
/// `offset` is where the token's text starts in the returned text (a token with no text
/// there, such as `<unk>`, does not move it).
fn push_logprob(
    lp: &mut CompletionLogprobs,
    token: &str,
    logprob: f32,
    top: &[TokenLogprob],
    offset: usize,
) {
    lp.tokens.push(token.to_string());
    lp.token_logprobs.push(logprob);
    lp.top_logprobs.push(
        top.iter()
            .map(|t| (t.token.clone(), t.logprob))
            .collect::<BTreeMap<_, _>>(),
    );
    lp.text_offset.push(offset);
}

impl Reply {
    fn text_chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> Event {
        let body = Completion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.map(Into::into),
            system_fingerprint: None,
        };
        event(&body)
    }
}

struct CompletionChunks {
    reply: Reply,
    /// Bytes of text each completion has streamed so far (the next token's text offset).
    emitted: Vec<AtomicUsize>,
}

impl ChunkWriter for CompletionChunks {
    fn token(&self, event: TokenEvent) -> Option<Event> {
        let reply = &self.reply;
        let real = event.finish_reason != Some(FinishReason::Abort);
        let offset = self
            .emitted
            .get(event.index)
            .map_or(0, |e| e.fetch_add(event.text.len(), Ordering::Relaxed));
        let logprobs = (reply.logprobs && real).then(|| {
            let mut lp = CompletionLogprobs::default();
            push_logprob(
                &mut lp,
                &event.token,
                event.logprob,
                &event.top_logprobs,
                offset,
            );
            lp
        });
        if event.text.is_empty() && event.finish_reason.is_none() && logprobs.is_none() {
            return None;
        }
        let choice = CompletionChoice {
            index: event.index,
            text: event.text,
            logprobs,
            finish_reason: event.finish_reason.map(|r| r.as_str()),
        };
        Some(reply.text_chunk(vec![choice], None))
    }

    fn usage(&self, usage: Usage) -> Event {
        self.reply.text_chunk(Vec::new(), Some(usage))
    }
}
