//! Engine throughput on a bench-sized checkpoint (run by hand; see BENCHMARKS.md):
//!
//!     cargo bench --bench engine_throughput -- MODEL_DIR OUT.json [--threads N] [--cpu-bind LIST]
//!
//! Measures prefill tokens/s on a 512-token prompt, decode tokens/s of one stream, aggregate
//! decode tokens/s with 4 and 16 concurrent requests, and peak RSS. The prompts are the ones
//! scripts/bench_transformers.py gives transformers, so the two can be compared in one run.

use std::sync::Arc;
use std::time::Instant;

use vlm_core::SamplingParams;
use vlm_engine::{Engine, EngineConfig, GenerationRequest, RequestInput};
use vlm_models::loader::Snapshot;
use vlm_models::{LoadOptions, VlmModel};

const DECODE_TOKENS: usize = 64;
const PREFILL_TOKENS: usize = 512;
const SHORT_PROMPT: usize = 32;

fn prompt_ids(n: usize, salt: usize) -> Vec<u32> {
    std::iter::once(1)
        .chain((0..n - 1).map(|i| (3 + (i * 7 + salt * 13) % 297) as u32))
        .collect()
}

fn request(ids: Vec<u32>, max_tokens: usize) -> GenerationRequest {
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

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(model_dir), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cargo bench --bench engine_throughput -- MODEL_DIR OUT.json [--threads N] [--cpu-bind LIST]");
        std::process::exit(2);
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let threads = flag("--threads").map(|t| t.parse().expect("--threads N"));
    vlm_engine::configure_threads(threads, flag("--cpu-bind").as_deref())
        .expect("thread configuration");
    let snapshot = Snapshot::open(model_dir).expect("model directory");
    let model = Arc::new(VlmModel::load(snapshot, &LoadOptions::default()).expect("model loads"));
    let engine = Engine::start(
        model,
        EngineConfig {
            kv_cache_gb: 1.0,
            ..EngineConfig::default()
        },
    )
    .expect("engine starts");

    let run = |requests: Vec<GenerationRequest>| {
        let streams: Vec<_> = requests
            .into_iter()
            .map(|r| engine.submit(r).expect("submit"))
            .collect();
        for s in streams {
            s.collect_blocking();
        }
    };
    // Warm-up.
    run(vec![request(prompt_ids(16, 9), 4)]);

    let t = Instant::now();
    run(vec![request(prompt_ids(PREFILL_TOKENS, 0), 1)]);
    let prefill = PREFILL_TOKENS as f64 / t.elapsed().as_secs_f64();

    let mut results = serde_json::json!({
        "engine": "vlm (candle, f32, CPU)",
        "prefill_tokens_per_s": prefill,
    });
    for concurrency in [1usize, 4, 16] {
        let batch = || {
            (0..concurrency)
                .map(|s| request(prompt_ids(SHORT_PROMPT, s), DECODE_TOKENS))
                .collect()
        };
        // Time to the first token of every request (prefill), then the whole run.
        let first: Vec<GenerationRequest> = (0..concurrency)
            .map(|s| request(prompt_ids(SHORT_PROMPT, s), 1))
            .collect();
        let t = Instant::now();
        run(first);
        let t_first = t.elapsed().as_secs_f64();
        let t = Instant::now();
        run(batch());
        let total = t.elapsed().as_secs_f64();
        let decode = (concurrency * (DECODE_TOKENS - 1)) as f64 / (total - t_first).max(1e-9);
        results[format!("decode_tokens_per_s_c{concurrency}")] = decode.into();
        eprintln!("concurrency {concurrency}: {decode:.1} decode tokens/s");
    }
    results["peak_rss_mb"] = peak_rss_mb().into();
    let text = serde_json::to_string_pretty(&results).expect("json");
    std::fs::write(out, &text).expect("write results");
    println!("{text}");
}
