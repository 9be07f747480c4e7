//! Reading finished runs back from output folders, for `vlm-eval sync`: our `results.json`
//! and lmms-eval's (`<model>/<date>_results.json`, the same layout), with the model name as
//! lmms-eval derives it from its `model_args`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::tasks;

/// One task's result in a results file.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedTask {
    pub task: String,
    /// Metric name (without lmms-eval's `,none` filter suffix) to value.
    pub metrics: Map<String, Value>,
    pub primary_metric: String,
    /// Our per-category breakdown, where the file has it.
    pub details: Option<Value>,
}

/// What a results file says was run.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedRun {
    pub file: PathBuf,
    pub model: String,
    /// `vlm-eval` or `lmms-eval`.
    pub producer: &'static str,
    /// When it finished, unix milliseconds, where the file says.
    pub finished_at: Option<i64>,
    pub tasks: Vec<FinishedTask>,
    /// A hash of the file's bytes: the same file synced twice is one run.
    pub content_hash: String,
}

/// Why a results file cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct ReadBackError {
    pub file: PathBuf,
    pub problem: String,
}

/// The results files under `dir` (itself a file, or searched recursively): `results.json`
/// and lmms-eval's `*_results.json`, sorted.
pub fn results_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Symlinked folders are not followed (a link back up would loop forever).
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if name == "results.json" || name.ends_with("_results.json") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The model name lmms-eval's `GeneralConfigTracker` takes from `model_args`.
fn model_from_args(args: &str) -> Option<String> {
    let prefixes = [
        "peft=",
        "delta=",
        "pretrained=",
        "model=",
        "model_version=",
        "model_name=",
        "model_id=",
        "path=",
        "engine=",
    ];
    prefixes.iter().find_map(|p| {
        let (_, rest) = args.split_once(p)?;
        let name = rest.split(',').next().unwrap_or_default();
        (!name.is_empty()).then(|| name.to_string())
    })
}

/// Reads one results file.
pub fn read_results(file: &Path) -> Result<FinishedRun, ReadBackError> {
    let problem = |problem: String| ReadBackError {
        file: file.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(file).map_err(|e| problem(e.to_string()))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| problem(format!("not JSON: {e}")))?;
    let results = value
        .get("results")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            problem("no `results` object: not an lmms-eval or vlm-eval results file".into())
        })?;
    let ours = value.get("vlm").is_some();
    let config = value.get("config").cloned().unwrap_or(Value::Null);
    let model = value
        .get("model_name")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .or_else(|| config["model_args"].as_str().and_then(model_from_args))
        .or_else(|| config["model"].as_str().map(str::to_string))
        .ok_or_else(|| {
            problem("names no model (model_name, config.model_args or config.model)".into())
        })?;
    let finished_at = match &value["date"] {
        // lmms-eval: the start time, unix seconds.
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && (0.0..1e11).contains(s))
            .map(|s| (s * 1000.0) as i64),
        // Ours: %Y%m%d_%H%M%S in UTC.
        Value::String(s) => chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d_%H%M%S")
            .ok()
            .map(|t| t.and_utc().timestamp_millis()),
        _ => None,
    };
    let mut tasks_out = Vec::new();
    for (task, entries) in results {
        let Some(entries) = entries.as_object() else {
            continue;
        };
        // Task names name files (samples_<task>.jsonl): plain names only.
        if !tasks::is_plain_name(task) {
            continue;
        }
        let metrics: Map<String, Value> = entries
            .iter()
            .filter(|(k, v)| {
                k.as_str() != "alias"
                    && !k.contains("_stderr")
                    && !k.trim().is_empty()
                    && v.as_f64().is_some_and(f64::is_finite)
            })
            .map(|(k, v)| (k.strip_suffix(",none").unwrap_or(k).to_string(), v.clone()))
            .collect();
        if metrics.is_empty() {
            continue;
        }
        let primary_metric = tasks::by_name(task)
            .map(|t| t.primary_key())
            .filter(|m| metrics.contains_key(m))
            .or_else(|| metrics.keys().next().cloned())
            .unwrap_or_default();
        let details = value["vlm"]["tasks"][task]["details"].clone();
        tasks_out.push(FinishedTask {
            task: task.clone(),
            metrics,
            primary_metric,
            details: (!details.is_null()).then_some(details),
        });
    }
    if tasks_out.is_empty() {
        return Err(problem("no task in `results` has a numeric metric".into()));
    }
    Ok(FinishedRun {
        file: file.to_path_buf(),
        model,
        producer: if ours { "vlm-eval" } else { "lmms-eval" },
        finished_at,
        tasks: tasks_out,
        content_hash: blake3::hash(&bytes).to_hex().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lmms_eval_layout_and_model_args() {
        assert_eq!(
            model_from_args("pretrained=llava-hf/llava-1.5-7b-hf,device_map=auto").as_deref(),
            Some("llava-hf/llava-1.5-7b-hf")
        );
        assert_eq!(
            model_from_args("model_version=gpt-4o,base_url=http://x").as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(model_from_args("batch_size=1"), None);
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("llava-hf__llava-1.5-7b-hf");
        std::fs::create_dir_all(&nested).unwrap();
        let file = nested.join("20261130_010203_results.json");
        std::fs::write(
            &file,
            serde_json::json!({
                "results": {"mme": {"alias": "mme", "mme_cognition_score,none": 300.5,
                    "mme_cognition_score_stderr,none": "N/A", "mme_perception_score,none": 1500.25,
                    "mme_perception_score_stderr,none": "N/A"}},
                "config": {"model": "llava_hf", "model_args": "pretrained=llava-hf/llava-1.5-7b-hf"},
                "model_name": "",
                "date": 1796000000.5,
            })
            .to_string(),
        )
        .unwrap();
        assert_eq!(results_files(dir.path()), vec![file.clone()]);
        let run = read_results(&file).unwrap();
        assert_eq!(run.model, "llava-hf/llava-1.5-7b-hf");
        assert_eq!(run.producer, "lmms-eval");
        assert_eq!(run.finished_at, Some(1_796_000_000_500));
        assert_eq!(run.tasks.len(), 1);
        assert_eq!(run.tasks[0].primary_metric, "mme_perception_score");
        assert_eq!(run.tasks[0].metrics.len(), 2);
        std::fs::write(&file, "{\"results\": {}}").unwrap();
        assert!(read_results(&file).is_err());
    }

    #[test]
    fn symlink_loops_and_path_like_task_names_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink(dir.path(), run.join("loop")).unwrap();
        std::os::unix::fs::symlink(&run, run.join("self")).unwrap();
        let file = run.join("results.json");
        std::fs::write(
            &file,
            serde_json::json!({"results": {"/../../secret": {"acc,none": 1.0},
                "..": {"acc,none": 1.0}, "pope": {"acc,none": 0.5, "f1,none": "N/A"}},
                "model_name": "m", "date": 1e300})
            .to_string(),
        )
        .unwrap();
        assert_eq!(results_files(dir.path()), vec![file.clone()]);
        let read = read_results(&file).unwrap();
        let tasks: Vec<&str> = read.tasks.iter().map(|t| t.task.as_str()).collect();
        assert_eq!(tasks, ["pope"]);
        assert_eq!(read.tasks[0].metrics.len(), 1);
        assert_eq!(read.finished_at, None);
    }
}
