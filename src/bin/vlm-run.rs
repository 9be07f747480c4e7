//! `vlm-run`: one prompt (images, then text) through a vision-language model, from the
//! command line. The quickest way to check a checkpoint works.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use vlm::cli::{main_with, ModelArgs};
use vlm_core::{ChatMessage, ImageData, SamplingParams};
use vlm_engine::{Engine, EngineConfig, KvLayout};
use vlm_models::preprocess::PixelBudget;

#[derive(Parser, Debug)]
#[command(
    name = "vlm-run",
    version,
    about = "Run one prompt through a vision-language model",
    allow_negative_numbers = true
)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image file; repeat for several images. They precede the text in the user message.
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The question or instruction.
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 for greedy decoding; above 0 samples.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Seed for sampling (reproducible draws).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object: prompt_token_ids, token_ids, text, logprobs, finish_reason.
    #[arg(long)]
    json: bool,
    /// Qwen2-VL: fewest pixels an image is resized to (overrides the checkpoint's min_pixels).
    #[arg(long)]
    min_pixels: Option<u64>,
    /// Qwen2-VL: most pixels an image is resized to (overrides the checkpoint's max_pixels).
    #[arg(long)]
    max_pixels: Option<u64>,
}

fn run(args: Args) -> Result<()> {
    let model = args.model.load()?;
    let images = args
        .images
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(ImageData::new)
                .with_context(|| format!("cannot read image {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let budget = PixelBudget {
        min_pixels: args.min_pixels,
        max_pixels: args.max_pixels,
    };
    let messages = [ChatMessage::user_with_images(images, args.prompt.clone())];
    let prompt = model.prepare_with(&messages, budget)?;
    let params = SamplingParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        seed: args.seed,
        ..SamplingParams::default()
    };
    params.validate()?;
    // Room for this one prompt: its tokens plus max_tokens, in KV blocks.
    let bytes_per_token = KvLayout::for_model(&model).bytes_per_block(1);
    let tokens =
        (prompt.token_ids.len() + params.max_tokens).min(model.max_position_embeddings()) + 16;
    let config = EngineConfig {
        kv_cache_gb: (tokens * bytes_per_token) as f64 / (1u64 << 30) as f64,
        ..EngineConfig::default()
    };
    let prompt_token_ids = prompt.token_ids.clone();
    let engine = Engine::start(Arc::new(model), config)?;
    let (mut completions, _) = engine.submit_prepared(prompt, params)?.collect_blocking();
    let generation = completions.remove(0);
    // One request: the engine's latency histograms hold exactly its own figures.
    let stats = engine.stats();
    let itl = &stats.inter_token_latency;
    tracing::info!(
        prompt_tokens = prompt_token_ids.len(),
        seconds_to_first_token = format!("{:.2}", stats.time_to_first_token.sum),
        decode_tokens = itl.count,
        decode_tokens_per_s = format!("{:.2}", itl.count as f64 / itl.sum.max(1e-9)),
        "generated"
    );
    if args.json {
        let out = serde_json::json!({
            "prompt_token_ids": prompt_token_ids,
            "token_ids": generation.token_ids,
            "text": generation.text,
            "logprobs": generation.logprobs,
            "finish_reason": generation.finish_reason,
        });
        println!("{out}");
    } else {
        println!("{}", generation.text);
    }
    Ok(())
}

fn main() -> ExitCode {
    main_with("vlm-run", "warn", || run(Args::parse()))
}
