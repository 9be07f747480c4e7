//! LLaVA against the transformers references written by scripts/make_fixtures.py: pixel
//! values, input ids, full logits and greedy tokens, in both checkpoint key layouts.

mod common;

use candle_core::Device;
use common::reference::{assert_planes_match_codes, PixelRef, ReferenceMessage, Suite};
use common::{fixtures, load, max_abs_diff};
use serde::Deserialize;
use vlm_core::{ChatMessage, ImageData};
use vlm_models::decoder::ContiguousKvCache;
use vlm_models::loader::Snapshot;
use vlm_models::preprocess::{decode_rgb, ClipImageProcessor, DEFAULT_MAX_PIXELS};
use vlm_models::{LogitRows, SeqStep};

#[derive(Deserialize)]
struct PixelEntry {
    codes: String,
    height: usize,
    width: usize,
}

/// LLaVA's reference spells a prompt as its images (in order, before the text) and text.
#[derive(Deserialize)]
struct Message {
    prompt: String,
    images: Vec<String>,
}

impl ReferenceMessage for Message {
    fn messages(&self) -> Vec<ChatMessage> {
        let images = self
            .images
            .iter()
            .map(|n| ImageData::new(std::fs::read(fixtures().join("images").join(n)).unwrap()))
            .collect();
        vec![ChatMessage::user_with_images(images, self.prompt.clone())]
    }
}

const LAYOUTS: [&str; 2] = ["llava-tiny", "llava-tiny-hub"];

const SUITE: Suite = Suite {
    reference: "llava-tiny-ref",
    layouts: &LAYOUTS,
    greedy_layouts: &["llava-tiny-hub"],
};

reference_tests!(SUITE, Message);

#[test]
fn pixel_values_match_pil_processor() {
    let reference: PixelRef<PixelEntry> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("llava-tiny-ref/pixels.json")).unwrap(),
    )
    .unwrap();
    for layout in LAYOUTS {
        // Both spellings: the hub's preprocessor_config.json and transformers 5's processor_config.json.
        let (_, config) = Snapshot::open(fixtures().join(layout))
            .unwrap()
            .image_processor_config()
            .unwrap();
        let processor = ClipImageProcessor::from_json(&config).unwrap();
        let mut checked = 0;
        for (name, entry) in &reference.images {
            let bytes = std::fs::read(fixtures().join("images").join(name)).unwrap();
            let rgb = decode_rgb(&bytes, DEFAULT_MAX_PIXELS).unwrap();
            let crop = processor.resize_and_crop(&rgb);
            let ours = processor.normalize(&crop);
            let codes = image::open(fixtures().join("llava-tiny-ref/pixels").join(&entry.codes))
                .unwrap()
                .to_rgb8();
            assert_eq!(
                (ours.height, ours.width),
                (entry.height, entry.width),
                "{name}"
            );
            assert_eq!(
                (codes.height() as usize, codes.width() as usize),
                (entry.height, entry.width)
            );
            // PNG and JPEG alike: JPEG is decoded by libjpeg-turbo, as in Pillow.
            assert_planes_match_codes(&reference.table, &ours.data, &codes, name);
            checked += 1;
        }
        eprintln!("{layout}: {checked} images, pixel values bit-exact");
        assert_eq!(checked, reference.images.len());
    }
}

/// Two prompts of different lengths (text only, and with an image) in one prefill step, then
/// one decode step for both: each sequence gets its own reference logits and greedy token.
#[test]
fn batched_sequences_of_different_lengths_match_references() {
    let reference = candle_core::safetensors::load(
        fixtures().join("llava-tiny-ref/logits.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let model = load("llava-tiny");
    let all = SUITE.prompts::<Message>();
    let names = ["text_only", "one_image"];
    let prepared: Vec<_> = names
        .iter()
        .map(|n| model.prepare(&all[*n].message.messages()).unwrap())
        .collect();
    let steps: Vec<SeqStep> = prepared
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.prefill_step(
                10 + i,
                0..p.token_ids.len(),
                model.encode_prompt_images(p).unwrap(),
            )
        })
        .collect();
    let mut kv = ContiguousKvCache::new();
    let logits = model.forward(&steps, &mut kv, LogitRows::All).unwrap();
    let mut row = 0;
    for (name, p) in names.iter().zip(&prepared) {
        let ours = logits.narrow(0, row, p.token_ids.len()).unwrap();
        let diff = max_abs_diff(&ours, &reference[*name]);
        assert!(diff <= 1e-4, "{name} batched: max abs diff {diff}");
        row += p.token_ids.len();
    }
    let firsts: Vec<[u32; 1]> = names.iter().map(|n| [all[*n].greedy_tokens[0]]).collect();
    let decode: Vec<SeqStep> = prepared
        .iter()
        .zip(&firsts)
        .enumerate()
        .map(|(i, (p, first))| p.decode_step(10 + i, p.token_ids.len(), first))
        .collect();
    let next = model
        .forward(&decode, &mut kv, LogitRows::LastPerSeq)
        .unwrap();
    let next = next.argmax(1).unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(
        next,
        vec![
            all["text_only"].greedy_tokens[1],
            all["one_image"].greedy_tokens[1]
        ]
    );
}
