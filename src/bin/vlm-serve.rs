//! `vlm-serve`: an OpenAI-compatible `/v1` over one vision-language model.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use vlm::cli::shutdown::serve_until_shutdown;
use vlm::cli::{main_with, EngineArgs, ModelArgs};
use vlm_engine::Engine;
use vlm_server::{router, AppState, ConnectionLimits, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "vlm-serve",
    version,
    about = "Serve a vision-language model behind an OpenAI-compatible /v1"
)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Name(s) clients use in the `model` field (default: the --model argument).
    #[arg(long, num_args = 1..)]
    served_model_name: Vec<String>,
    #[arg(long, env = "VLM_HOST", default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port (printed at start-up).
    #[arg(long, env = "VLM_PORT", default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer <key>` on /v1/*.
    #[arg(long, env = "VLM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    #[arg(long, default_value_t = 8)]
    limit_images_per_prompt: usize,
    /// Allow `file://` and plain-path image URLs under this directory.
    #[arg(long)]
    allowed_local_media_path: Option<PathBuf>,
    /// Fetch http(s) image URLs (off: clients send data: URLs).
    #[arg(long)]
    allow_remote_images: bool,
    /// Largest encoded image, in MiB, from any source.
    #[arg(long, default_value_t = 20.0)]
    max_image_mb: f64,
    /// Largest decoded image, in pixels (width x height).
    #[arg(long, default_value_t = 8192 * 8192)]
    max_image_pixels: u64,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64.0)]
    max_body_mb: f64,
    /// Requests whose images are decoded and prompts prepared at once; the rest wait. Each
    /// decoded image is held to 256 MiB, so this bounds the memory requests can take.
    #[arg(long, default_value_t = 2)]
    max_concurrent_preparations: usize,
    /// Most open connections; more wait in the kernel's backlog until one closes.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a connection may take to send a request's headers (idle connections are
    /// closed after this).
    #[arg(long, default_value_t = 30)]
    header_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
}

fn run(args: Args) -> Result<()> {
    if let Some(dir) = &args.allowed_local_media_path {
        anyhow::ensure!(
            dir.is_dir(),
            "--allowed-local-media-path {} is not a directory",
            dir.display()
        );
    }
    let model = Arc::new(args.model.load()?);
    let engine = Arc::new(Engine::start(model, args.engine.config(2048))?);
    let names = if args.served_model_name.is_empty() {
        vec![args.model.model.clone()]
    } else {
        args.served_model_name.clone()
    };
    let config = ServerConfig {
        served_model_names: names.clone(),
        api_key: args.api_key.clone(),
        limit_images_per_prompt: args.limit_images_per_prompt,
        allowed_local_media_path: args.allowed_local_media_path.clone(),
        allow_remote_images: args.allow_remote_images,
        max_image_bytes: mib(args.max_image_mb, "--max-image-mb")?,
        max_image_pixels: args.max_image_pixels,
        max_body_bytes: mib(args.max_body_mb, "--max-body-mb")?,
        max_concurrent_preparations: args.max_concurrent_preparations,
        ..ServerConfig::default()
    };
    // HTTP gets its own small runtime; the compute pool has the cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let state = AppState::new(engine.clone(), config);
    let addr = format!("{}:{}", args.host, args.port);
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; pick another --port or --host"))?;
        let local: SocketAddr = listener.local_addr()?;
        let stats = engine.stats();
        println!(
            "vlm-serve: {} ({}) at http://{local}/v1 | KV cache {} blocks x {} tokens = {} tokens, max_model_len {}",
            names.join(", "),
            engine.model_path().display(),
            stats.kv_blocks_total,
            stats.block_size,
            engine.kv_capacity_tokens(),
            engine.max_model_len(),
        );
        let grace = Duration::from_secs(args.shutdown_timeout);
        let watched = engine.clone();
        let limits = ConnectionLimits {
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout),
        };
        serve_until_shutdown(listener, router(state), limits, grace, move || {
            watched.is_running()
        })
        .await
    });
    // Work still blocked in a preparation thread (a stuck remote fetch) must not hold the
    // exit past the grace period.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    engine.shutdown(false);
    eprintln!("vlm-serve: stopped");
    Ok(())
}

fn mib(value: f64, flag: &str) -> Result<usize> {
    anyhow::ensure!(
        value.is_finite() && value > 0.0,
        "{flag} must be a positive number of MiB, got {value}"
    );
    Ok((value * (1u64 << 20) as f64) as usize)
}

fn main() -> ExitCode {
    main_with("vlm-serve", "info", || run(Args::parse()))
}
