//! Qwen2-VL against the transformers references written by scripts/make_fixtures.py:
//! resized pixels and grids (with per-request pixel budgets), the flattened patch order,
//! input ids, logits and greedy tokens for prompts with 0 to 3 images placed anywhere in the
//! text, in both checkpoint key layouts.

mod common;

use candle_core::Device;
use serde::Deserialize;
use vlm_core::{ChatMessage, ContentPart, ImageData, Role};
use vlm_models::loader::Snapshot;
use vlm_models::preprocess::{
    decode_rgb, Normalization, PixelBudget, Qwen2VlImageProcessor, DEFAULT_MAX_PIXELS,
};

use common::reference::{assert_planes_match_codes, PixelRef, ReferenceMessage, Suite};
use common::{fixtures, image_bytes, load};

const LAYOUTS: [&str; 2] = ["qwen2-vl-tiny", "qwen2-vl-tiny-hub"];

#[derive(Deserialize)]
struct PixelEntry {
    image: String,
    codes: String,
    grid_thw: [usize; 3],
    min_pixels: Option<u64>,
    max_pixels: Option<u64>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    image: Option<String>,
}

/// Qwen2-VL's reference spells a prompt as content parts, images anywhere in the text.
#[derive(Deserialize)]
struct Message {
    content: Vec<Part>,
}

impl ReferenceMessage for Message {
    fn messages(&self) -> Vec<ChatMessage> {
        let content = self
            .content
            .iter()
            .map(|part| match (&part.text, &part.image) {
                (Some(t), _) => ContentPart::Text(t.clone()),
                (None, Some(i)) => ContentPart::Image(ImageData::new(image_bytes(i))),
                (None, None) => panic!("empty part"),
            })
            .collect();
        vec![ChatMessage::new(Role::User, content)]
    }
}

reference_tests!(
    Suite {
        reference: "qwen2-vl-tiny-ref",
        layouts: &LAYOUTS,
        greedy_layouts: &LAYOUTS,
    },
    Message
);

fn processor(layout: &str) -> Qwen2VlImageProcessor {
    let (_, config) = Snapshot::open(fixtures().join(layout))
        .unwrap()
        .image_processor_config()
        .unwrap();
    Qwen2VlImageProcessor::from_json(&config).unwrap()
}

#[test]
fn resized_pixels_and_grids_match_pil_processor() {
    let reference: PixelRef<PixelEntry> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("qwen2-vl-tiny-ref/pixels.json")).unwrap(),
    )
    .unwrap();
    for layout in LAYOUTS {
        // The hub's top-level min/max_pixels and transformers 5's size.{shortest,longest}_edge.
        let (_, config) = Snapshot::open(fixtures().join(layout))
            .unwrap()
            .image_processor_config()
            .unwrap();
        let processor = processor(layout);
        let normalization: Normalization = serde_json::from_value(config).unwrap();
        for (case, entry) in &reference.images {
            let rgb = decode_rgb(&image_bytes(&entry.image), DEFAULT_MAX_PIXELS).unwrap();
            let budget = PixelBudget {
                min_pixels: entry.min_pixels,
                max_pixels: entry.max_pixels,
            };
            let resized = processor.resize(&rgb, budget).unwrap();
            let patches = processor.patchify(&resized);
            assert_eq!(patches.grid_thw, entry.grid_thw, "{layout} {case}: grid");
            let codes = image::open(
                fixtures()
                    .join("qwen2-vl-tiny-ref/pixels")
                    .join(&entry.codes),
            )
            .unwrap()
            .to_rgb8();
            assert_eq!(
                (codes.width() as usize, codes.height() as usize),
                (resized.width, resized.height)
            );
            let ours = normalization.apply(&resized);
            assert_planes_match_codes(&reference.table, &ours, &codes, case);
        }
        eprintln!(
            "{layout}: {} resized images and grids bit-exact",
            reference.images.len()
        );
    }
}

#[test]
fn flattened_patches_match_exactly() {
    let reference = candle_core::safetensors::load(
        fixtures().join("qwen2-vl-tiny-ref/patches_gray.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let expected = reference["pixel_values"].to_vec2::<f32>().unwrap();
    let grid = reference["grid_thw"].to_vec2::<i64>().unwrap();
    let rgb = decode_rgb(&image_bytes("gray.png"), DEFAULT_MAX_PIXELS).unwrap();
    let ours = processor("qwen2-vl-tiny")
        .process(&rgb, PixelBudget::default())
        .unwrap();
    assert_eq!(ours.grid_thw.map(|v| v as i64).to_vec(), grid[0]);
    assert_eq!(ours.patch_dim, expected[0].len());
    let flat: Vec<u32> = expected.iter().flatten().map(|v| v.to_bits()).collect();
    assert_eq!(
        ours.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        flat
    );
}

#[test]
fn extreme_aspect_ratio_is_refused_like_transformers() {
    let mut png = Vec::new();
    image::RgbImage::new(201, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let model = load("qwen2-vl-tiny");
    let messages = [ChatMessage::user_with_images(
        vec![ImageData::new(png)],
        "hi",
    )];
    let err = model.prepare(&messages).unwrap_err().to_string();
    assert!(err.contains("aspect ratio"), "{err}");
}

/// A request's `min_pixels` can ask for any size: what would exceed the model's context is
/// refused from the computed size, before a pixel is resized (2^62 used to abort the
/// process on a 40 GB allocation; 5e7 cost 2 GB and seconds).
#[test]
fn pixel_budgets_beyond_the_context_are_refused_before_resizing() {
    let model = load("qwen2-vl-tiny");
    let messages = [ChatMessage::user_with_images(
        vec![ImageData::new(image_bytes("gray.png"))],
        "hi",
    )];
    for min_pixels in [1u64 << 62, 50_000_000, u64::MAX] {
        let budget = PixelBudget {
            min_pixels: Some(min_pixels),
            max_pixels: Some(u64::MAX),
        };
        let started = std::time::Instant::now();
        let err = model
            .prepare_with(&messages, budget)
            .unwrap_err()
            .to_string();
        assert!(err.contains("image tokens, more than the model's"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{err}"
        );
    }
    // Within the context the budget still applies as before.
    let small = PixelBudget {
        min_pixels: Some(3136),
        max_pixels: Some(3136),
    };
    assert!(model.prepare_with(&messages, small).is_ok());
}
