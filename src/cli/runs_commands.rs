//! `vlm-eval runs` and `vlm-eval leaderboard`: reading the runs store, as a table or JSON.

use anyhow::Result;
use serde_json::Value;
use vlm_runs::{Run, RunFilter, RunStatus};

use super::store::Store;

#[derive(clap::Args, Debug)]
pub struct RunsArgs {
    /// The runs store: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: String,
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// queued, running, completed or failed.
    #[arg(long)]
    pub status: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct LeaderboardArgs {
    /// The runs store: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: String,
    #[arg(long)]
    pub task: String,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn runs_command(args: RunsArgs) -> Result<()> {
    let status = match &args.status {
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            anyhow::anyhow!("--status {s:?}: expected queued, running, completed or failed")
        })?),
        None => None,
    };
    let store = Store::open(&args.db)?;
    let filter = RunFilter {
        task: args.task,
        model: args.model,
        status,
    };
    let runs = store.call(|s| s.runs(&filter))?;
    if args.json {
        let all: Vec<Value> = runs.iter().map(Run::view).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "{:<18} {:<20} {:<10} {:<10} {:>12} {:<30}",
        "id", "model", "task", "status", "primary", "error"
    );
    for run in &runs {
        let value = run.primary_value.map_or("-".into(), |v| format!("{v:.4}"));
        let error = run
            .error
            .as_deref()
            .and_then(|e| e.lines().next())
            .unwrap_or("");
        println!(
            "{:<18} {:<20} {:<10} {:<10} {:>12} {:<30}",
            run.id.as_str(),
            run.model,
            run.task,
            run.status.as_str(),
            value,
            error
        );
    }
    Ok(())
}

pub fn leaderboard_command(args: LeaderboardArgs) -> Result<()> {
    let store = Store::open(&args.db)?;
    let rows = store.call(|s| s.leaderboard(&args.task))?;
    if args.json {
        let all: Vec<Value> = rows.iter().map(|r| r.view()).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "{:>4} {:<24} {:<24} {:>12}",
        "rank", "model", "metric", "value"
    );
    for r in &rows {
        println!(
            "{:>4} {:<24} {:<24} {:>12.4}",
            r.rank, r.model, r.metric, r.value
        );
    }
    Ok(())
}
