use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vlm_core::SamplingParams;

/// Picks the next token from a row of logits: argmax when greedy, otherwise a draw from
/// `softmax(logits / temperature)` with a per-request seeded generator, so a seeded request
/// samples the same tokens every time.
pub struct Sampler {
    temperature: f32,
    rng: StdRng,
}

/// The chosen token and its log-probability under the model (before temperature).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub token: u32,
    pub logprob: f32,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            temperature: params.temperature,
            rng,
        }
    }

    pub fn sample(&mut self, logits: &Tensor) -> candle_core::Result<Sampled> {
        let logits = logits.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        Ok(self.sample_slice(&logits))
    }

    pub fn sample_slice(&mut self, logits: &[f32]) -> Sampled {
        let log_probs = log_softmax(logits, 1.0);
        let token = if self.temperature == 0.0 {
            argmax(logits)
        } else {
            let scaled = log_softmax(logits, self.temperature);
            let draw: f64 = self.rng.random();
            let mut acc = 0.0f64;
            let mut chosen = argmax(logits);
            for (i, lp) in scaled.iter().enumerate() {
                acc += f64::from(lp.exp());
                if draw < acc {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        Sampled {
            token: token as u32,
            logprob: log_probs[token],
        }
    }
}

/// First index of the maximum (ties go to the lowest id, as `torch.argmax` does).
fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

fn log_softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) / temperature;
    let sum: f64 = logits
        .iter()
        .map(|&l| f64::from((l / temperature - max).exp()))
        .sum();
    let log_sum = sum.ln() as f32;
    logits
        .iter()
        .map(|&l| l / temperature - max - log_sum)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum() {
        let mut s = Sampler::new(&SamplingParams::greedy(1));
        let out = s.sample_slice(&[0.0, 3.0, 3.0, -1.0]);
        assert_eq!(out.token, 1);
        let expected = 3.0 - (1f32 + 2.0 * 3f32.exp() + (-1f32).exp()).ln();
        assert!((out.logprob - expected).abs() < 1e-6);
    }

    #[test]
    fn seeded_sampling_repeats_and_follows_temperature() {
        let params = SamplingParams {
            temperature: 1.0,
            seed: Some(7),
            ..SamplingParams::default()
        };
        let logits = [1.0, 1.2, 0.8, 1.1];
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p);
            (0..64)
                .map(|_| s.sample_slice(&logits).token)
                .collect::<Vec<_>>()
        };
        let a = draw(&params);
        assert_eq!(a, draw(&params));
        assert!(
            a.iter().any(|&t| t != a[0]),
            "temperature 1 over near-equal logits must vary"
        );
        let cold = SamplingParams {
            temperature: 1e-4,
            ..params.clone()
        };
        assert!(
            draw(&cold).iter().all(|&t| t == 1),
            "near-zero temperature is argmax"
        );
    }
}
