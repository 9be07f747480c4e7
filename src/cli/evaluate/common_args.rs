//! The flags evaluating and scoring share (which tasks, on what data, written where, judged
//! by what), and what they become: the tasks resolved and the run's options.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use vlm_eval::judge::JudgeOptions;
use vlm_eval::tasks::{self, Task};
use vlm_eval::{default_tags, parse_tags, RunOptions};

// (A doc comment here would become the command's about text.)
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Comma-separated tasks (`vlm-eval tasks` lists them: mme, mmmu_val, pope, ...) or task
    /// files (paths ending in .toml).
    #[arg(long, value_delimiter = ',', required = true)]
    pub(super) tasks: Vec<String>,
    /// Directory holding dataset snapshots as `DIR/<repo id>/` (e.g. DIR/lmms-lab/MME/data/
    /// test-00000-of-00004.parquet); the Hugging Face cache and hub are tried after it.
    #[arg(long, env = "VLM_EVAL_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// Only the first N rows of each task (MME: widened to whole image pairs).
    #[arg(long)]
    pub(super) limit: Option<usize>,
    /// Where results.json, samples_<task>.jsonl and predictions_<task>.jsonl go.
    #[arg(long, default_value = "vlm-eval-out")]
    pub(super) output_dir: PathBuf,
    /// Reasoning blocks removed before scoring: `none`, or JSON pairs
    /// (default lmms-eval's: [["<think>","</think>"],["<analysis>","</analysis>"]]).
    #[arg(long)]
    pub(super) reasoning_tags: Option<String>,
    /// An OpenAI-compatible server with the judge model, for tasks that need one (MathVista's
    /// answer extraction when its rules fail), e.g. http://judge:8000/v1.
    #[arg(long, requires = "judge_model")]
    pub(super) judge_url: Option<String>,
    /// The judge model's name at --judge-url.
    #[arg(long, requires = "judge_url")]
    pub(super) judge_model: Option<String>,
    /// The environment variable holding the judge's API key.
    #[arg(long)]
    pub(super) judge_api_key_env: Option<String>,
    /// Judge requests in flight.
    #[arg(long, default_value_t = 4)]
    pub(super) judge_concurrency: usize,
}

pub(super) fn parse_tasks(names: &[String]) -> Result<Vec<Box<dyn Task>>> {
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

pub(super) fn run_options(common: &CommonArgs, resume: bool) -> Result<RunOptions> {
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
