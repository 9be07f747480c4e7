//! `results.json` in lmms-eval's layout (so tools that read lmms-eval output read ours), with
//! our extras under `vlm`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::run::TaskRun;

/// `results.json` could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {error}", path.display())]
pub struct ResultsWriteError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Run-wide facts for `config` and the `vlm` extras.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub model: String,
    /// `model_name`: the name the run goes by (`--name`, else the model).
    pub model_name: String,
    pub backend: Value,
    pub limit: Option<usize>,
    pub reasoning_tags: Vec<(String, String)>,
    pub total_seconds: f64,
    /// `evaluate` or `score` (a rescoring of saved predictions).
    pub mode: &'static str,
    /// lmms-eval's `--gen_kwargs` string (`max_new_tokens=N` when overridden, else empty).
    pub gen_kwargs: String,
}

fn metric_entries(run: &TaskRun) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("alias".into(), json!(run.name));
    let or_na = |v: Option<f64>| v.map_or(json!("N/A"), |v| json!(v));
    for metric in &run.scores.metrics {
        let (n, f) = (&metric.name, &metric.filter);
        m.insert(format!("{n},{f}"), json!(metric.value));
        m.insert(format!("{n}_stderr,{f}"), or_na(metric.stderr));
        m.insert(format!("{n}_stderr_clt,{f}"), or_na(metric.stderr_clt));
        m.insert(format!("{n}_stderr_clustered,{f}"), json!("N/A"));
    }
    m
}

fn results_json(runs: &[TaskRun], info: &RunInfo) -> Value {
    let mut results = Map::new();
    let mut group_subtasks = Map::new();
    let mut configs = Map::new();
    let mut versions = Map::new();
    let mut n_shot = Map::new();
    let mut higher = Map::new();
    let mut n_samples = Map::new();
    let mut extras = Map::new();
    for run in runs {
        results.insert(run.name.clone(), Value::Object(metric_entries(run)));
        group_subtasks.insert(run.name.clone(), json!([]));
        configs.insert(run.name.clone(), run.config.clone());
        versions.insert(run.name.clone(), run.version.clone());
        n_shot.insert(run.name.clone(), json!(0));
        higher.insert(
            run.name.clone(),
            Value::Object(
                run.higher_is_better
                    .iter()
                    .map(|m| (m.clone(), json!(true)))
                    .collect(),
            ),
        );
        n_samples.insert(
            run.name.clone(),
            json!({"original": run.original, "effective": run.effective}),
        );
        let per_sample = if run.effective > 0 && run.generation_seconds > 0.0 {
            json!(run.effective.saturating_sub(run.resumed) as f64 / run.generation_seconds)
        } else {
            Value::Null
        };
        extras.insert(
            run.name.clone(),
            json!({
                "dataset": {"repo": run.dataset.repo, "split": run.dataset.split,
                            "revision": run.dataset.revision, "source": run.dataset.source},
                "samples_file": run.samples_file.display().to_string(),
                "failures": run.failures,
                "resumed_samples": run.resumed,
                "seconds": {"generation": run.generation_seconds, "scoring": run.scoring_seconds},
                "samples_per_second": per_sample,
                "tokens": {"prompt": run.prompt_tokens, "completion": run.completion_tokens},
                "details": run.scores.details,
                "judge": run.judge,
            }),
        );
    }
    let tags: Vec<[&str; 2]> = info
        .reasoning_tags
        .iter()
        .map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    json!({
        "results": results,
        "group_subtasks": group_subtasks,
        "configs": configs,
        "versions": versions,
        "n-shot": n_shot,
        "higher_is_better": higher,
        "n-samples": n_samples,
        "config": {
            "model": info.model,
            "model_backend": info.backend,
            "limit": info.limit,
            "gen_kwargs": info.gen_kwargs,
            "random_seed": 0,
            "reasoning_tags": tags,
        },
        "date": chrono::Utc::now().format("%Y%m%d_%H%M%S").to_string(),
        "model_name": info.model_name,
        "total_evaluation_time_seconds": format!("{:.3}", info.total_seconds),
        "vlm": {
            "version": env!("CARGO_PKG_VERSION"),
            "mode": info.mode,
            "tasks": extras,
        },
    })
}

/// Writes `results.json` into `output_dir` (pretty-printed, one trailing newline) and
/// returns its path.
pub fn write_results(
    runs: &[TaskRun],
    info: &RunInfo,
    output_dir: &Path,
) -> Result<PathBuf, ResultsWriteError> {
    let results = results_json(runs, info);
    let path = output_dir.join("results.json");
    match std::fs::write(&path, format!("{results:#}\n")) {
        Ok(()) => Ok(path),
        Err(error) => Err(ResultsWriteError { path, error }),
    }
}
