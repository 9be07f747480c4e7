//! Sampling parameters as vLLM names them, their validation, and why a completion finished.

use serde::{Deserialize, Serialize};

/// Why a generation ended, in OpenAI's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token, a stop token id or a stop string.
    Stop,
    /// `max_tokens` (or the context length) was reached.
    Length,
    /// The request was cancelled or the engine shut down before it finished.
    Abort,
}

impl FinishReason {
    /// The name OpenAI's API (and our journals) give the reason: `stop`, `length`, `abort`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// How tokens are chosen and when generation stops; vLLM's sampling parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    pub max_tokens: usize,
    /// No end-of-sequence or stop token ends generation before this many tokens.
    pub min_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 or -1 disables top-k.
    pub top_k: i32,
    pub min_p: f32,
    pub seed: Option<u64>,
    /// Divides positive logits (multiplies negative ones) of tokens already in the prompt or
    /// the output; 1 disables it.
    pub repetition_penalty: f32,
    /// Subtracted from the logit of every token already generated.
    pub presence_penalty: f32,
    /// Subtracted once per previous occurrence in the output.
    pub frequency_penalty: f32,
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<u32>,
    pub ignore_eos: bool,
    /// Independent completions of one prompt.
    pub n: usize,
    /// Return this many most likely alternatives per token (0: only the chosen token's).
    pub logprobs: Option<usize>,
    pub skip_special_tokens: bool,
    /// Keep the stop string that ended generation in the text.
    pub include_stop_str_in_output: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            min_tokens: 0,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            n: 1,
            logprobs: None,
            skip_special_tokens: true,
            include_stop_str_in_output: false,
        }
    }
}

/// An invalid sampling parameter: `param` names it as the OpenAI/vLLM API spells it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct SamplingParamsError {
    pub param: &'static str,
    pub message: String,
}

/// Most alternatives a caller may ask for per token (OpenAI allows 20; vLLM more).
pub const MAX_TOP_LOGPROBS: usize = 20;

impl SamplingParams {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            ..Self::default()
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    pub fn validate(&self) -> Result<(), SamplingParamsError> {
        let fail =
            |param: &'static str, message: String| Err(SamplingParamsError { param, message });
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return fail(
                "temperature",
                format!("must be a finite number >= 0, got {}", self.temperature),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return fail("top_p", format!("must be in (0, 1], got {}", self.top_p));
        }
        if self.top_k < -1 {
            return fail(
                "top_k",
                format!("must be -1 (disabled) or >= 0, got {}", self.top_k),
            );
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return fail("min_p", format!("must be in [0, 1], got {}", self.min_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return fail(
                "repetition_penalty",
                format!(
                    "must be a finite number > 0, got {}",
                    self.repetition_penalty
                ),
            );
        }
        for (param, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return fail(param, format!("must be in [-2, 2], got {v}"));
            }
        }
        if self.max_tokens == 0 {
            return fail("max_tokens", "must be at least 1".into());
        }
        if self.min_tokens > self.max_tokens {
            return fail(
                "min_tokens",
                format!(
                    "{} is more than max_tokens {}",
                    self.min_tokens, self.max_tokens
                ),
            );
        }
        if self.n == 0 || self.n > 128 {
            return fail("n", format!("must be between 1 and 128, got {}", self.n));
        }
        if self.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return fail(
                "logprobs",
                format!("at most {MAX_TOP_LOGPROBS} alternatives per token"),
            );
        }
        if self.stop.iter().any(String::is_empty) {
            return fail("stop", "stop strings must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_have_openai_names() {
        for (reason, name) in [
            (FinishReason::Stop, "stop"),
            (FinishReason::Length, "length"),
            (FinishReason::Abort, "abort"),
        ] {
            assert_eq!(reason.as_str(), name);
        }
    }

    fn check(p: SamplingParams) -> Option<&'static str> {
        p.validate().err().map(|e| e.param)
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let d = SamplingParams::default;
        assert_eq!(check(d()), None);
        for t in [-0.1, f32::NAN, f32::INFINITY] {
            assert_eq!(
                check(SamplingParams {
                    temperature: t,
                    ..d()
                }),
                Some("temperature")
            );
        }
        assert_eq!(check(SamplingParams { top_p: 0.0, ..d() }), Some("top_p"));
        assert_eq!(check(SamplingParams { top_k: -2, ..d() }), Some("top_k"));
        assert_eq!(check(SamplingParams { min_p: 1.5, ..d() }), Some("min_p"));
        assert_eq!(
            check(SamplingParams {
                repetition_penalty: 0.0,
                ..d()
            }),
            Some("repetition_penalty")
        );
        assert_eq!(
            check(SamplingParams {
                presence_penalty: 3.0,
                ..d()
            }),
            Some("presence_penalty")
        );
        assert_eq!(
            check(SamplingParams {
                frequency_penalty: -2.5,
                ..d()
            }),
            Some("frequency_penalty")
        );
        assert_eq!(check(SamplingParams::greedy(0)), Some("max_tokens"));
        assert_eq!(
            check(SamplingParams {
                min_tokens: 300,
                ..d()
            }),
            Some("min_tokens")
        );
        assert_eq!(check(SamplingParams { n: 0, ..d() }), Some("n"));
        assert_eq!(
            check(SamplingParams {
                logprobs: Some(21),
                ..d()
            }),
            Some("logprobs")
        );
        assert_eq!(
            check(SamplingParams {
                stop: vec![String::new()],
                ..d()
            }),
            Some("stop")
        );
        let e = SamplingParams { top_p: 2.0, ..d() }.validate().unwrap_err();
        assert_eq!(e.to_string(), "top_p: must be in (0, 1], got 2");
    }
}
