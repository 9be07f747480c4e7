use serde::{Deserialize, Serialize};

/// Why a generation ended, in OpenAI's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop condition was reached.
    Stop,
    /// `max_tokens` (or the context length) was reached.
    Length,
}

/// How the next token is chosen. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub max_tokens: usize,
    pub temperature: f32,
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingParamsError {
    #[error("temperature must be a finite number >= 0, got {0}")]
    Temperature(f32),
    #[error("max_tokens must be at least 1")]
    MaxTokens,
}

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
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(SamplingParamsError::Temperature(self.temperature));
        }
        if self.max_tokens == 0 {
            return Err(SamplingParamsError::MaxTokens);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_negative_and_nan_temperature() {
        for t in [-0.1, f32::NAN, f32::INFINITY] {
            let p = SamplingParams {
                temperature: t,
                ..SamplingParams::default()
            };
            assert!(matches!(
                p.validate(),
                Err(SamplingParamsError::Temperature(_))
            ));
        }
        assert!(SamplingParams::greedy(1).validate().is_ok());
        assert_eq!(
            SamplingParams::greedy(0).validate(),
            Err(SamplingParamsError::MaxTokens)
        );
    }
}
