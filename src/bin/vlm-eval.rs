//! `vlm-eval`: benchmark a vision-language model (MME, MMMU-val) with lmms-eval's prompts,
//! parsers and aggregation, in-process or against any OpenAI-compatible server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::{json, Value};
use vlm::cli::dashboard::{dashboard_command, DashboardArgs};
use vlm::cli::eval_progress::progress_bars;
use vlm::cli::eval_recording::Recorder;
use vlm::cli::eval_report::report;
use vlm::cli::runs_commands::{leaderboard_command, runs_command, LeaderboardArgs, RunsArgs};
use vlm::cli::store::Store;
use vlm::cli::sweep::{sweep_command, SweepArgs};
use vlm::cli::sync_command::{sync_command, SyncArgs};
use vlm::cli::workers::{queue_command, worker_command, QueueArgs, WorkerArgs};
use vlm::cli::{main_with, EngineArgs, ModelArgs};
use vlm_engine::Engine;
use vlm_engine::PixelBudget;
use vlm_eval::identity::{task_identities, with_judge, ModelSpec};
use vlm_eval::judge::JudgeOptions;
use vlm_eval::sweep::ModelEntry;
use vlm_eval::tasks::{self, Task};
use vlm_eval::{
    default_tags, evaluate, parse_tags, rescore, Backend, DeployOptions, Deployment, InProcess,
    OpenAiBackend, OpenAiOptions, RunInfo, RunOptions,
};
use vlm_runs::{ModelRecord, RunId};

/// The command line: `vlm-eval [flags]` evaluates; `vlm-eval score [flags]` rescores saved
/// predictions. Evaluating takes no subcommand, and a derived parser would build the
/// evaluation's flags even under `score` (failing on its required `--model`), so the
/// matches are told apart here.
enum Cli {
    Evaluate(Box<EvaluateArgs>),
    Other(Box<Subcommands>),
}

#[derive(Subcommand, Debug)]
enum Subcommands {
    #[command(
        display_name = "vlm-eval score",
        about = "Score a predictions JSONL ({\"doc_id\": ..., \"response\": ...} per line, or an \
                 lmms-eval samples file) without running a model"
    )]
    Score(ScoreArgs),
    /// Evaluate many models on the same tasks over a pool of devices (sweep.toml), reusing
    /// finished runs.
    Sweep(SweepArgs),
    /// List the runs in a runs store.
    Runs(RunsArgs),
    /// A task's leaderboard: each model's best completed run on its primary metric.
    Leaderboard(LeaderboardArgs),
    /// Put a sweep's runs in the runs store for workers, without running them.
    Queue(QueueArgs),
    /// Claim queued runs from the runs store and run them on this machine's devices.
    Worker(WorkerArgs),
    /// Record runs from existing output folders (ours and lmms-eval's) in the runs store.
    Sync(SyncArgs),
    /// Serve the runs store's REST API and the dashboard page.
    Dashboard(DashboardArgs),
    /// List the tasks --tasks knows (dataset, metrics); check task files given as arguments.
    Tasks(TasksArgs),
}

#[derive(Args, Debug)]
struct TasksArgs {
    /// Task files (.toml) to check and list with the built-in tasks.
    files: Vec<String>,
}

impl CommandFactory for Cli {
    fn command() -> Command {
        let command = Command::new("vlm-eval")
            .version(env!("CARGO_PKG_VERSION"))
            .about(
                "Evaluate a vision-language model on benchmarks (MME, MMMU-val, POPE, \
                 ScienceQA-IMG, AI2D, ChartQA, TextVQA, DocVQA, or a task file), scored as \
                 lmms-eval scores them",
            )
            // Without a subcommand the flags are an evaluation's; `score` takes only its
            // own, and the evaluation's required ones are not required with it.
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
            .propagate_version(true)
            .disable_help_subcommand(true);
        Subcommands::augment_subcommands(EvaluateArgs::augment_args(command))
    }

    fn command_for_update() -> Command {
        Self::command()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand_name().is_some() {
            Subcommands::from_arg_matches(matches).map(|s| Self::Other(Box::new(s)))
        } else {
            EvaluateArgs::from_arg_matches(matches).map(|args| Self::Evaluate(Box::new(args)))
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Cli {}

// The flags evaluating and scoring share: which tasks, on what data, written where. (A doc
// comment here would become the command's about text.)
#[derive(Args, Debug)]
struct CommonArgs {
    /// Comma-separated tasks (`vlm-eval tasks` lists them: mme, mmmu_val, pope, ...) or task
    /// files (paths ending in .toml).
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
    /// An OpenAI-compatible server with the judge model, for tasks that need one (MathVista's
    /// answer extraction when its rules fail), e.g. http://judge:8000/v1.
    #[arg(long, requires = "judge_model")]
    judge_url: Option<String>,
    /// The judge model's name at --judge-url.
    #[arg(long, requires = "judge_url")]
    judge_model: Option<String>,
    /// The environment variable holding the judge's API key.
    #[arg(long)]
    judge_api_key_env: Option<String>,
    /// Judge requests in flight.
    #[arg(long, default_value_t = 4)]
    judge_concurrency: usize,
}

#[derive(Args, Debug)]
struct EvaluateArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Evaluate against an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)
    /// instead of loading the model here; --model is then the name sent in requests. Give
    /// it several times for replicas of one model: requests go to the least busy, and a
    /// failing one is left out while its requests are retried on the others.
    #[arg(long, conflicts_with = "deploy")]
    base_url: Vec<String>,
    /// Start a server for the run and evaluate against it: a shell command with `{port}`
    /// (and `{model}`, replaced by --model), e.g. "vllm serve {model} --port {port}". It is
    /// stopped after the run; its log is deploy.log in --output-dir.
    #[arg(long)]
    deploy: Option<String>,
    /// Seconds the deployed server may take to answer /v1/models.
    #[arg(long, default_value_t = 900)]
    deploy_timeout: u64,
    /// Seconds the deployed server gets to exit after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 20)]
    deploy_grace: u64,
    /// Replace every task's max_new_tokens (lmms-eval's --gen_kwargs max_new_tokens=N), e.g.
    /// for MathVista's 16384 on a model with a shorter context. Part of the run's identity.
    #[arg(long)]
    max_new_tokens: Option<usize>,
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
    /// Record each task's run in this runs store: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    db: Option<String>,
    /// The model's name in the runs store (default: --model).
    #[arg(long)]
    name: Option<String>,
    /// Qwen2-VL: fewest pixels an image is resized to (overrides the checkpoint's min_pixels).
    #[arg(long)]
    min_pixels: Option<u64>,
    /// Qwen2-VL: most pixels an image is resized to (overrides the checkpoint's max_pixels).
    #[arg(long)]
    max_pixels: Option<u64>,
    /// Runs a worker claimed for these tasks ("task=id,..."): recorded into, not duplicated.
    #[arg(long, hide = true, value_delimiter = ',')]
    claimed_runs: Vec<String>,
    /// The in-process engine.
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug)]
struct ScoreArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The predictions to score (one task per file).
    #[arg(long)]
    predictions: PathBuf,
    /// Recorded as `config.model` in results.json.
    #[arg(long, default_value = "predictions")]
    model: String,
}

fn parse_tasks(names: &[String]) -> Result<Vec<Box<dyn Task>>> {
    let tasks = names
        .iter()
        .map(|n| tasks::resolve(n.trim()).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    // Outputs are named by task: two entries with one name would share them.
    for (i, task) in tasks.iter().enumerate() {
        if let Some(j) = tasks[..i].iter().position(|t| t.name() == task.name()) {
            bail!(
                "--tasks names task `{}` twice (`{}` and `{}`); give each task file its own \
                 `task` name",
                task.name(),
                names[j].trim(),
                names[i].trim()
            );
        }
    }
    Ok(tasks)
}

fn run_options(common: &CommonArgs, resume: bool) -> Result<RunOptions> {
    let reasoning_tags = match &common.reasoning_tags {
        Some(spec) => parse_tags(spec).map_err(anyhow::Error::msg)?,
        None => default_tags(),
    };
    let judge = match (&common.judge_url, &common.judge_model) {
        (Some(url), Some(model)) => {
            let api_key = match &common.judge_api_key_env {
                Some(var) => Some(std::env::var(var).with_context(|| {
                    format!("--judge-api-key-env names {var}, which is not set")
                })?),
                None => None,
            };
            Some(JudgeOptions {
                base_url: url.clone(),
                model: model.clone(),
                api_key,
                concurrency: common.judge_concurrency,
                attempts: 5,
                timeout: Duration::from_secs(120),
            })
        }
        _ => None,
    };
    Ok(RunOptions {
        data_dir: common.data_dir.clone(),
        limit: common.limit,
        output_dir: common.output_dir.clone(),
        resume,
        reasoning_tags,
        judge,
        max_new_tokens: None,
    })
}

/// What `--db` records an evaluation as: the model spec and the run's settings.
fn model_spec(args: &EvaluateArgs) -> ModelSpec {
    if let Some(command) = &args.deploy {
        return ModelSpec::Deployed {
            command: command.clone(),
            model: args.model.model.clone(),
        };
    }
    match args.base_url.is_empty() {
        false => ModelSpec::Remote {
            base_urls: args.base_url.clone(),
            name: args.model.model.clone(),
        },
        true => ModelSpec::InProcess {
            reference: args.model.model.clone(),
            device: args.model.device.clone(),
            dtype: args.model.dtype.clone(),
            quantize: args.model.quantize.clone(),
            max_model_len: args.engine.max_model_len,
            min_pixels: args.min_pixels,
            max_pixels: args.max_pixels,
            chat_template: args.model.chat_template.clone(),
        },
    }
}

/// This evaluation as a sweep's `[[models]]` entry: the model (a directory made absolute)
/// or the server, with the engine settings it ran with.
fn model_entry(args: &EvaluateArgs, name: &str) -> ModelEntry {
    let local = |m: &str| {
        let path = std::path::Path::new(m);
        if path.is_dir() {
            std::path::absolute(path).map_or_else(|_| m.to_string(), |p| p.display().to_string())
        } else {
            m.to_string()
        }
    };
    let deployed = args.deploy.is_some();
    let remote = !args.base_url.is_empty() || deployed;
    ModelEntry {
        name: name.to_string(),
        model: if deployed {
            Some(args.model.model.clone())
        } else {
            (!remote).then(|| local(&args.model.model))
        },
        // A sweep entry holds one server; replicas are a command-line matter.
        base_url: args.base_url.first().cloned(),
        deploy: args.deploy.clone(),
        api_key_env: None,
        concurrency: remote.then_some(args.concurrency),
        dtype: (!remote).then(|| args.model.dtype.clone()),
        quantize: args.model.quantize.clone().filter(|_| !remote),
        kv_cache_gb: (!remote).then_some(args.engine.kv_cache_gb),
        max_model_len: args.engine.max_model_len.filter(|_| !remote),
        max_num_seqs: (!remote).then_some(args.engine.max_num_seqs),
        min_pixels: args.min_pixels.filter(|_| !remote),
        max_pixels: args.max_pixels.filter(|_| !remote),
        devices: 1,
    }
}

/// Starts recording in the runs store, when `--db` names one.
fn recorder(
    args: &EvaluateArgs,
    tasks: &[Box<dyn Task>],
    options: &RunOptions,
) -> Result<Option<Recorder>> {
    let Some(url) = &args.db else {
        return Ok(None);
    };
    let store = Store::open(url)?;
    let spec = model_spec(args);
    let identities = task_identities(
        &with_judge(
            with_generation(spec.identity()?, args.max_new_tokens),
            options.judge.as_ref().map(|j| j.model.as_str()),
        ),
        tasks,
        options.data_dir.as_deref(),
        options.limit,
    )?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.model.model.clone());
    let (reference, base_url) = match &spec {
        ModelSpec::Remote { base_urls, name } => (Some(name.clone()), base_urls.first().cloned()),
        ModelSpec::Deployed { model, .. } => (Some(model.clone()), None),
        ModelSpec::InProcess { reference, .. } => (Some(reference.clone()), None),
    };
    let model = ModelRecord {
        name: name.clone(),
        display_name: name.clone(),
        reference,
        base_url,
        // A sweep entry a worker can run again (queued from the dashboard).
        settings: serde_json::to_value(model_entry(args, &name))?,
        params_b: None,
        created_at: 0,
    };
    let config = json!({
        "data_dir": options.data_dir,
        "limit": options.limit,
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
    });
    let claimed = args
        .claimed_runs
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(t, id)| (t.to_string(), RunId(id.to_string())))
                .with_context(|| format!("--claimed-runs: expected task=id, got {c:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let output_dir = options.output_dir.display().to_string();
    Ok(Some(Recorder::start(
        store,
        model,
        tasks,
        &identities,
        &config,
        &output_dir,
        &claimed,
    )?))
}

/// An identity with the generation override, where one is given (so runs without it keep
/// the identities they had).
fn with_generation(mut identity: Value, max_new_tokens: Option<usize>) -> Value {
    if let Some(n) = max_new_tokens {
        identity["generation"] = json!({"max_new_tokens": n});
    }
    identity
}

fn evaluate_command(args: EvaluateArgs) -> Result<()> {
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
    let (backend, identity): (Box<dyn Backend>, _) = match base_urls.is_empty() {
        false => {
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
            let identity = with_generation(identity, args.max_new_tokens);
            (Box::new(backend), identity)
        }
        true => {
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
            let identity = with_generation(
                json!({"model": args.model.model, "backend": "in-process"}),
                args.max_new_tokens,
            );
            let budget = PixelBudget {
                min_pixels: args.min_pixels,
                max_pixels: args.max_pixels,
            };
            (
                Box::new(InProcess::new(engine, window).with_pixel_budget(budget)),
                identity,
            )
        }
    };
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

fn score_command(args: ScoreArgs) -> Result<()> {
    let started = Instant::now();
    let tasks = parse_tasks(&args.common.tasks)?;
    if tasks.len() != 1 {
        bail!("score reads one task's predictions per call; pass one --tasks name");
    }
    let options = run_options(&args.common, false)?;
    let run = rescore(tasks[0].as_ref(), &args.predictions, &options)?;
    let info = RunInfo {
        model_name: args.model.clone(),
        model: args.model,
        backend: json!({"backend": "predictions", "file": args.predictions.display().to_string()}),
        limit: options.limit,
        reasoning_tags: options.reasoning_tags.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        mode: "score",
        gen_kwargs: String::new(),
    };
    report(&[run], &info, &options)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_with("vlm-eval", "warn", || match cli {
        Cli::Evaluate(args) => evaluate_command(*args),
        Cli::Other(sub) => match *sub {
            Subcommands::Score(args) => score_command(args),
            Subcommands::Sweep(args) => sweep_command(args),
            Subcommands::Runs(args) => runs_command(args),
            Subcommands::Leaderboard(args) => leaderboard_command(args),
            Subcommands::Queue(args) => queue_command(args),
            Subcommands::Worker(args) => worker_command(args),
            Subcommands::Sync(args) => sync_command(args),
            Subcommands::Dashboard(args) => dashboard_command(args),
            Subcommands::Tasks(args) => vlm::cli::tasks_command::tasks_command(&args.files),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_evaluate_and_score_rescores() {
        Cli::command().debug_assert();
        let evaluate = Cli::try_parse_from(["vlm-eval", "--tasks", "mme", "--model", "m"]);
        assert!(matches!(evaluate, Ok(Cli::Evaluate(_))));
        let score = [
            "vlm-eval",
            "score",
            "--tasks",
            "mme",
            "--predictions",
            "p.jsonl",
        ];
        assert!(matches!(
            Cli::try_parse_from(score),
            Ok(Cli::Other(ref s)) if matches!(**s, Subcommands::Score(_))
        ));
        let sweep = [
            "vlm-eval",
            "sweep",
            "--config",
            "s.toml",
            "--devices",
            "cpu:0,cpu:1",
        ];
        assert!(matches!(
            Cli::try_parse_from(sweep),
            Ok(Cli::Other(ref s)) if matches!(**s, Subcommands::Sweep(_))
        ));
        // The evaluation's flags belong to no subcommand.
        assert!(Cli::try_parse_from(["vlm-eval", "--tasks", "mme", "score"]).is_err());
    }
}
