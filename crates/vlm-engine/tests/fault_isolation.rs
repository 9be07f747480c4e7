//! No request's failure costs another request: a step that fails (injected), and image
//! placeholder tokens typed into a raw prompt, fail only their own request while the
//! requests batched with them finish with exactly the tokens they get alone, and the engine
//! goes on serving with every KV block returned.

mod common;

use common::wait_idle;
use std::path::PathBuf;
use std::sync::Arc;

use vlm_core::{FinishReason, SamplingParams};
use vlm_engine::{Engine, EngineConfig, GenerationRequest, RequestInput};
use vlm_models::loader::Snapshot;
use vlm_models::{LoadOptions, VlmModel};

/// Token id the poisoned prompt carries (the fault hook fails any step that includes it).
const POISON: u32 = 77;

fn model() -> Arc<VlmModel> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llava-tiny");
    Arc::new(VlmModel::load(Snapshot::open(dir).unwrap(), &LoadOptions::default()).unwrap())
}

fn tokens(ids: Vec<u32>, max_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        input: RequestInput::Tokens(ids),
        sampling: SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(max_tokens)
        },
        pixel_budget: Default::default(),
        format: None,
    }
}

fn normal(salt: u32) -> GenerationRequest {
    tokens((0..24).map(|i| 3 + (i * 7 + salt * 13) % 200).collect(), 12)
}

#[test]
fn a_failing_step_fails_only_its_own_request() {
    let model = model();
    let config = EngineConfig {
        kv_cache_gb: 0.05,
        ..EngineConfig::default()
    };
    let clean = Engine::start(model.clone(), config.clone()).unwrap();
    let expected: Vec<Vec<u32>> = (0..3)
        .map(|salt| {
            clean.submit(normal(salt)).unwrap().collect_blocking().0[0]
                .token_ids
                .clone()
        })
        .collect();
    drop(clean);

    let engine = Engine::start(
        model,
        EngineConfig {
            fail_steps_with_token: Some(POISON),
            ..config
        },
    )
    .unwrap();
    // Queued together, so the poisoned prefill shares steps with the others.
    let first = engine.submit(normal(0)).unwrap();
    let poisoned = engine
        .submit(tokens(vec![1, 40, POISON, 41, 42], 12))
        .unwrap();
    let rest: Vec<_> = (1..3)
        .map(|salt| engine.submit(normal(salt)).unwrap())
        .collect();

    let (failed, _) = poisoned.collect_blocking();
    assert_eq!(failed[0].finish_reason, FinishReason::Abort);
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("injected fault"), "{error:?}");
    for (salt, stream) in std::iter::once(first).chain(rest).enumerate() {
        let (c, _) = stream.collect_blocking();
        assert_eq!(c[0].error, None);
        assert_eq!(c[0].finish_reason, FinishReason::Length);
        assert_eq!(
            c[0].token_ids, expected[salt],
            "request {salt} batched with a failing one"
        );
    }
    // The engine goes on: same answers, every block back.
    assert!(engine.is_running());
    let (again, _) = engine.submit(normal(2)).unwrap().collect_blocking();
    assert_eq!(again[0].token_ids, expected[2]);
    let stats = wait_idle(&engine);
    assert_eq!(stats.kv_blocks_used, 0);
}

#[test]
fn image_placeholder_tokens_in_a_raw_prompt_are_refused_at_submit() {
    let model = model();
    let engine = Engine::start(
        model.clone(),
        EngineConfig {
            kv_cache_gb: 0.05,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let image_token = model.image_token_id();
    let running = engine.submit(normal(0)).unwrap();
    for input in [
        RequestInput::Tokens(vec![1, image_token, 5, 6]),
        RequestInput::Text(format!(
            "{} hi",
            model.tokenizer().id_to_token(image_token).unwrap()
        )),
    ] {
        let err = engine
            .submit(GenerationRequest { input, ..normal(1) })
            .err()
            .expect("refused");
        assert!(err.is_client_error(), "{err}");
        assert!(err.to_string().contains("image placeholder"), "{err}");
    }
    let (c, _) = running.collect_blocking();
    assert_eq!(c[0].finish_reason, FinishReason::Length);
    assert_eq!(c[0].error, None);
    assert!(engine.is_running());
}
