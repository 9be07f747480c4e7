//! `vlm-eval`'s default command: evaluate a model on tasks, in-process or against servers
//! (given, replicated or deployed for the run), recording the runs when `--db` names a store;
//! and `vlm-eval score`.

mod args;
mod common_args;
mod run_record;
mod score;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;
use vlm_engine::{Engine, PixelBudget};
use vlm_eval::tasks::Task;
use vlm_eval::{
    evaluate, Backend, DeployOptions, Deployment, InProcess, OpenAiBackend, OpenAiOptions, RunInfo,
    RunOptions,
};

pub use args::EvaluateArgs;
use common_args::{parse_tasks, run_options};
use run_record::{recorder, with_generation};
pub use score::{score_command, ScoreArgs};

use crate::cli::eval_progress::progress_bars;
use crate::cli::eval_recording::Recorder;
use crate::cli::eval_report::report;

pub fn evaluate_command(args: EvaluateArgs) -> Result<()> {
    let tasks = parse_tasks(&args.common.tasks)?;
    let mut options = run_options(&args.common, args.resume)?;
    if args.max_new_tokens == Some(0) {
        bail!("--max-new-tokens must be at least 1");
    }
    options.max_new_tokens = args.max_new_tokens;
    if options.judge.is_none() {
        for task in tasks
            .iter()
            .filter(|t| t.judge_prompt_version().is_some() && !t.judge_optional())
        {
            eprintln!(
                "vlm-eval: {} reads answers its rules cannot with a judge model; without \
                 --judge-url such answers stop the scoring after generation (the answers are \
                 kept: rerun with --judge-url and --resume)",
                task.name()
            );
        }
    }
    let mut recorder = recorder(&args, &tasks, &options)?;
    let result = evaluate_recorded(&args, &tasks, &options, recorder.as_mut());
    if let (Err(e), Some(recorder)) = (&result, recorder.as_mut()) {
        recorder.fail(&format!("{e:#}"));
    }
    result
}

fn evaluate_recorded(
    args: &EvaluateArgs,
    tasks: &[Box<dyn Task>],
    options: &RunOptions,
    mut recorder: Option<&mut Recorder>,
) -> Result<()> {
    let started = Instant::now();
    let mut in_process_engine = None;
    // A deployed server lives until the run ends: stopped when `_deployment` is dropped,
    // on every path out of here.
    let (_deployment, base_urls) = match &args.deploy {
        Some(command) => {
            vlm_eval::check_datasets(tasks, options)?;
            let started = Deployment::start(&DeployOptions {
                command: command.clone(),
                model: args.model.model.clone(),
                log: options.output_dir.join("deploy.log"),
                ready_timeout: Duration::from_secs(args.deploy_timeout),
                grace: Duration::from_secs(args.deploy_grace),
                api_key: args.api_key.clone(),
            })?;
            let url = started.base_url().to_string();
            (Some(started), vec![url])
        }
        None => (None, args.base_url.clone()),
    };
    let (backend, identity): (Box<dyn Backend>, _) = if !base_urls.is_empty() {
        let backend = OpenAiBackend::connect(OpenAiOptions {
            base_urls,
            api_key: args.api_key.clone(),
            model: Some(args.model.model.clone()),
            concurrency: args.concurrency,
            attempts: args.max_retries,
            timeout: Duration::from_secs(args.request_timeout),
            backoff: Duration::from_secs(1),
            replica_cooldown: Duration::from_secs(30),
        })?;
        let identity = match &args.deploy {
            Some(command) => {
                json!({"model": args.model.model, "backend": "deploy", "command": command})
            }
            None => json!({"model": args.model.model, "backend": "openai"}),
        };
        (Box::new(backend), identity)
    } else {
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
        in_process_engine = Some(engine.clone());
        let identity = json!({"model": args.model.model, "backend": "in-process"});
        let budget = PixelBudget {
            min_pixels: args.min_pixels,
            max_pixels: args.max_pixels,
        };
        (
            Box::new(InProcess::new(engine, window).with_pixel_budget(budget)),
            identity,
        )
    };
    let identity = with_generation(identity, args.max_new_tokens);
    let mut bars = progress_bars();
    let mut progress = |event: vlm_eval::Progress<'_>| {
        if let Some(r) = recorder.as_deref_mut() {
            r.progress(&event);
        }
        bars(event);
    };
    let runs = evaluate(tasks, backend.as_ref(), options, &identity, &mut progress)?;
    let info = RunInfo {
        model: args.model.model.clone(),
        model_name: args
            .name
            .clone()
            .unwrap_or_else(|| args.model.model.clone()),
        backend: backend.describe(),
        limit: options.limit,
        reasoning_tags: options.reasoning_tags.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        mode: "evaluate",
        gen_kwargs: args
            .max_new_tokens
            .map(|n| format!("max_new_tokens={n}"))
            .unwrap_or_default(),
    };
    // Recorded before the report, which fails a run with unanswered samples after writing
    // its results: those are complete runs with failures counted in their metrics.
    if let Some(r) = recorder {
        r.finish(&runs)?;
    }
    if let Some(engine) = in_process_engine {
        let s = engine.stats();
        println!(
            "engine: {} prompt tokens computed; the prefix cache reused {} of {} tokens looked up",
            s.prompt_tokens, s.prefix_cache_hits, s.prefix_cache_queries
        );
    }
    report(&runs, &info, options)
}
