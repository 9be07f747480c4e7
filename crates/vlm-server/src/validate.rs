//! Request validation: a request's sampling fields checked and turned into the engine's
//! `SamplingParams` (with OpenAI's and vLLM's defaults), and `max_tokens` checked against
//! the model's context once the prompt length is known.

use vlm_core::{SamplingParams, MAX_TOP_LOGPROBS};

use crate::error::ApiError;
use crate::protocol::common::SamplingFields;

/// Most completions one request may ask for.
const MAX_N: i64 = 128;

fn non_negative(value: Option<i64>, param: &'static str) -> Result<Option<usize>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v >= 0 => Ok(Some(v as usize)),
        Some(v) => {
            Err(ApiError::bad_request(format!("{param} must be >= 0, got {v}")).with_param(param))
        }
    }
}

/// `max_tokens` (already chosen between `max_tokens` and `max_completion_tokens`) left
/// `None` means "the rest of the context", as vLLM does; the caller fills it in once the
/// prompt length is known.
pub fn sampling_params(
    f: SamplingFields,
    max_tokens: Option<i64>,
    logprobs: Option<usize>,
) -> Result<(SamplingParams, Option<usize>), ApiError> {
    let max_tokens = non_negative(max_tokens, "max_tokens")?;
    if max_tokens == Some(0) {
        return Err(ApiError::bad_request("max_tokens must be at least 1").with_param("max_tokens"));
    }
    let n = match f.n {
        None => 1,
        Some(n) if (1..=MAX_N).contains(&n) => n as usize,
        Some(n) => {
            return Err(
                ApiError::bad_request(format!("n must be between 1 and {MAX_N}, got {n}"))
                    .with_param("n"),
            )
        }
    };
    // OpenAI seeds are signed 64-bit; any value names one stream.
    let seed = f.seed.map(|s| s as u64);
    if let Some(k) = logprobs {
        if k > MAX_TOP_LOGPROBS {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_TOP_LOGPROBS} top logprobs per token, got {k}"
            ))
            .with_param("top_logprobs"));
        }
    }
    let d = SamplingParams::default();
    let params = SamplingParams {
        max_tokens: max_tokens.unwrap_or(d.max_tokens),
        min_tokens: non_negative(f.min_tokens, "min_tokens")?.unwrap_or(0),
        temperature: f.temperature.unwrap_or(1.0),
        top_p: f.top_p.unwrap_or(1.0),
        top_k: f.top_k.unwrap_or(0),
        min_p: f.min_p.unwrap_or(0.0),
        seed,
        repetition_penalty: f.repetition_penalty.unwrap_or(1.0),
        presence_penalty: f.presence_penalty.unwrap_or(0.0),
        frequency_penalty: f.frequency_penalty.unwrap_or(0.0),
        stop: f.stop.map(|s| s.into_vec()).unwrap_or_default(),
        stop_token_ids: f.stop_token_ids.unwrap_or_default(),
        ignore_eos: f.ignore_eos.unwrap_or(false),
        n,
        logprobs,
        skip_special_tokens: f.skip_special_tokens.unwrap_or(true),
        include_stop_str_in_output: f.include_stop_str_in_output.unwrap_or(false),
    };
    if params.stop.iter().any(String::is_empty) {
        return Err(ApiError::bad_request("stop strings must not be empty").with_param("stop"));
    }
    Ok((params, max_tokens))
}

/// Fills in a default `max_tokens` (the rest of the context) and checks the request fits;
/// the engine checks again, this gives the client the numbers.
pub fn settle_max_tokens(
    params: &mut SamplingParams,
    requested: Option<usize>,
    prompt_tokens: usize,
    max_model_len: usize,
) -> Result<(), ApiError> {
    if prompt_tokens >= max_model_len {
        return Err(ApiError::bad_request(format!(
            "This model's maximum context length is {max_model_len} tokens. However, your request has {prompt_tokens} input tokens. Please reduce the length of the input messages."
        ))
        .with_param("messages")
        .with_code("context_length_exceeded"));
    }
    match requested {
        Some(m) => params.max_tokens = m,
        None => params.max_tokens = max_model_len - prompt_tokens,
    }
    if params.min_tokens > params.max_tokens {
        params.min_tokens = params.max_tokens;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rejections() {
        let (p, m) = sampling_params(SamplingFields::default(), None, None).unwrap();
        assert_eq!(p.temperature, 1.0, "OpenAI's default temperature");
        assert_eq!((p.n, m), (1, None));
        let bad_n = SamplingFields {
            n: Some(0),
            ..Default::default()
        };
        assert_eq!(
            sampling_params(bad_n, None, None)
                .unwrap_err()
                .param
                .as_deref(),
            Some("n")
        );
        let e = sampling_params(SamplingFields::default(), Some(-1), None).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = sampling_params(SamplingFields::default(), None, Some(21)).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        let mut p = SamplingParams::default();
        settle_max_tokens(&mut p, None, 10, 64).unwrap();
        assert_eq!(p.max_tokens, 54);
        assert!(settle_max_tokens(&mut p, None, 64, 64).is_err());
    }
}
