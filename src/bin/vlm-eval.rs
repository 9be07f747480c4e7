//! `vlm-eval`: benchmark a vision-language model (MME, MMMU-val) with lmms-eval's prompts,
//! parsers and aggregation, in-process or against any OpenAI-compatible server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::json;
use vlm::cli::eval_progress::progress_bars;
use vlm::cli::eval_report::report;
use vlm::cli::{main_with, EngineArgs, ModelArgs};
use vlm_engine::Engine;
use vlm_eval::tasks::{self, Task};
use vlm_eval::{
    default_tags, evaluate, parse_tags, rescore, Backend, InProcess, OpenAiBackend, OpenAiOptions,
    RunInfo, RunOptions,
};

/// The command line: `vlm-eval [flags]` evaluates; `vlm-eval score [flags]` rescores saved
/// predictions. Evaluating takes no subcommand, and a derived parser would build the
/// evaluation's flags even under `score` (failing on its required `--model`), so the
/// matches are told apart here.
enum Cli {
    Evaluate(Box<EvaluateArgs>),
    Score(ScoreArgs),
}

#[derive(Subcommand, Debug)]
enum ScoreCommand {
    #[command(
        display_name = "vlm-eval score",
        about = "Score a predictions JSONL ({\"doc_id\": ..., \"response\": ...} per line, or an \
                 lmms-eval samples file) without running a model"
    )]
    Score(ScoreArgs),
}

impl CommandFactory for Cli {
    fn command() -> Command {
        let command = Command::new("vlm-eval")
            .version(env!("CARGO_PKG_VERSION"))
            .about(
                "Evaluate a vision-language model on MME and MMMU-val, scored as lmms-eval \
                 scores them",
            )
            // Without a subcommand the flags are an evaluation's; `score` takes only its
            // own, and the evaluation's required ones are not required with it.
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
            .propagate_version(true)
            .disable_help_subcommand(true);
        ScoreCommand::augment_subcommands(EvaluateArgs::augment_args(command))
    }

    fn command_for_update() -> Command {
        Self::command()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand_name().is_some() {
            let ScoreCommand::Score(args) = ScoreCommand::from_arg_matches(matches)?;
            Ok(Self::Score(args))
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

#[derive(Args, Debug)]
struct EvaluateArgs {
    #[command(flatten)]
    common: CommonArgs,
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
    names
        .iter()
        .map(|n| {
            tasks::by_name(n.trim())
                .with_context(|| format!("unknown task `{n}`; known: {}", tasks::NAMES.join(", ")))
        })
        .collect()
}

fn run_options(common: &CommonArgs, resume: bool) -> Result<RunOptions> {
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

fn evaluate_command(args: EvaluateArgs) -> Result<()> {
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
    let cli = Cli::parse();
    main_with("vlm-eval", "warn", || match cli {
        Cli::Evaluate(args) => evaluate_command(*args),
        Cli::Score(args) => score_command(args),
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
        assert!(matches!(Cli::try_parse_from(score), Ok(Cli::Score(_))));
        // The evaluation's flags belong to no subcommand.
        assert!(Cli::try_parse_from(["vlm-eval", "--tasks", "mme", "score"]).is_err());
    }
}
