use vlm_core::{FinishReason, SamplingParams, SamplingParamsError};
use vlm_models::decoder::ContiguousKvCache;
use vlm_models::{LogitRows, ModelError, PreparedPrompt, VlmModel};

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
    let image_features = model.encode_prompt_images(prompt)?;
    let mut sampler = Sampler::new(params);
    let mut kv = ContiguousKvCache::new();
    let eos = model.eos_token_ids();
    let prompt_len = prompt.token_ids.len();
    let mut token_ids: Vec<u32> = Vec::new();
    let mut logprobs = Vec::new();
    let finish_reason = loop {
        let step = match token_ids.last() {
            None => prompt.prefill_step(0, 0..prompt_len, image_features.clone()),
            Some(last) => prompt.decode_step(
                0,
                prompt_len + token_ids.len() - 1,
                std::slice::from_ref(last),
            ),
        };
        let logits = model.forward(&[step], &mut kv, LogitRows::LastPerSeq)?;
        let row = logits.squeeze(0).map_err(ModelError::from)?;
        let sampled = sampler.sample(&row).map_err(ModelError::from)?;
        token_ids.push(sampled.token);
        logprobs.push(sampled.logprob);
        if eos.contains(&sampled.token) {
            break FinishReason::Stop;
        }
        if token_ids.len() >= params.max_tokens || prompt_len + token_ids.len() >= limit {
            break FinishReason::Length;
        }
    };
    let text = model.tokenizer().decode(&token_ids, true)?;
    Ok(Generation {
        token_ids,
        logprobs,
        text,
        finish_reason,
    })
}
