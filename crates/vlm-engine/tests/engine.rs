//! The engine on the fixture checkpoints: batched equals alone, preemption, cancellation,
//! rejection at submit, seeded sampling, stop strings.

mod common;

use common::{fixtures, image, model, wait_idle};
use std::sync::Arc;

use serde_json::Value;
use vlm_core::{ChatMessage, ContentPart, FinishReason, Role, SamplingParams};
use vlm_engine::{Engine, EngineConfig, EngineError, GenerationRequest, RequestInput};
use vlm_models::VlmModel;

fn engine(model: &Arc<VlmModel>, kv_cache_gb: f64, max_batched_tokens: usize) -> Engine {
    let config = EngineConfig {
        kv_cache_gb,
        max_batched_tokens,
        ..EngineConfig::default()
    };
    Engine::start(model.clone(), config).unwrap()
}

/// A reference prompt (LLaVA `images` + `prompt`, or Qwen2-VL `content` parts) as a message.
fn reference_message(r: &Value) -> Vec<ChatMessage> {
    let content = if let Some(images) = r.get("images") {
        let mut parts: Vec<ContentPart> = images
            .as_array()
            .unwrap()
            .iter()
            .map(|i| ContentPart::Image(image(i.as_str().unwrap())))
            .collect();
        parts.push(ContentPart::Text(r["prompt"].as_str().unwrap().into()));
        parts
    } else {
        r["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match p.get("text") {
                Some(t) => ContentPart::Text(t.as_str().unwrap().into()),
                None => ContentPart::Image(image(p["image"].as_str().unwrap())),
            })
            .collect()
    };
    vec![ChatMessage::new(Role::User, content)]
}

fn references(file: &str) -> Vec<(String, Value)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(file)).unwrap()).unwrap();
    v.as_object().unwrap().clone().into_iter().collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_matches_transformers_through_the_engine() {
    for (name, file) in [
        ("llava-tiny", "llava-tiny-ref/prompts.json"),
        ("qwen2-vl-tiny", "qwen2-vl-tiny-ref/prompts.json"),
    ] {
        let model = model(name);
        // A small step budget forces chunked prefill of the image prompts.
        for budget in [4096, 200] {
            let engine = engine(&model, 0.05, budget);
            for (case, r) in references(file) {
                let expected = ids(&r["greedy_tokens"]);
                let request = GenerationRequest::chat(
                    reference_message(&r),
                    SamplingParams::greedy(expected.len()),
                );
                let (completions, _) = engine.submit(request).unwrap().collect_blocking();
                assert_eq!(
                    completions[0].token_ids, expected,
                    "{name} {case} budget {budget}"
                );
            }
        }
    }
}

/// Prompts of different lengths and images for one family.
fn mixed_requests(name: &str) -> Vec<Vec<ChatMessage>> {
    let file = if name.starts_with("llava") {
        "llava-tiny-ref/prompts.json"
    } else {
        "qwen2-vl-tiny-ref/prompts.json"
    };
    let mut all: Vec<Vec<ChatMessage>> = references(file)
        .iter()
        .map(|(_, r)| reference_message(r))
        .collect();
    let images = [
        "square.png",
        "gray.png",
        "landscape.jpg",
        "tiny.png",
        "one_pixel.png",
        "rgba.png",
    ];
    let mut i = 0;
    while all.len() < 17 {
        let text = format!("Question {i}: what do you see{}?", " really".repeat(i % 5));
        let img = (i % 3 != 2).then(|| image(images[i % images.len()]));
        all.push(vec![ChatMessage::user_with_images(
            img.into_iter().collect(),
            text,
        )]);
        i += 1;
    }
    all
}

fn greedy_alone(
    engine: &Engine,
    messages: &[Vec<ChatMessage>],
    max_tokens: usize,
) -> Vec<Vec<u32>> {
    messages
        .iter()
        .map(|m| {
            let request = GenerationRequest::chat(m.clone(), SamplingParams::greedy(max_tokens));
            engine
                .submit(request)
                .unwrap()
                .collect_blocking()
                .0
                .remove(0)
                .token_ids
        })
        .collect()
}

fn greedy_together(
    engine: &Engine,
    messages: &[Vec<ChatMessage>],
    max_tokens: usize,
) -> Vec<Vec<u32>> {
    let streams: Vec<_> = messages
        .iter()
        .map(|m| {
            engine
                .submit(GenerationRequest::chat(
                    m.clone(),
                    SamplingParams::greedy(max_tokens),
                ))
                .unwrap()
        })
        .collect();
    streams
        .into_iter()
        .map(|s| s.collect_blocking().0.remove(0).token_ids)
        .collect()
}

#[test]
fn batched_equals_alone_for_both_families() {
    for name in ["llava-tiny", "qwen2-vl-tiny"] {
        let model = model(name);
        let messages = mixed_requests(name);
        let engine = engine(&model, 0.25, 1024);
        let alone = greedy_alone(&engine, &messages, 12);
        let together = greedy_together(&engine, &messages, 12);
        assert_eq!(
            together, alone,
            "{name}: 17 requests batched vs one at a time"
        );
        let stats = wait_idle(&engine);
        assert_eq!(stats.kv_blocks_used, 0, "{name}: every block returned");
        assert!(
            stats.image_cache_hits > 0,
            "{name}: repeated images hit the cache"
        );
    }
}

#[test]
fn async_callers_stream_the_same_tokens_as_blocking_ones() {
    let llava = model("llava-tiny");
    let engine = engine(&llava, 0.01, 2048);
    let messages = mixed_requests("llava-tiny");
    let blocking = greedy_together(&engine, &messages[..3], 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let streamed: Vec<Vec<u32>> = runtime.block_on(async {
        let tasks: Vec<_> = messages[..3]
            .iter()
            .map(|m| {
                let mut stream = engine
                    .submit(GenerationRequest::chat(
                        m.clone(),
                        SamplingParams::greedy(10),
                    ))
                    .unwrap();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    while let Some(event) = stream.next().await {
                        ids.push(event.token_id);
                        if event.finish_reason.is_some() {
                            assert!(event.usage.is_some(), "the last event carries usage");
                        }
                    }
                    ids
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(streamed, blocking);
}

#[test]
fn preemption_under_a_tiny_kv_budget_completes_everything_correctly() {
    let model = model("qwen2-vl-tiny");
    let messages = mixed_requests("qwen2-vl-tiny");
    let alone = greedy_alone(&engine(&model, 0.25, 4096), &messages, 20);
    // Room for about 500 tokens: the 17 requests (up to 342 prompt tokens each) must take
    // turns, and running ones that cannot grow are preempted and recomputed.
    let t = model.text_config();
    let per_token = 2 * t.num_hidden_layers * t.num_kv_heads() * t.head_dim() * 4;
    let tight = engine(&model, (512 * per_token) as f64 / (1u64 << 30) as f64, 4096);
    let together = greedy_together(&tight, &messages, 20);
    assert_eq!(together, alone);
    let stats = wait_idle(&tight);
    assert!(
        stats.preemptions > 0,
        "the budget was meant to force preemption"
    );
    assert_eq!(
        (stats.kv_blocks_used, stats.running, stats.waiting),
        (0, 0, 0)
    );
}

#[test]
fn dropping_or_aborting_a_stream_frees_every_block() {
    let model = model("llava-tiny");
    let engine = engine(&model, 0.05, 4096);
    let messages = mixed_requests("llava-tiny");
    let mut kept = Vec::new();
    for (i, m) in messages.iter().take(6).enumerate() {
        let mut stream = engine
            .submit(GenerationRequest::chat(
                m.clone(),
                SamplingParams::greedy(500),
            ))
            .unwrap();
        let first = stream.next_blocking().unwrap();
        assert!(first.finish_reason.is_none());
        if i % 2 == 0 {
            drop(stream);
        } else {
            engine.abort(stream.id).unwrap();
            kept.push(stream);
        }
    }
    for stream in kept {
        let (completions, _) = stream.collect_blocking();
        assert_eq!(completions[0].finish_reason, FinishReason::Abort);
    }
    // Dropped streams are noticed at the next step.
    let stats = wait_idle(&engine);
    assert_eq!(stats.kv_blocks_used, 0);
    assert_eq!(stats.aborted_requests, 6);
}

#[test]
fn impossible_requests_are_rejected_at_submit() {
    let model = model("llava-tiny");
    let engine = Engine::start(
        model.clone(),
        EngineConfig {
            kv_cache_gb: 0.0001,
            max_model_len: Some(700),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let text = |max_tokens| {
        GenerationRequest::chat(
            vec![ChatMessage::user_with_images(vec![], "hi")],
            SamplingParams::greedy(max_tokens),
        )
    };
    let capacity = engine.kv_capacity_tokens();
    assert!(
        capacity < 690,
        "test assumes a KV cache below max_model_len ({capacity})"
    );
    let err = engine.submit(text(690)).err().unwrap();
    assert!(matches!(err, EngineError::ExceedsKvCache { .. }), "{err}");
    let err = engine.submit(text(1000)).err().unwrap();
    assert!(
        matches!(err, EngineError::ExceedsContext { limit: 700, .. }),
        "{err}"
    );
    let bad = GenerationRequest::chat(
        vec![ChatMessage::user_with_images(vec![], "hi")],
        SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        },
    );
    let err = engine.submit(bad).err().unwrap();
    assert!(err.to_string().contains("top_p"), "{err}");
    let tokens = |ids: Vec<u32>| GenerationRequest {
        input: RequestInput::Tokens(ids),
        sampling: SamplingParams::greedy(4),
        pixel_budget: Default::default(),
        format: None,
    };
    assert!(engine.submit(tokens(vec![])).is_err());
    assert!(engine
        .submit(tokens(vec![1, 100_000]))
        .err()
        .unwrap()
        .to_string()
        .contains("vocabulary"));
    assert!(engine.submit(tokens(vec![1, 2, 3])).is_ok());
}

#[test]
fn seeded_sampling_repeats_alone_and_in_a_batch() {
    let model = model("qwen2-vl-tiny");
    let engine = engine(&model, 0.1, 4096);
    let messages = mixed_requests("qwen2-vl-tiny");
    let sampled = |seed: u64, n: usize| {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed: Some(seed),
            n,
            max_tokens: 16,
            ..SamplingParams::default()
        };
        engine
            .submit(GenerationRequest::chat(messages[1].clone(), params))
            .unwrap()
    };
    let alone = sampled(11, 1).collect_blocking().0.remove(0).token_ids;
    // The same request among others (greedy noise around it) draws the same tokens.
    let noise: Vec<_> = messages[3..9]
        .iter()
        .map(|m| {
            engine
                .submit(GenerationRequest::chat(
                    m.clone(),
                    SamplingParams::greedy(16),
                ))
                .unwrap()
        })
        .collect();
    let batched = sampled(11, 1).collect_blocking().0.remove(0).token_ids;
    drop(noise);
    assert_eq!(batched, alone);
    assert_ne!(
        sampled(12, 1).collect_blocking().0.remove(0).token_ids,
        alone
    );
    let (two, usage) = sampled(11, 2).collect_blocking();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].token_ids, alone, "choice 0 uses the request's seed");
    assert_ne!(two[1].token_ids, two[0].token_ids);
    assert_eq!(usage.completion_tokens, 32);
}

#[test]
fn stop_strings_never_leak_and_stop_tokens_end_generation() {
    let model = model("llava-tiny");
    let engine = engine(&model, 0.05, 4096);
    let refs = references("llava-tiny-ref/prompts.json");
    let r = &refs.iter().find(|(c, _)| c == "text_only").unwrap().1;
    let full = r["greedy_text"].as_str().unwrap().to_string();
    let tokens = ids(&r["greedy_tokens"]);
    // A stop string from the middle of the greedy text, spanning several tokens.
    let stop: String = full.chars().skip(10).take(6).collect();
    let at = full.find(&stop).unwrap();
    let params = SamplingParams {
        stop: vec![stop.clone()],
        ..SamplingParams::greedy(tokens.len())
    };
    let mut stream = engine
        .submit(GenerationRequest::chat(reference_message(r), params))
        .unwrap();
    let mut text = String::new();
    let mut last = None;
    while let Some(event) = stream.next_blocking() {
        text.push_str(&event.text);
        assert!(!text.contains(&stop), "stop string leaked: {text:?}");
        last = event.finish_reason;
    }
    assert_eq!(text, full[..at]);
    assert_eq!(last, Some(FinishReason::Stop));

    let with_stop = SamplingParams {
        stop: vec![stop.clone()],
        include_stop_str_in_output: true,
        ..SamplingParams::greedy(tokens.len())
    };
    let (c, _) = engine
        .submit(GenerationRequest::chat(reference_message(r), with_stop))
        .unwrap()
        .collect_blocking();
    assert_eq!(c[0].text, full[..at + stop.len()]);

    let stop_token = SamplingParams {
        stop_token_ids: vec![tokens[5]],
        ..SamplingParams::greedy(tokens.len())
    };
    let (c, _) = engine
        .submit(GenerationRequest::chat(reference_message(r), stop_token))
        .unwrap()
        .collect_blocking();
    let first = tokens.iter().position(|&t| t == tokens[5]).unwrap();
    assert_eq!(c[0].token_ids, tokens[..=first]);
    assert_eq!(c[0].finish_reason, FinishReason::Stop);

    let at_least = SamplingParams {
        stop_token_ids: vec![tokens[0]],
        min_tokens: 3,
        ..SamplingParams::greedy(5)
    };
    let (c, _) = engine
        .submit(GenerationRequest::chat(reference_message(r), at_least))
        .unwrap()
        .collect_blocking();
    assert!(c[0].token_ids.len() >= 3 && !c[0].token_ids[..3].contains(&tokens[0]));
}

#[test]
fn logprobs_with_alternatives() {
    let model = model("llava-tiny");
    let engine = engine(&model, 0.05, 4096);
    let refs = references("llava-tiny-ref/prompts.json");
    let r = &refs.iter().find(|(c, _)| c == "one_image").unwrap().1;
    let params = SamplingParams {
        logprobs: Some(3),
        ..SamplingParams::greedy(5)
    };
    let (c, _) = engine
        .submit(GenerationRequest::chat(reference_message(r), params))
        .unwrap()
        .collect_blocking();
    let expected: Vec<f64> = r["greedy_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (i, top) in c[0].top_logprobs.iter().enumerate() {
        assert_eq!(top.len(), 3);
        assert_eq!(
            top[0].token_id, c[0].token_ids[i],
            "greedy picks the top alternative"
        );
        assert!((f64::from(c[0].logprobs[i]) - expected[i]).abs() < 1e-4);
        assert!(top[0].logprob >= top[1].logprob && top[1].logprob >= top[2].logprob);
    }
}

#[test]
fn shutdown_drains_or_aborts() {
    let model = model("llava-tiny");
    let messages = mixed_requests("llava-tiny");
    let engine = engine(&model, 0.05, 4096);
    let stream = engine
        .submit(GenerationRequest::chat(
            messages[0].clone(),
            SamplingParams::greedy(8),
        ))
        .unwrap();
    engine.shutdown(true);
    let (c, _) = stream.collect_blocking();
    assert_ne!(
        c[0].finish_reason,
        FinishReason::Abort,
        "drained to the end"
    );
    assert!(matches!(
        engine.submit(GenerationRequest::chat(
            messages[0].clone(),
            SamplingParams::greedy(8)
        )),
        Err(EngineError::Stopped)
    ));

    let engine = engine_for_abort(&model);
    let stream = engine
        .submit(GenerationRequest::chat(
            messages[0].clone(),
            SamplingParams::greedy(1000),
        ))
        .unwrap();
    engine.shutdown(false);
    let (c, _) = stream.collect_blocking();
    assert_eq!(c[0].finish_reason, FinishReason::Abort);
}

fn engine_for_abort(model: &Arc<VlmModel>) -> Engine {
    engine(model, 0.05, 4096)
}
