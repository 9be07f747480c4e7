//! How far each weight format's next-token distributions are from f32's on one checkpoint
//! (run by hand; see BENCHMARKS.md):
//!
//!     cargo bench --bench format_distance -- MODEL_DIR
//!
//! Eight fixed prompts (six with one of the test images, two text only), every position of
//! each: mean KL(f32 || format) and top-1 agreement, for bf16, f16, q8_0, q4_0 and q4_k.

use vlm_core::{ChatMessage, ImageData};
use vlm_models::loader::Snapshot;
use vlm_models::{distribution_distance, LoadOptions, VlmModel};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: cargo bench --bench format_distance -- MODEL_DIR");
        std::process::exit(2);
    };
    let images = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images");
    let prompts: Vec<Vec<ChatMessage>> = (0..8)
        .map(|i| {
            let name = ["square.png", "landscape.jpg", "gray.png", "tiny.png"][i % 4];
            let image = (i % 4 != 3).then(|| {
                ImageData::new(std::fs::read(format!("{images}/{name}")).expect("test image"))
            });
            let text = format!(
                "Question {i}: what is in the picture{}?",
                " now".repeat(i % 3)
            );
            vec![ChatMessage::user_with_images(
                image.into_iter().collect(),
                text,
            )]
        })
        .collect();
    let log_probs = |dtype: &str, quantize: Option<&str>| -> Vec<Vec<f32>> {
        let options = LoadOptions::parse("cpu", dtype)
            .and_then(|o| o.with_quantize(quantize))
            .expect("format");
        let model = VlmModel::load(Snapshot::open(dir).expect("model directory"), &options)
            .expect("model loads");
        prompts
            .iter()
            .flat_map(|m| model.prompt_log_probs(m).expect("forward"))
            .collect()
    };
    let reference = log_probs("f32", None);
    println!("format  positions  mean KL to f32  top-1 agreement");
    for (label, dtype, quantize) in [
        ("bf16", "bf16", None),
        ("f16", "f16", None),
        ("q8_0", "f32", Some("q8_0")),
        ("q4_0", "f32", Some("q4_0")),
        ("q4_k", "f32", Some("q4_k")),
    ] {
        let (kl, agree) = distribution_distance(&reference, &log_probs(dtype, quantize));
        println!("{label:<7} {:<10} {kl:<15.3e} {agree:.4}", reference.len());
    }
}
