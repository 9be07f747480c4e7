//! Choosing the next token from a row of logits, with vLLM's sampling parameters.

use llguidance::toktrie::SimpleVob;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vlm_core::SamplingParams;

/// The chosen token, its log-probability under the model (before penalties and temperature,
/// as vLLM reports by default), and the most likely alternatives when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    pub token: u32,
    pub logprob: f32,
    pub top_logprobs: Vec<(u32, f32)>,
}

/// Per-sequence sampling state: the parameters and a generator seeded per request, so a
/// seeded request draws the same tokens wherever it runs in a batch.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: &SamplingParams, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            params: params.clone(),
            rng,
        }
    }

    /// `prompt` and `output` are the sequence's tokens so far (for the penalties); tokens in
    /// `banned` may not be chosen (end-of-sequence before `min_tokens`); with `allowed` (a
    /// structured output's mask, never empty) only its tokens may be. Where the two
    /// disagree (the format is complete but `min_tokens` is not reached) the format wins.
    pub fn sample(
        &mut self,
        logits: &[f32],
        prompt: &[u32],
        output: &[u32],
        banned: &[u32],
        allowed: Option<&SimpleVob>,
    ) -> Sampled {
        let raw = log_softmax(logits);
        let mut adjusted = logits.to_vec();
        self.apply_penalties(&mut adjusted, prompt, output);
        // Only a constrained sequence pays for a mask over the vocabulary.
        let permitted = allowed.map(|mask| permitted(mask, banned, logits.len()));
        match &permitted {
            None => {
                for &t in banned {
                    if let Some(l) = adjusted.get_mut(t as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            Some(permitted) => {
                for (l, _) in adjusted.iter_mut().zip(permitted).filter(|(_, p)| !**p) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let token = if self.params.is_greedy() {
            argmax_permitted(&adjusted, permitted.as_deref())
        } else {
            self.draw(&adjusted, permitted.as_deref())
        };
        let top_logprobs = match self.params.logprobs {
            Some(k) if k > 0 => top_k_indices(&raw, k)
                .into_iter()
                .map(|i| (i as u32, raw[i]))
                .collect(),
            _ => Vec::new(),
        };
        Sampled {
            token: token as u32,
            logprob: raw[token],
            top_logprobs,
        }
    }

    fn apply_penalties(&self, logits: &mut [f32], prompt: &[u32], output: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen = vec![false; logits.len()];
            for &t in prompt.iter().chain(output) {
                if let Some(s) = seen.get_mut(t as usize) {
                    *s = true;
                }
            }
            for (l, _) in logits.iter_mut().zip(&seen).filter(|(_, s)| **s) {
                *l = if *l > 0.0 {
                    *l / p.repetition_penalty
                } else {
                    *l * p.repetition_penalty
                };
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            let mut counts = vec![0u32; logits.len()];
            for &t in output {
                if let Some(c) = counts.get_mut(t as usize) {
                    *c += 1;
                }
            }
            for (l, &c) in logits.iter_mut().zip(&counts).filter(|(_, c)| **c > 0) {
                *l -= p.presence_penalty + p.frequency_penalty * c as f32;
            }
        }
    }

    /// Temperature, then top-k, top-p and min-p filtering, then a draw. Total: any logits
    /// (inf and NaN included) and any parameters the validator accepts give a token.
    fn draw(&mut self, logits: &[f32], permitted: Option<&[bool]>) -> usize {
        let p = &self.params;
        let probs = probabilities(logits, p.temperature);
        let mut order: Vec<usize> = (0..probs.len())
            .filter(|&i| probs[i] > 0.0 && permitted.is_none_or(|p| p[i]))
            .collect();
        if order.is_empty() {
            // Nothing has mass (every token banned, or every logit NaN / -inf).
            return argmax_permitted(logits, permitted);
        }
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        if p.top_k > 0 {
            order.truncate(p.top_k as usize);
        }
        if p.top_p < 1.0 {
            let mut mass = 0.0;
            let keep = order
                .iter()
                .take_while(|&&i| {
                    let before = mass;
                    mass += probs[i];
                    before < p.top_p
                })
                .count();
            order.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            let floor = probs[order[0]] * p.min_p;
            order.retain(|&i| probs[i] >= floor);
        }
        let total: f64 = order.iter().map(|&i| f64::from(probs[i])).sum();
        let mut draw = self.rng.random::<f64>() * total;
        for &i in &order {
            draw -= f64::from(probs[i]);
            if draw < 0.0 {
                return i;
            }
        }
        *order.last().unwrap_or(&argmax_permitted(logits, permitted))
    }
}

/// Softmax of `logits / temperature`. Computed as it always was while every scaled logit
/// is finite or -inf and one is finite; otherwise (a temperature so small, or penalties so
/// large, that the division overflows, or NaN logits) as the limit of the same
/// distribution: NaN counts as -inf, the +inf logits share the mass equally if there are
/// any, else `(l - max) / temperature` is exponentiated, which puts the mass on the
/// maximum as the temperature goes to 0. All zeros when nothing can be drawn.
fn probabilities(logits: &[f32], temperature: f32) -> Vec<f32> {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
    let well_formed = scaled.iter().all(|s| !s.is_nan() && *s != f32::INFINITY)
        && scaled.iter().any(|s| s.is_finite());
    if well_formed {
        return log_softmax(&scaled).iter().map(|l| l.exp()).collect();
    }
    let clean: Vec<f32> = logits
        .iter()
        .map(|&l| if l.is_nan() { f32::NEG_INFINITY } else { l })
        .collect();
    let max = clean.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = if max == f32::NEG_INFINITY {
        return vec![0.0; logits.len()];
    } else if max == f32::INFINITY {
        clean
            .iter()
            .map(|&l| f64::from(u8::from(l == f32::INFINITY)))
            .collect()
    } else {
        clean
            .iter()
            .map(|&l| ((f64::from(l) - f64::from(max)) / f64::from(temperature)).exp())
            .collect()
    };
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / total) as f32).collect()
}

/// The tokens a constrained sequence may choose: those of the mask, less the banned ones
/// unless that leaves none.
fn permitted(mask: &SimpleVob, banned: &[u32], vocab: usize) -> Vec<bool> {
    let mut permitted: Vec<bool> = (0..vocab)
        .map(|t| t < mask.len() && mask.is_allowed(t as u32))
        .collect();
    let mut unbanned = permitted.clone();
    for &t in banned {
        if let Some(p) = unbanned.get_mut(t as usize) {
            *p = false;
        }
    }
    if unbanned.contains(&true) {
        permitted = unbanned;
    }
    permitted
}

/// [`argmax`] over the permitted indices, when any is (a structured output's mask is never
/// empty); NaN never wins over a number.
fn argmax_permitted(xs: &[f32], permitted: Option<&[bool]>) -> usize {
    let Some(permitted) = permitted else {
        return argmax(xs);
    };
    let mut best: Option<usize> = None;
    for (i, &x) in xs.iter().enumerate().filter(|(i, _)| permitted[*i]) {
        match best {
            Some(b) if !(x > xs[b] || (xs[b].is_nan() && !x.is_nan())) => {}
            _ => best = Some(i),
        }
    }
    best.unwrap_or_else(|| argmax(xs))
}

/// First index of the maximum (ties go to the lowest id, as `torch.argmax` does); NaN
/// never wins over a number.
fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] || (xs[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

fn top_k_indices(xs: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
        xs[b].total_cmp(&xs[a]).then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.sort_by(|&a, &b| xs[b].total_cmp(&xs[a]).then(a.cmp(&b)));
    idx
}

pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_sum = sum.ln() as f32;
    logits.iter().map(|&l| l - max - log_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(p: SamplingParams) -> Sampler {
        let seed = p.seed;
        Sampler::new(&p, seed)
    }

    #[test]
    fn greedy_takes_first_maximum_and_reports_model_logprob() {
        let mut s = sampler(SamplingParams::greedy(1));
        let out = s.sample(&[0.0, 3.0, 3.0, -1.0], &[], &[], &[], None);
        assert_eq!(out.token, 1);
        let expected = 3.0 - (1f32 + 2.0 * 3f32.exp() + (-1f32).exp()).ln();
        assert!((out.logprob - expected).abs() < 1e-6);
    }

    #[test]
    fn seeded_sampling_repeats_and_filters_apply() {
        let p = SamplingParams {
            temperature: 1.0,
            seed: Some(7),
            ..SamplingParams::default()
        };
        let logits = [1.0, 1.2, 0.8, 1.1];
        let draw = |p: &SamplingParams| {
            let mut s = sampler(p.clone());
            (0..64)
                .map(|_| s.sample(&logits, &[], &[], &[], None).token)
                .collect::<Vec<_>>()
        };
        let a = draw(&p);
        assert_eq!(a, draw(&p));
        assert!(a.iter().any(|&t| t != a[0]));
        let k1 = SamplingParams {
            top_k: 1,
            ..p.clone()
        };
        assert!(draw(&k1).iter().all(|&t| t == 1), "top_k 1 is argmax");
        let k2 = SamplingParams {
            top_k: 2,
            ..p.clone()
        };
        assert!(draw(&k2).iter().all(|&t| t == 1 || t == 3));
        let tp = SamplingParams {
            top_p: 0.01,
            ..p.clone()
        };
        assert!(
            draw(&tp).iter().all(|&t| t == 1),
            "tiny top_p keeps the best"
        );
        let mp = SamplingParams { min_p: 0.95, ..p };
        assert!(draw(&mp).iter().all(|&t| t == 1 || t == 3));
    }

    #[test]
    fn penalties_and_bans() {
        let mut s = sampler(SamplingParams {
            repetition_penalty: 4.0,
            ..SamplingParams::greedy(1)
        });
        // Token 0 was seen: 2.0 / 4 = 0.5 < 1.0.
        assert_eq!(s.sample(&[2.0, 1.0], &[0], &[], &[], None).token, 1);
        let mut s = sampler(SamplingParams {
            frequency_penalty: 0.6,
            ..SamplingParams::greedy(1)
        });
        assert_eq!(
            s.sample(&[2.0, 1.0], &[], &[0, 0], &[], None).token,
            1,
            "2.0 - 1.2 < 1.0"
        );
        assert_eq!(
            s.sample(&[2.0, 1.0], &[0], &[0], &[], None).token,
            0,
            "prompt does not count"
        );
        let mut s = sampler(SamplingParams::greedy(1));
        assert_eq!(s.sample(&[2.0, 1.0], &[], &[], &[0], None).token, 1);
    }

    #[test]
    fn top_logprobs_are_sorted() {
        let mut s = sampler(SamplingParams {
            logprobs: Some(2),
            ..SamplingParams::greedy(1)
        });
        let out = s.sample(&[0.0, 2.0, 1.0], &[], &[], &[], None);
        assert_eq!(
            out.top_logprobs.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(out.top_logprobs[0].1 > out.top_logprobs[1].1);
    }

    /// Sampling is total: over extreme values of every parameter the validator accepts and
    /// logits with inf and NaN, every draw is a token of the vocabulary, never a panic.
    #[test]
    fn every_valid_parameter_combination_gives_a_token() {
        let tiny = f32::from_bits(1); // the smallest positive f32
        let temperatures = [
            0.0,
            tiny,
            f32::MIN_POSITIVE,
            1e-38,
            1e-6,
            0.7,
            1.0,
            50.0,
            f32::MAX,
        ];
        let top_ps = [tiny, 1e-6, 0.5, 0.999, 1.0];
        let top_ks = [-1, 0, 1, 2, 3, i32::MAX];
        let min_ps = [0.0, tiny, 0.5, 0.999, 1.0];
        let repetition = [tiny, 1e-38, 0.5, 1.0, 2.0, 1e30, f32::MAX];
        let additive = [-2.0, -tiny, 0.0, 1.0, 2.0];
        let rows: [&[f32]; 8] = [
            &[1.0, 2.0, 3.0, -1.0, 0.0],
            &[0.0; 5],
            &[f32::MAX, -f32::MAX, f32::MAX, 0.0, 1.0],
            &[f32::INFINITY, 1.0, f32::INFINITY, 0.0, -1.0],
            &[f32::NEG_INFINITY; 5],
            &[f32::NAN, 1.0, f32::NAN, 2.0, 0.0],
            &[f32::NAN; 5],
            &[1e-30, -1e-30, 3e38, -3e38, f32::NEG_INFINITY],
        ];
        let mut rng = StdRng::seed_from_u64(11);
        let mut pick = |n: usize| rng.random_range(0..n);
        for case in 0..20_000 {
            let params = SamplingParams {
                temperature: temperatures[pick(temperatures.len())],
                top_p: top_ps[pick(top_ps.len())],
                top_k: top_ks[pick(top_ks.len())],
                min_p: min_ps[pick(min_ps.len())],
                repetition_penalty: repetition[pick(repetition.len())],
                presence_penalty: additive[pick(additive.len())],
                frequency_penalty: additive[pick(additive.len())],
                logprobs: Some(pick(4)),
                seed: Some(case),
                ..SamplingParams::default()
            };
            params.validate().unwrap();
            let logits = rows[pick(rows.len())];
            let banned: Vec<u32> = (0..pick(6) as u32).collect();
            // Half the cases are constrained by a non-empty mask of the five tokens.
            let mask = (case % 2 == 1).then(|| {
                let mut mask = SimpleVob::alloc(logits.len());
                for t in 0..logits.len() {
                    if pick(2) == 1 {
                        mask.allow_token(t as u32);
                    }
                }
                if mask.is_zero() {
                    mask.allow_token(pick(logits.len()) as u32);
                }
                mask
            });
            let out =
                sampler(params.clone()).sample(logits, &[0, 2], &[2, 3, 3], &banned, mask.as_ref());
            assert!(
                (out.token as usize) < logits.len(),
                "{params:?} on {logits:?}: token {}",
                out.token
            );
            if let Some(mask) = &mask {
                assert!(
                    mask.is_allowed(out.token),
                    "{params:?} on {logits:?}: token {} outside the mask",
                    out.token
                );
            }
        }
    }

    #[test]
    fn a_vanishing_temperature_with_min_p_draws_the_maximum() {
        // The report's request: `temperature` 1e-38 with `min_p` 0.5 made every probability
        // NaN and panicked the engine thread.
        let mut s = sampler(SamplingParams {
            temperature: 1e-38,
            min_p: 0.5,
            seed: Some(1),
            ..SamplingParams::default()
        });
        assert_eq!(
            s.sample(&[1.0, 4.0, 2.0, 3.0], &[], &[], &[], None).token,
            1
        );
        // Tied maxima share the mass, as they do at any temperature.
        let ties: Vec<u32> = (0..32)
            .map(|_| s.sample(&[1.0, 4.0, 2.0, 4.0], &[], &[], &[], None).token)
            .collect();
        assert!(ties.iter().all(|&t| t == 1 || t == 3) && ties.contains(&1) && ties.contains(&3));
        // Extreme repetition penalty with min_p: the seen token's logit overflows to inf.
        let mut s = sampler(SamplingParams {
            temperature: 1.0,
            repetition_penalty: f32::from_bits(1),
            min_p: 0.5,
            seed: Some(1),
            ..SamplingParams::default()
        });
        assert_eq!(s.sample(&[1.0, 4.0, 2.0], &[2], &[], &[], None).token, 2);
    }

    #[test]
    fn a_mask_limits_the_choice_and_wins_over_min_tokens() {
        let mask = |tokens: &[u32]| {
            let mut m = SimpleVob::alloc(4);
            tokens.iter().for_each(|&t| m.allow_token(t));
            m
        };
        let logits = [1.0, 4.0, 2.0, 3.0];
        let mut greedy = sampler(SamplingParams::greedy(1));
        let out = greedy.sample(&logits, &[], &[], &[], Some(&mask(&[0, 2])));
        assert_eq!(out.token, 2);
        // The reported logprob is the model's, before the mask.
        assert_eq!(out.logprob, log_softmax(&logits)[2]);
        // A banned token leaves the mask unless it is all the mask holds.
        assert_eq!(
            greedy
                .sample(&logits, &[], &[], &[2], Some(&mask(&[0, 2])))
                .token,
            0
        );
        assert_eq!(
            greedy
                .sample(&logits, &[], &[], &[2], Some(&mask(&[2])))
                .token,
            2
        );
        // NaN logits inside the mask still give a token of the mask.
        let nan = [f32::NAN, 5.0, f32::NAN, 1.0];
        assert_eq!(
            greedy.sample(&nan, &[], &[], &[], Some(&mask(&[0]))).token,
            0
        );
        let mut drawn = sampler(SamplingParams {
            temperature: 1.0,
            seed: Some(3),
            ..SamplingParams::default()
        });
        for _ in 0..64 {
            let t = drawn
                .sample(&logits, &[], &[], &[], Some(&mask(&[0, 3])))
                .token;
            assert!(t == 0 || t == 3);
            assert_eq!(
                drawn.sample(&nan, &[], &[], &[], Some(&mask(&[2]))).token,
                2
            );
        }
    }
}
