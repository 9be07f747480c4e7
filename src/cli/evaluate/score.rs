//! `vlm-eval score`: one task's saved predictions scored and reported without a model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use vlm_eval::{rescore, RunInfo};

use super::common_args::{parse_tasks, run_options, CommonArgs};
use crate::cli::eval_report::report;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The predictions to score (one task per file).
    #[arg(long)]
    predictions: PathBuf,
    /// Recorded as `config.model` in results.json.
    #[arg(long, default_value = "predictions")]
    model: String,
}

pub fn score_command(args: ScoreArgs) -> Result<()> {
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
