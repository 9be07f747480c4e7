//! Prefix caching is exact: on both families, requests that share a prefix (an image asked
//! two questions, a repeated prompt, a longer conversation over the same start) get the
//! same tokens and bit-identical logprobs with the cache as without it, whatever the block
//! size, the prefill chunk boundaries, the batch, or evictions under a small KV budget.

mod common;

use common::{image, model, wait_idle};
use std::sync::Arc;

use vlm_core::{ChatMessage, ContentPart, Role, SamplingParams};
use vlm_engine::{Engine, EngineConfig, GenerationRequest};
use vlm_models::VlmModel;

/// Prompts that share prefixes in every way evaluation and chat produce them.
fn text(role: Role, text: String) -> ChatMessage {
    ChatMessage::new(role, vec![ContentPart::Text(text)])
}

fn prompts() -> Vec<Vec<ChatMessage>> {
    let question = |img: &str, text: &str| {
        vec![ChatMessage::user_with_images(
            vec![image(img)],
            text.to_string(),
        )]
    };
    let conversation = |turns: usize| {
        let mut messages = vec![ChatMessage::user_with_images(
            vec![image("landscape.jpg")],
            "Describe the picture in detail, please.",
        )];
        for t in 0..turns {
            messages.push(text(Role::Assistant, format!("Answer {t}.")));
            messages.push(text(Role::User, format!("And then {t}?")));
        }
        messages
    };
    vec![
        question("square.png", "Is there a square? Answer yes or no."),
        question("square.png", "Is the shape red? Answer yes or no."),
        question("landscape.jpg", "Is there a square? Answer yes or no."),
        question("square.png", "Is there a square? Answer yes or no."),
        conversation(0),
        conversation(2),
        conversation(1),
        vec![text(
            Role::User,
            "A long shared text prefix without images. ".repeat(6) + "First.",
        )],
        vec![text(
            Role::User,
            "A long shared text prefix without images. ".repeat(6) + "Second.",
        )],
    ]
}

/// Each completion as tokens and the exact bits of its logprobs and alternatives.
type Output = Vec<(Vec<u32>, Vec<u32>, Vec<Vec<(u32, u32)>>)>;

fn run(engine: &Engine, prompts: &[Vec<ChatMessage>], together: bool) -> Output {
    let request = |m: &Vec<ChatMessage>| {
        let params = SamplingParams {
            logprobs: Some(3),
            ..SamplingParams::greedy(6)
        };
        engine
            .submit(GenerationRequest::chat(m.clone(), params))
            .unwrap()
    };
    let collect = |stream: vlm_engine::RequestStream| {
        let c = stream.collect_blocking().0.remove(0);
        assert!(c.error.is_none(), "{:?}", c.error);
        (
            c.token_ids,
            c.logprobs.iter().map(|l| l.to_bits()).collect(),
            c.top_logprobs
                .iter()
                .map(|alts| {
                    alts.iter()
                        .map(|a| (a.token_id, a.logprob.to_bits()))
                        .collect()
                })
                .collect(),
        )
    };
    if together {
        let streams: Vec<_> = prompts.iter().map(request).collect();
        streams.into_iter().map(collect).collect()
    } else {
        prompts.iter().map(|m| collect(request(m))).collect()
    }
}

fn engine(
    model: &Arc<VlmModel>,
    caching: bool,
    block_size: usize,
    budget: usize,
    gb: f64,
) -> Engine {
    let config = EngineConfig {
        kv_cache_gb: gb,
        block_size,
        max_batched_tokens: budget,
        enable_prefix_caching: caching,
        ..EngineConfig::default()
    };
    Engine::start(model.clone(), config).unwrap()
}

#[test]
fn outputs_are_identical_with_and_without_prefix_caching() {
    for name in ["llava-tiny", "qwen2-vl-tiny"] {
        let model = model(name);
        let prompts = prompts();
        let plain = engine(&model, false, 16, 4096, 0.1);
        let reference = run(&plain, &prompts, false);
        let stats = wait_idle(&plain);
        assert_eq!(
            (stats.prefix_cache_hits, stats.kv_blocks_cached),
            (0, 0),
            "{name}: caching off reuses nothing"
        );
        // Block sizes that cut images and chunk budgets that cut blocks; one at a time (each
        // request finds the earlier ones' blocks) and all at once (shared within a batch
        // only once computed).
        for (block_size, budget) in [(16, 4096), (4, 37), (5, 16), (16, 9)] {
            let cached = engine(&model, true, block_size, budget, 0.1);
            for together in [false, true] {
                let got = run(&cached, &prompts, together);
                for (i, (a, b)) in got.iter().zip(&reference).enumerate() {
                    assert_eq!(
                        a, b,
                        "{name}: prompt {i}, block size {block_size}, budget {budget}, together {together}"
                    );
                }
            }
            let stats = wait_idle(&cached);
            assert!(
                stats.prefix_cache_hits > 0 && stats.prefix_cache_hits < stats.prefix_cache_queries,
                "{name}: {stats:?}"
            );
            // The second pass found every prompt's blocks: it computed far fewer tokens.
            assert!(
                stats.prompt_tokens < stats.prefix_cache_queries,
                "{name}: {stats:?}"
            );
        }
    }
}

#[test]
fn eviction_and_preemption_under_a_small_budget_stay_exact() {
    for name in ["llava-tiny", "qwen2-vl-tiny"] {
        let model = model(name);
        let prompts = prompts();
        let plain = engine(&model, false, 16, 4096, 0.1);
        let reference = run(&plain, &prompts, false);
        // Room for a couple of prompts: cached blocks are evicted to admit new ones, and
        // running sequences preempt each other.
        let bytes_per_token = vlm_engine::KvLayout::for_model(&model).bytes_per_block(1) as f64;
        let longest = prompts
            .iter()
            .map(|p| model.prepare(p).unwrap().token_ids.len())
            .max()
            .unwrap();
        let gb = 1.5 * ((longest + 8) as f64 * bytes_per_token) / (1u64 << 30) as f64;
        let small = engine(&model, true, 4, 64, gb);
        for pass in 0..2 {
            assert_eq!(
                run(&small, &prompts, true),
                reference,
                "{name}: pass {pass}"
            );
        }
        let stats = wait_idle(&small);
        assert!(
            stats.prefix_cache_hits > 0 && stats.preemptions > 0,
            "{name}: {stats:?}"
        );
        assert!(stats.kv_blocks_cached <= stats.kv_blocks_total);
    }
}

#[test]
fn two_questions_about_one_image_sent_together_share_its_prefix() {
    for name in ["llava-tiny", "qwen2-vl-tiny"] {
        let model = model(name);
        let pair = &prompts()[..2];
        let cached = engine(&model, true, 16, 4096, 0.1);
        run(&cached, pair, true);
        let stats = wait_idle(&cached);
        // The second waits for the first's prefix (one step) instead of computing it too,
        // then reuses every full block of it.
        let (a, b) = (
            model.prepare(&pair[0]).unwrap().token_ids,
            model.prepare(&pair[1]).unwrap().token_ids,
        );
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let shared = common / 16 * 16;
        assert!(shared >= 32, "{name}: the pair shares {common} tokens");
        assert!(
            stats.prefix_cache_hits as usize == shared,
            "{name}: {stats:?}"
        );
        assert_eq!(
            stats.prompt_tokens + stats.prefix_cache_hits,
            stats.prefix_cache_queries,
            "{name}: every prompt token computed once or reused"
        );
    }
}
