//! `results.json` in lmms-eval's layout (so tools that read lmms-eval output read ours), our
//! extras under `vlm`, and the stdout table laid out as lmms-eval's `make_table`.

use serde_json::{json, Map, Value};

use crate::run::TaskRun;

/// Run-wide facts for `config` and the `vlm` extras.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub model: String,
    pub backend: Value,
    pub limit: Option<usize>,
    pub reasoning_tags: Vec<(String, String)>,
    pub total_seconds: f64,
    /// `evaluate` or `score` (a rescoring of saved predictions).
    pub mode: &'static str,
}

fn metric_entries(run: &TaskRun) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("alias".into(), json!(run.name));
    for metric in &run.scores.metrics {
        let n = metric.name;
        m.insert(format!("{n},none"), json!(metric.value));
        m.insert(format!("{n}_stderr,none"), json!("N/A"));
        m.insert(
            format!("{n}_stderr_clt,none"),
            metric.stderr_clt.map_or(json!("N/A"), |v| json!(v)),
        );
        m.insert(format!("{n}_stderr_clustered,none"), json!("N/A"));
    }
    m
}

pub fn results_json(runs: &[TaskRun], info: &RunInfo) -> Value {
    let mut results = Map::new();
    let mut group_subtasks = Map::new();
    let mut configs = Map::new();
    let mut versions = Map::new();
    let mut n_shot = Map::new();
    let mut higher = Map::new();
    let mut n_samples = Map::new();
    let mut extras = Map::new();
    for run in runs {
        results.insert(run.name.into(), Value::Object(metric_entries(run)));
        group_subtasks.insert(run.name.into(), json!([]));
        configs.insert(run.name.into(), run.config.clone());
        versions.insert(run.name.into(), run.version.clone());
        n_shot.insert(run.name.into(), json!(0));
        higher.insert(
            run.name.into(),
            Value::Object(
                run.higher_is_better
                    .iter()
                    .map(|m| (m.to_string(), json!(true)))
                    .collect(),
            ),
        );
        n_samples.insert(
            run.name.into(),
            json!({"original": run.original, "effective": run.effective}),
        );
        let per_sample = if run.effective > 0 && run.generation_seconds > 0.0 {
            json!(run.effective.saturating_sub(run.resumed) as f64 / run.generation_seconds)
        } else {
            Value::Null
        };
        extras.insert(
            run.name.into(),
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
            "gen_kwargs": "",
            "random_seed": 0,
            "reasoning_tags": tags,
        },
        "date": chrono::Utc::now().format("%Y%m%d_%H%M%S").to_string(),
        "model_name": info.model,
        "total_evaluation_time_seconds": format!("{:.3}", info.total_seconds),
        "vlm": {
            "version": env!("CARGO_PKG_VERSION"),
            "mode": info.mode,
            "tasks": extras,
        },
    })
}

/// lmms-eval's results table: one row per task metric, metrics sorted by name, `%.4f`
/// values, the CLT column only when some metric has one.
pub fn table(runs: &[TaskRun]) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut any_clt = false;
    for run in runs {
        let mut metrics = run.scores.metrics.clone();
        metrics.sort_by_key(|m| m.name);
        for (i, m) in metrics.iter().enumerate() {
            any_clt |= m.stderr_clt.is_some();
            rows.push(vec![
                if i == 0 {
                    run.name.to_string()
                } else {
                    String::new()
                },
                "none".into(),
                "0".into(),
                m.name.into(),
                "↑".into(),
                format!("{:.4}", m.value),
                "±".into(),
                "N/A".into(),
                m.stderr_clt.map_or("N/A".into(), |v| format!("{v:.4}")),
            ]);
        }
    }
    let mut headers = vec![
        "Tasks", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr",
    ];
    let mut right = vec![false, false, true, false, false, true, false, true];
    if any_clt {
        headers.push("Stderr_CLT");
        right.push(true);
    } else {
        rows.iter_mut().for_each(|r| {
            r.pop();
        });
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([headers[c].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: Vec<String>| format!("|{}|\n", cells.join("|"));
    let mut out = line(
        headers
            .iter()
            .zip(&widths)
            .map(|(h, &w)| format!("{h:^w$}"))
            .collect(),
    );
    out += &line(
        widths
            .iter()
            .zip(&right)
            .map(|(&w, &r)| {
                if r {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(w)
                }
            })
            .collect(),
    );
    for row in &rows {
        out += &line(
            row.iter()
                .zip(widths.iter().zip(&right))
                .map(|(cell, (&w, &r))| {
                    if r {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect(),
        );
    }
    out
}

/// Each task's breakdown (what lmms-eval logs below its table) and failure warnings.
pub fn details(runs: &[TaskRun], mode: &str) -> String {
    let mut out = String::new();
    for run in runs {
        out += &run.scores.summary;
        if run.failures > 0 {
            let next = if mode == "score" {
                "they are marked `error` in the predictions file"
            } else {
                "vlm-eval --resume with the same flags retries them"
            };
            out += &format!(
                "WARNING {}: {} of {} samples got no response and were scored as empty answers \
                 (see `error` in {}); {next}\n",
                run.name,
                run.failures,
                run.effective,
                run.samples_file.display()
            );
        }
    }
    out
}
