//! Every weight format on both families: a request's tokens are the same alone or batched
//! within the format (and with prefix caching), and next-token distributions stay close to
//! f32's (mean KL divergence and top-1 agreement over every prompt position, printed).

mod common;

use common::{fixtures, image};
use std::sync::Arc;

use vlm_core::{ChatMessage, SamplingParams};
use vlm_engine::{Engine, EngineConfig, GenerationRequest};
use vlm_models::loader::Snapshot;
use vlm_models::{distribution_distance, LoadOptions, VlmModel};

fn load(name: &str, dtype: &str, quantize: Option<&str>) -> Arc<VlmModel> {
    let options = LoadOptions::parse("cpu", dtype)
        .unwrap()
        .with_quantize(quantize)
        .unwrap();
    let snapshot = Snapshot::open(fixtures().join(name)).unwrap();
    Arc::new(VlmModel::load(snapshot, &options).unwrap())
}

fn prompts() -> Vec<Vec<ChatMessage>> {
    let images = ["square.png", "landscape.jpg", "gray.png", "tiny.png"];
    (0..8)
        .map(|i| {
            let text = format!("Question {i}: what is here{}?", " now".repeat(i % 4));
            let img = (i % 3 != 2).then(|| image(images[i % images.len()]));
            vec![ChatMessage::user_with_images(
                img.into_iter().collect(),
                text,
            )]
        })
        .collect()
}

fn greedy(engine: &Engine, prompts: &[Vec<ChatMessage>], together: bool) -> Vec<Vec<u32>> {
    let submit = |m: &Vec<ChatMessage>| {
        engine
            .submit(GenerationRequest::chat(
                m.clone(),
                SamplingParams::greedy(10),
            ))
            .unwrap()
    };
    let collect = |s: vlm_engine::RequestStream| s.collect_blocking().0.remove(0).token_ids;
    if together {
        let streams: Vec<_> = prompts.iter().map(submit).collect();
        streams.into_iter().map(collect).collect()
    } else {
        prompts.iter().map(|m| collect(submit(m))).collect()
    }
}

/// Log-probabilities at every position of every prompt, stacked.
fn log_probs(model: &VlmModel, prompts: &[Vec<ChatMessage>]) -> Vec<Vec<f32>> {
    prompts
        .iter()
        .flat_map(|m| model.prompt_log_probs(m).unwrap())
        .collect()
}

#[test]
fn each_format_is_batch_invariant_and_close_to_f32() {
    let formats: [(&str, Option<&str>, f64); 5] = [
        ("bf16", None, 1e-3),
        ("f16", None, 1e-4),
        ("f32", Some("q8_0"), 5e-3),
        ("f32", Some("q4_0"), 0.3),
        ("bf16", Some("q4_k"), 0.3),
    ];
    for name in ["llava-tiny", "qwen2-vl-tiny"] {
        let prompts = prompts();
        let reference = log_probs(&load(name, "f32", None), &prompts);
        for (dtype, quantize, max_kl) in formats {
            let model = load(name, dtype, quantize);
            let label = format!("{name} --dtype {dtype} --quantize {quantize:?}");
            let (kl, agree) = distribution_distance(&reference, &log_probs(&model, &prompts));
            eprintln!(
                "{label}: mean KL to f32 {kl:.2e}, top-1 agreement {:.3} over {} positions",
                agree,
                reference.len()
            );
            assert!(kl < max_kl, "{label}: KL {kl}");
            let config = EngineConfig {
                kv_cache_gb: 0.1,
                max_batched_tokens: 97,
                ..EngineConfig::default()
            };
            let engine = Engine::start(model, config).unwrap();
            let alone = greedy(&engine, &prompts, false);
            let together = greedy(&engine, &prompts, true);
            assert_eq!(together, alone, "{label}: batched vs alone");
            assert!(engine.stats().prefix_cache_hits > 0, "{label}");
        }
    }
}
