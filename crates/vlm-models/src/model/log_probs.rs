//! Next-token log-probabilities at every position of a prompt, and how far two models'
//! are apart (mean KL divergence, top-1 agreement): how a weight format is compared with
//! f32 (the weight-format tests, `benches/format_distance.rs`).

use candle_core::DType;
use vlm_core::ChatMessage;

use super::VlmModel;
use crate::decoder::{ContiguousKvCache, LogitRows};
use crate::error::Result;

impl VlmModel {
    /// The log-softmax of the logits at every position of `messages`' prompt (one prefill
    /// step, images included), `[positions][vocab]`.
    pub fn prompt_log_probs(&self, messages: &[ChatMessage]) -> Result<Vec<Vec<f32>>> {
        let prompt = self.prepare(messages)?;
        let features = self.encode_prompt_images(&prompt)?;
        let step = prompt.prefill_step(0, 0..prompt.token_ids.len(), features);
        let mut kv = ContiguousKvCache::new();
        let logits = self.forward(&[step], &mut kv, LogitRows::All)?;
        Ok(logits
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .into_iter()
            .map(|row| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
                let log_sum = sum.ln() as f32;
                row.iter().map(|&x| x - max - log_sum).collect()
            })
            .collect())
    }
}

/// Mean KL(reference || other) over positions (rows of log-probabilities) and the share
/// of positions whose most likely token agrees.
pub fn distribution_distance(reference: &[Vec<f32>], other: &[Vec<f32>]) -> (f64, f64) {
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    let mut kl = 0.0;
    let mut agree = 0;
    for (p, q) in reference.iter().zip(other) {
        kl += p
            .iter()
            .zip(q)
            .map(|(&lp, &lq)| f64::from(lp).exp() * (f64::from(lp) - f64::from(lq)))
            .sum::<f64>();
        agree += usize::from(argmax(p) == argmax(q));
    }
    let n = reference.len().max(1) as f64;
    (kl / n, agree as f64 / n)
}
