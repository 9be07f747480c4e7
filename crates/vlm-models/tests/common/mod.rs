//! Helpers shared by the reference tests.
#![allow(dead_code)]

pub mod reference;

use std::path::PathBuf;

use candle_core::Tensor;
use vlm_models::decoder::ContiguousKvCache;
use vlm_models::loader::Snapshot;
use vlm_models::{LoadOptions, LogitRows, PreparedPrompt, VlmModel};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn load(name: &str) -> VlmModel {
    let snapshot = Snapshot::open(fixtures().join(name)).unwrap();
    VlmModel::load(snapshot, &LoadOptions::default()).unwrap()
}

pub fn image_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("images").join(name)).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Logits of the whole prompt in one prefill step.
pub fn prompt_logits(model: &VlmModel, prompt: &PreparedPrompt, rows: LogitRows) -> Tensor {
    let features = model.encode_prompt_images(prompt).unwrap();
    let mut kv = ContiguousKvCache::new();
    let step = prompt.prefill_step(0, 0..prompt.token_ids.len(), features);
    model.forward(&[step], &mut kv, rows).unwrap()
}

/// Checks the prompt's logits against transformers' (all rows, or the last row when the
/// reference stores one) to 1e-4, and reports the difference.
pub fn assert_logits_match(
    model: &VlmModel,
    prompt: &PreparedPrompt,
    expected: &Tensor,
    label: &str,
) {
    let rows = if expected.dim(0).unwrap() == 1 {
        LogitRows::LastPerSeq
    } else {
        LogitRows::All
    };
    let diff = max_abs_diff(&prompt_logits(model, prompt, rows), expected);
    eprintln!(
        "{label}: {:?} logits, max abs diff {diff:.3e}",
        expected.dims()
    );
    assert!(diff <= 1e-4, "{label}: max abs diff {diff}");
}

/// `n` greedy tokens and their log-probabilities: one prefill, then one decode step each.
pub fn greedy(model: &VlmModel, prompt: &PreparedPrompt, n: usize) -> (Vec<u32>, Vec<f32>) {
    let mut kv = ContiguousKvCache::new();
    let len = prompt.token_ids.len();
    let mut features = model.encode_prompt_images(prompt).unwrap();
    let (mut tokens, mut logprobs) = (Vec::new(), Vec::new());
    while tokens.len() < n {
        let step = match tokens.last() {
            None => prompt.prefill_step(0, 0..len, features.take()),
            Some(last) => prompt.decode_step(0, len + tokens.len() - 1, std::slice::from_ref(last)),
        };
        let logits = model
            .forward(&[step], &mut kv, LogitRows::LastPerSeq)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let lp = candle_nn::ops::log_softmax(&logits, 0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let next = lp
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap();
        tokens.push(next);
        logprobs.push(lp[next as usize]);
    }
    (tokens, logprobs)
}
