use vlm_core::{FinishReason, SamplingParams, SamplingParamsError};
use vlm_models::decoder::ContiguousKvCache;
use vlm_models::{LogitRows, ModelError, PreparedPrompt, SeqStep, VlmModel};

use crate::sampler::Sampler;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("invalid sampling parameters: {0}")]
    Sampling(#[from] SamplingParamsError),
    #[error("the prompt has {prompt} tokens; the model's context is {limit}")]
    PromptTooLong { prompt: usize, limit: usize },
}

/// What one generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    /// Log-probability of each generated token under the model.
    pub logprobs: Vec<f32>,
    pub text: String,
    pub finish_reason: FinishReason,
}

/// Generates for one prepared prompt: one prefill, then one decode step per token, until an
/// end-of-sequence token, `max_tokens`, or the model's context length.
pub fn generate(
    model: &VlmModel,
    prompt: &PreparedPrompt,
    params: &SamplingParams,
) -> Result<Generation, EngineError> {
    params.validate()?;
    let limit = model.max_position_embeddings();
    if prompt.token_ids.len() >= limit {
        return Err(EngineError::PromptTooLong {
            prompt: prompt.token_ids.len(),
            limit,
        });
    }
    let mut image_features = model.encode_prompt_images(prompt)?;
    let mut sampler = Sampler::new(params);
    let mut kv = ContiguousKvCache::new();
    let eos = model.eos_token_ids();
    let mut input = prompt.token_ids.clone();
    let mut past = 0;
    let mut token_ids = Vec::new();
    let mut logprobs = Vec::new();
    let finish_reason = loop {
        let step = SeqStep {
            seq: 0,
            past,
            tokens: &input,
            image_features: image_features.take(),
        };
        let logits = model.forward(&[step], &mut kv, LogitRows::LastPerSeq)?;
        let row = logits.squeeze(0).map_err(ModelError::from)?;
        let sampled = sampler.sample(&row).map_err(ModelError::from)?;
        past += input.len();
        token_ids.push(sampled.token);
        logprobs.push(sampled.logprob);
        if eos.contains(&sampled.token) {
            break FinishReason::Stop;
        }
        if token_ids.len() >= params.max_tokens || past + 1 >= limit {
            break FinishReason::Length;
        }
        input = vec![sampled.token];
    };
    let text = model.tokenizer().decode(&token_ids, true)?;
    Ok(Generation {
        token_ids,
        logprobs,
        text,
        finish_reason,
    })
}
