//! vLLM's `/tokenize` and `/detokenize`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vlm_engine::{PixelBudget, RequestInput};

use super::blocking::blocking;
use crate::body::parse_json;
use crate::error::ApiError;
use crate::messages::convert_messages;
use crate::protocol::chat::MessageIn;
use crate::state::AppState;

#[derive(Deserialize)]
struct TokenizeRequest {
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<MessageIn>>,
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    model: Option<String>,
    tokens: Vec<u32>,
}

pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: TokenizeRequest = parse_json(body)?;
    state.check_model(req.model.as_deref())?;
    let worker = state.clone();
    let tokens = blocking(&state, move || {
        let input = match (req.prompt, req.messages) {
            (Some(p), None) => RequestInput::Text(p),
            (None, Some(m)) => RequestInput::Chat(convert_messages(m, &worker.config)?),
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of prompt (text) or messages (chat)",
                ))
            }
        };
        Ok(worker
            .engine
            .prepare(input, PixelBudget::default())?
            .token_ids)
    })
    .await?;
    Ok(Json(json!({
        "count": tokens.len(),
        "max_model_len": state.engine.max_model_len(),
        "tokens": tokens,
    })))
}

pub async fn detokenize(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: DetokenizeRequest = parse_json(body)?;
    state.check_model(req.model.as_deref())?;
    let vocab = state.engine.model().text_config().vocab_size;
    if let Some(bad) = req.tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(ApiError::bad_request(format!(
            "token id {bad} is outside the vocabulary of {vocab}"
        ))
        .with_param("tokens"));
    }
    let prompt = state
        .engine
        .detokenize(&req.tokens, false)
        .map_err(|e| ApiError::bad_request(e.to_string()).with_param("tokens"))?;
    Ok(Json(json!({ "prompt": prompt })))
}
