//! `vlm-eval`: benchmark a vision-language model (MME, MMMU-val) with lmms-eval's prompts,
//! parsers and aggregation, in-process or against any OpenAI-compatible server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use vlm_engine::Engine;
use vlm_eval::tasks::{self, Task};
use vlm_eval::{
    default_tags, details, evaluate, parse_tags, rescore, table, write_results, Backend, InProcess,
    OpenAiBackend, OpenAiOptions, Progress, RunInfo, RunOptions, TaskRun,
};

#[path = "../cli/engine_args.rs"]
mod engine_args;
#[path = "../cli/model_args.rs"]
mod model_args;
use engine_args::EngineArgs;
use model_args::ModelArgs;

/// `vlm-eval [flags]` evaluates; `vlm-eval score [flags]` rescores saved predictions.
#[derive(Parser, Debug)]
#[command(
    name = "vlm-eval",
    version,
    about = "Evaluate a vision-language model on MME and MMMU-val, scored as lmms-eval scores them",
    after_help = "Rescore saved predictions without a model: vlm-eval score --help"
)]
struct RunCli {
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Parser, Debug)]
#[command(
    name = "vlm-eval score",
    version,
    about = "Score a predictions JSONL ({\"doc_id\": ..., \"response\": ...} per line, or an \
             lmms-eval samples file) without running a model"
)]
struct ScoreCli {
    #[command(flatten)]
    score: ScoreArgs,
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Comma-separated tasks: mme, mmmu_val.
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// Directory holding dataset snapshots as `DIR/<repo id>/` (e.g. DIR/lmms-lab/MME/data/
    /// test-00000-of-00004.parquet); the Hugging Face cache and hub are tried after it.
    #[arg(long, env = "VLM_EVAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Only the first N rows of each task (MME: widened to whole image pairs).
    #[arg(long)]
    limit: Option<usize>,
    /// Where results.json, samples_<task>.jsonl and predictions_<task>.jsonl go.
    #[arg(long, default_value = "vlm-eval-out")]
    output_dir: PathBuf,
    /// Reasoning blocks removed before scoring: `none`, or JSON pairs
    /// (default lmms-eval's: [["<think>","</think>"],["<analysis>","</analysis>"]]).
    #[arg(long)]
    reasoning_tags: Option<String>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    model: ModelArgs,
    /// Evaluate against an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)
    /// instead of loading the model here; --model is then the name sent in requests.
    #[arg(long)]
    base_url: Option<String>,
    /// Bearer key for --base-url.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests in flight against --base-url.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Attempts per request against --base-url (transport errors, timeouts, 408/429/5xx).
    #[arg(long, default_value_t = 5)]
    max_retries: usize,
    /// Seconds before a request to --base-url times out.
    #[arg(long, default_value_t = 600)]
    request_timeout: u64,
    /// Keep the answers already in --output-dir and only ask for the missing or failed ones.
    #[arg(long)]
    resume: bool,
    /// The in-process engine.
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(clap::Args, Debug)]
struct ScoreArgs {
    #[command(flatten)]
    common: Common,
    /// The predictions to score (one task per file).
    #[arg(long)]
    predictions: PathBuf,
    /// Recorded as `config.model` in results.json.
    #[arg(long, default_value = "predictions")]
    model: String,
}

fn parse_tasks(names: &[String]) -> Result<Vec<Box<dyn Task>>> {
    names
        .iter()
        .map(|n| {
            tasks::by_name(n.trim())
                .with_context(|| format!("unknown task `{n}`; known: {}", tasks::NAMES.join(", ")))
        })
        .collect()
}

fn run_options(common: &Common, resume: bool) -> Result<RunOptions> {
    let reasoning_tags = match &common.reasoning_tags {
        Some(spec) => parse_tags(spec).map_err(anyhow::Error::msg)?,
        None => default_tags(),
    };
    Ok(RunOptions {
        data_dir: common.data_dir.clone(),
        limit: common.limit,
        output_dir: common.output_dir.clone(),
        resume,
        reasoning_tags,
    })
}

fn report(runs: &[TaskRun], info: &RunInfo, options: &RunOptions) -> Result<()> {
    let path = write_results(runs, info, &options.output_dir)?;
    println!("{}", table(runs));
    print!("{}", details(runs, info.mode));
    for run in runs {
        let answered = run.effective - run.resumed;
        if run.generation_seconds > 0.0 {
            println!(
                "{}: {} samples ({} resumed) in {:.1} s generation ({:.2} samples/s), {} prompt + {} completion tokens",
                run.name,
                run.effective,
                run.resumed,
                run.generation_seconds,
                answered as f64 / run.generation_seconds,
                run.prompt_tokens,
                run.completion_tokens
            );
        }
    }
    println!("results: {}", path.display());
    let failed: usize = runs.iter().map(|r| r.failures).sum();
    if failed > 0 && info.mode == "evaluate" {
        bail!("{failed} samples got no response (scored as empty answers); rerun with --resume to retry them");
    }
    Ok(())
}

/// One bar per task: samples done, rate and ETA.
fn progress_bars() -> impl FnMut(Progress<'_>) {
    let mut bar: Option<ProgressBar> = None;
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{elapsed_precise}] {bar:32} {pos}/{len} {per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut failed = 0usize;
    move |event| match event {
        Progress::TaskStarted {
            task,
            total,
            already_done,
        } => {
            let b = ProgressBar::new(total as u64).with_style(style.clone());
            b.set_prefix(task.to_string());
            b.set_position(already_done as u64);
            b.reset_eta();
            failed = 0;
            bar = Some(b);
        }
        Progress::SampleDone { failed: f, .. } => {
            if let Some(b) = &bar {
                if f {
                    failed += 1;
                    b.set_message(format!("{failed} failed"));
                }
                b.inc(1);
            }
        }
        Progress::TaskFinished { .. } => {
            if let Some(b) = bar.take() {
                b.finish();
            }
        }
    }
}

fn evaluate_command(args: RunArgs) -> Result<()> {
    let started = Instant::now();
    let tasks = parse_tasks(&args.common.tasks)?;
    let options = run_options(&args.common, args.resume)?;
    let (backend, identity): (Box<dyn Backend>, _) = match &args.base_url {
        Some(url) => {
            let backend = OpenAiBackend::connect(OpenAiOptions {
                base_url: url.clone(),
                api_key: args.api_key.clone(),
                model: Some(args.model.model.clone()),
                concurrency: args.concurrency,
                attempts: args.max_retries,
                timeout: Duration::from_secs(args.request_timeout),
                backoff: Duration::from_secs(1),
            })?;
            let identity = json!({"model": args.model.model, "backend": "openai"});
            (Box::new(backend), identity)
        }
        None => {
            let model = Arc::new(args.model.load()?);
            let engine = Arc::new(Engine::start(
                model,
                args.engine
                    .config(if args.model.device.starts_with("cuda") {
                        4096
                    } else {
                        512
                    }),
            )?);
            // A little more than the engine runs at once, so a finished sequence's slot
            // is refilled immediately; each waiting request holds its pixels.
            let window = args.engine.max_num_seqs + 8;
            let identity = json!({"model": args.model.model, "backend": "in-process"});
            (Box::new(InProcess::new(engine, window)), identity)
        }
    };
    let mut progress = progress_bars();
    let runs = evaluate(&tasks, backend.as_ref(), &options, &identity, &mut progress)?;
    let info = RunInfo {
        model: args.model.model.clone(),
        backend: backend.describe(),
        limit: options.limit,
        reasoning_tags: options.reasoning_tags.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        mode: "evaluate",
    };
    report(&runs, &info, &options)
}

fn score_command(args: ScoreArgs) -> Result<()> {
    let started = Instant::now();
    let tasks = parse_tasks(&args.common.tasks)?;
    if tasks.len() != 1 {
        bail!("score reads one task's predictions per call; pass one --tasks name");
    }
    let options = run_options(&args.common, false)?;
    let run = rescore(tasks[0].as_ref(), &args.predictions, &options)?;
    let info = RunInfo {
        model: args.model,
        backend: json!({"backend": "predictions", "file": args.predictions.display().to_string()}),
        limit: options.limit,
        reasoning_tags: options.reasoning_tags.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        mode: "score",
    };
    report(&[run], &info, &options)
}

fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "score") {
        argv.remove(1);
        let cli = ScoreCli::parse_from(argv);
        model_args::main_with("vlm-eval", "warn", || score_command(cli.score))
    } else {
        let cli = RunCli::parse_from(argv);
        model_args::main_with("vlm-eval", "warn", || evaluate_command(cli.run))
    }
}
