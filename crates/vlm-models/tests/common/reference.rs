//! The checks every family's transformers reference runs through, written once: prompts
//! from `<ref>/prompts.json`, and input ids, logits and greedy tokens against them, plus the
//! per-pixel comparison of normalized planes with the reference's code images.
//! `reference_tests!` declares the shared tests in a family's test file.

use std::collections::BTreeMap;

use candle_core::Device;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use vlm_core::ChatMessage;

use super::{assert_logits_match, fixtures, greedy, load};

/// One reference prompt: what transformers' processor and `generate` produced for it, and
/// the family's own spelling of the message (`M`).
#[derive(Deserialize)]
pub struct PromptRef<M> {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub greedy_tokens: Vec<u32>,
    pub greedy_logprobs: Vec<f32>,
    #[serde(flatten)]
    pub message: M,
}

/// A family's pixel reference: the float each 8-bit code maps to per channel, and an entry
/// (`E`) per checked image.
#[derive(Deserialize)]
pub struct PixelRef<E> {
    pub table: Vec<Vec<f32>>,
    pub images: BTreeMap<String, E>,
}

/// How a family's reference spells a prompt's message.
pub trait ReferenceMessage: DeserializeOwned {
    fn messages(&self) -> Vec<ChatMessage>;
}

/// Where a family's references live and which checkpoints they are checked on.
pub struct Suite {
    /// The reference folder under `tests/fixtures` (`llava-tiny-ref`).
    pub reference: &'static str,
    /// Checkpoints in every key layout, for ids and logits.
    pub layouts: &'static [&'static str],
    /// Checkpoints greedy generation is checked on.
    pub greedy_layouts: &'static [&'static str],
}

impl Suite {
    pub fn prompts<M: ReferenceMessage>(&self) -> BTreeMap<String, PromptRef<M>> {
        let path = fixtures().join(self.reference).join("prompts.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    pub fn check_input_ids<M: ReferenceMessage>(&self) {
        for layout in self.layouts {
            let model = load(layout);
            for (name, p) in self.prompts::<M>() {
                let prepared = model.prepare(&p.message.messages()).unwrap();
                assert_eq!(prepared.text, p.text, "{layout} {name}");
                assert_eq!(prepared.token_ids, p.input_ids, "{layout} {name}");
            }
        }
    }

    pub fn check_logits<M: ReferenceMessage>(&self) {
        let reference = candle_core::safetensors::load(
            fixtures().join(self.reference).join("logits.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        for layout in self.layouts {
            let model = load(layout);
            for (name, p) in self.prompts::<M>() {
                let prepared = model.prepare(&p.message.messages()).unwrap();
                assert_logits_match(
                    &model,
                    &prepared,
                    &reference[&name],
                    &format!("{layout} {name}"),
                );
            }
        }
    }

    pub fn check_greedy<M: ReferenceMessage>(&self) {
        for layout in self.greedy_layouts {
            let model = load(layout);
            for (name, p) in self.prompts::<M>() {
                let prepared = model.prepare(&p.message.messages()).unwrap();
                let (tokens, logprobs) = greedy(&model, &prepared, p.greedy_tokens.len());
                assert_eq!(tokens, p.greedy_tokens, "{layout} {name}");
                let worst = logprobs
                    .iter()
                    .zip(&p.greedy_logprobs)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                eprintln!(
                    "{layout} {name}: {} greedy tokens equal, logprob max diff {worst:.3e}",
                    tokens.len()
                );
                assert!(worst <= 1e-4, "{layout} {name}: logprob diff {worst}");
            }
        }
    }
}

/// Normalized planes (`[3][h * w]`) against a reference code image: each code pixel's
/// channel value indexes `table[channel]`, the float transformers produced; bit-exact.
pub fn assert_planes_match_codes(
    table: &[Vec<f32>],
    ours: &[f32],
    codes: &image::RgbImage,
    label: &str,
) {
    let plane = (codes.width() * codes.height()) as usize;
    assert_eq!(ours.len(), 3 * plane, "{label}: plane size");
    for (i, px) in codes.pixels().enumerate() {
        for c in 0..3 {
            let expected = table[c][px.0[c] as usize];
            assert_eq!(
                ours[c * plane + i].to_bits(),
                expected.to_bits(),
                "{label} pixel {i} channel {c}"
            );
        }
    }
}

/// The tests every family's reference runs, named once: input ids, logits in every key
/// layout, greedy tokens. `$suite` is a [`Suite`], `$message` the family's message type.
#[macro_export]
macro_rules! reference_tests {
    ($suite:expr, $message:ty) => {
        #[test]
        fn input_ids_match_processor() {
            $suite.check_input_ids::<$message>();
        }

        #[test]
        fn logits_match_transformers_in_both_layouts() {
            $suite.check_logits::<$message>();
        }

        #[test]
        fn greedy_tokens_match_generate() {
            $suite.check_greedy::<$message>();
        }
    };
}
