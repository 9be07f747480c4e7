//! Engine throughput on a bench-sized checkpoint (run by hand; see BENCHMARKS.md):
//!
//!     cargo bench --bench engine_throughput -- MODEL_DIR OUT.json [--threads N]
//!         [--cpu-bind LIST] [--dtype f32|bf16|f16] [--quantize q8_0|q4_0|q4_k]
//!         [--prefill-rounds N] [--prefill-only]
//!
//! Measures prefill tokens/s on a 512-token prompt (the median of `N` rounds, default 5,
//! as llama-bench repeats its pp512 five times; `--prefill-only` stops there, for
//! profiling), decode tokens/s of one stream, aggregate
//! decode tokens/s with 4 and 16 concurrent requests, peak RSS, and the effective decode
//! bandwidth (bytes of weights one decode step reads x single-stream tokens/s) against a
//! read-bandwidth probe on the same threads, measured in the same run. The prompts are the
//! ones scripts/bench_transformers.py gives transformers, so the two can be compared in one
//! run. Prefix caching is off: every run computes its prompts.

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

/// GB/s of summing a 1 GiB buffer (well past the caches) on the compute pool's threads,
/// best of five passes.
fn read_bandwidth_gbs() -> f64 {
    let data: Vec<f32> = (0..(1usize << 28)).map(|i| (i % 7) as f32).collect();
    let chunks = 256;
    let per = data.len() / chunks;
    let mut best = 0f64;
    for _ in 0..5 {
        let sums: Vec<std::sync::atomic::AtomicU32> =
            (0..chunks).map(|_| Default::default()).collect();
        let t = Instant::now();
        candle_core::utils::barrier_pool().execute_chunked(chunks, |range| {
            for c in range {
                let part = &data[c * per..(c + 1) * per];
                let mut lanes = [0f32; 16];
                for block in part.chunks_exact(16) {
                    for (l, v) in lanes.iter_mut().zip(block) {
                        *l += v;
                    }
                }
                sums[c].store(
                    lanes.iter().sum::<f32>().to_bits(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(&sums);
        best = best.max((data.len() * 4) as f64 / secs / 1e9);
    }
    best
}

fn main() {
    // The allocator tuning every vlm binary starts with, so the bench runs what they run.
    vlm::cli::keep_freed_memory();
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
    let dtype = flag("--dtype").unwrap_or_else(|| "f32".into());
    let quantize = flag("--quantize");
    let options = LoadOptions::parse("cpu", &dtype)
        .and_then(|o| o.with_quantize(quantize.as_deref()))
        .expect("--dtype / --quantize");
    let snapshot = Snapshot::open(model_dir).expect("model directory");
    let model = Arc::new(VlmModel::load(snapshot, &options).expect("model loads"));
    let weight_bytes = model.decode_weight_bytes();
    let engine = Engine::start(
        model,
        EngineConfig {
            kv_cache_gb: 1.0,
            enable_prefix_caching: false,
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

    let rounds: usize =
        flag("--prefill-rounds").map_or(5, |n| n.parse().expect("--prefill-rounds N"));
    let mut rates: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let t = Instant::now();
            run(vec![request(prompt_ids(PREFILL_TOKENS, 0), 1)]);
            PREFILL_TOKENS as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let prefill = rates[rates.len() / 2];
    eprintln!("prefill tokens/s, each round: {rates:.1?}");
    if args.iter().any(|a| a == "--prefill-only") {
        println!("{prefill:.1}");
        return;
    }

    let mut results = serde_json::json!({
        "engine": format!("vlm ({}, CPU)", options.describe_weights()),
        "decode_weight_bytes": weight_bytes,
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
    // Before the probe, whose 1 GiB buffer would otherwise be the high-water mark.
    results["peak_rss_mb"] = peak_rss_mb().into();
    drop(engine);
    let probe = read_bandwidth_gbs();
    results["read_probe_gb_per_s"] = probe.into();
    let single = results["decode_tokens_per_s_c1"].as_f64().unwrap_or(0.0);
    let effective = weight_bytes as f64 * single / 1e9;
    results["effective_decode_gb_per_s"] = effective.into();
    results["effective_over_probe"] = (effective / probe).into();
    let text = serde_json::to_string_pretty(&results).expect("json");
    std::fs::write(out, &text).expect("write results");
    println!("{text}");
}
