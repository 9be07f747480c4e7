//! Scoring a task's responses: reasoning blocks and whitespace stripped as lmms-eval strips
//! them, the task's parsers and aggregation run in document order, and one line per sample
//! written to the samples file. Also `vlm-eval score`, which does this for a saved
//! predictions file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::error::RunError;
use super::options::RunOptions;
use super::output_dir::{create_dir, output_error, samples_path};
use super::split::{load_dataset, selected, DatasetInfo};
use crate::dataset::{Dataset, Row};
use crate::journal::{read_predictions, Prediction};
use crate::judge::judge_all;
use crate::python::py_strip;
use crate::reasoning::strip_reasoning_tags;
use crate::tasks::{SampleScore, Task, TaskScores};

/// One task, evaluated.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub name: String,
    pub version: Value,
    pub config: Value,
    pub higher_is_better: Vec<String>,
    pub dataset: DatasetInfo,
    pub original: usize,
    pub effective: usize,
    pub scores: TaskScores,
    pub failures: usize,
    /// Answers taken from an earlier, interrupted run.
    pub resumed: usize,
    pub generation_seconds: f64,
    pub scoring_seconds: f64,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub samples_file: PathBuf,
    /// The judge's model, prompt version and counts, where the task used one.
    pub judge: Option<Value>,
}

/// Scores a predictions file without running a model (`vlm-eval score`).
pub fn rescore(
    task: &dyn Task,
    predictions_file: &Path,
    options: &RunOptions,
) -> Result<TaskRun, RunError> {
    let ds = load_dataset(task, options)?;
    let predictions = read_predictions(predictions_file)?;
    if predictions.is_empty() {
        return Err(RunError::NoPredictions {
            file: predictions_file.to_path_buf(),
        });
    }
    let picked: Vec<usize> = match options.limit {
        Some(_) => selected(task, &ds, options.limit),
        // Every document the file answers: lmms-eval samples files from a --limit run
        // cover a prefix of the split.
        None => predictions
            .keys()
            .copied()
            .filter(|&d| d < ds.rows.len())
            .collect(),
    };
    if let Some(&bad) = predictions.keys().find(|&&d| d >= ds.rows.len()) {
        return Err(RunError::PastTheSplit {
            file: predictions_file.to_path_buf(),
            doc_id: bad,
            rows: ds.rows.len(),
            repo: ds.repo.clone(),
            split: ds.split.clone(),
        });
    }
    create_dir(&options.output_dir)?;
    score(
        task,
        &ds,
        &picked,
        &predictions,
        BTreeMap::new(),
        predictions_file,
        options,
    )
}

/// Scores the `picked` rows and writes their samples file. `inputs` holds the prompt text
/// of rows whose prompt was already built (for generation); the others are built here.
pub(super) fn score(
    task: &dyn Task,
    ds: &Dataset,
    picked: &[usize],
    predictions: &BTreeMap<usize, Prediction>,
    mut inputs: BTreeMap<usize, String>,
    predictions_file: &Path,
    options: &RunOptions,
) -> Result<TaskRun, RunError> {
    let started = Instant::now();
    let mut docs = Vec::with_capacity(picked.len());
    let mut preds = Vec::with_capacity(picked.len());
    for &doc_id in picked {
        let p = predictions
            .get(&doc_id)
            .ok_or_else(|| RunError::MissingPrediction {
                task: task.name().into(),
                doc_id,
                file: predictions_file.to_path_buf(),
            })?;
        docs.push(&ds.rows[doc_id]);
        preds.push(p);
    }
    // lmms-eval filters the raw response (most tasks' filter keeps it), strips reasoning
    // blocks, then `process_results` strips whitespace.
    let filtered: Vec<String> = preds
        .iter()
        .map(|p| {
            let kept = task.filter(&p.response);
            py_strip(&strip_reasoning_tags(&kept, &options.reasoning_tags)).to_string()
        })
        .collect();
    let refs: Vec<&str> = filtered.iter().map(String::as_str).collect();
    // A judge that is only an extra, and not given, is not asked: its prompts go unbuilt.
    let skip_judge = options.judge.is_none() && task.judge_optional();
    let mut prompts = Vec::with_capacity(docs.len());
    if !skip_judge {
        for (doc, response) in docs.iter().zip(&refs) {
            prompts.push(task.judge_prompt(doc, response)?.map(|p| (doc.doc_id, p)));
        }
    }
    let judge = if prompts.iter().any(Option::is_some) {
        match judge_all(
            task.name(),
            &prompts,
            options.judge.as_ref(),
            &options.output_dir,
        ) {
            Ok(judged) => Some(judged),
            // A judge that is only an extra (MMMU's open questions) cannot fail the task.
            Err(error) if task.judge_optional() => {
                tracing::warn!(task = task.name(), "scored without the judge: {error}");
                None
            }
            Err(error) => return Err(error.into()),
        }
    } else {
        None
    };
    let scores = match &judge {
        Some((judged, _)) => task.score_judged(&docs, &refs, judged)?,
        None => task.score(&docs, &refs)?,
    };
    let judge = judge.map(|(_, report)| {
        report.to_json(
            options.judge.as_ref(),
            task.judge_prompt_version().as_deref(),
        )
    });
    let samples_file = samples_path(&options.output_dir, task.name());
    let mut out = String::new();
    for (((doc, p), filtered), s) in docs.iter().zip(&preds).zip(&filtered).zip(&scores.samples) {
        let input = inputs
            .remove(&doc.doc_id)
            .unwrap_or_else(|| prompt_input(task, doc));
        out.push_str(&sample_line(doc, &input, p, filtered, s).to_string());
        out.push('\n');
    }
    std::fs::write(&samples_file, out)
        .map_err(|error| output_error("write", &samples_file, error))?;
    Ok(TaskRun {
        name: task.name().to_string(),
        version: task.version(),
        config: task.config(),
        higher_is_better: task.metric_names().iter().map(|m| m.to_string()).collect(),
        dataset: DatasetInfo::of(ds),
        original: ds.rows.len(),
        effective: picked.len(),
        failures: preds.iter().filter(|p| p.error.is_some()).count(),
        resumed: 0,
        generation_seconds: 0.0,
        scoring_seconds: started.elapsed().as_secs_f64(),
        prompt_tokens: preds.iter().filter_map(|p| p.prompt_tokens).sum(),
        completion_tokens: preds.iter().filter_map(|p| p.completion_tokens).sum(),
        scores,
        samples_file,
        judge,
    })
}

/// The prompt text of a row (`input` in the samples file); empty where the row has no
/// valid prompt (its sample was recorded as failed).
fn prompt_input(task: &dyn Task, doc: &Row) -> String {
    task.prompt(doc).map(|p| p.input).unwrap_or_default()
}

/// One line of the samples file: the task's per-sample fields, then ours.
fn sample_line(doc: &Row, input: &str, p: &Prediction, filtered: &str, s: &SampleScore) -> Value {
    let mut line = s.fields.clone();
    line.insert("doc_id".into(), json!(doc.doc_id));
    line.insert("id".into(), json!(s.id));
    line.insert("input".into(), json!(input));
    line.insert("target".into(), json!(s.target));
    line.insert("response".into(), json!(p.response));
    line.insert("filtered_resps".into(), json!(filtered));
    line.insert("parsed".into(), s.parsed.clone());
    line.insert("score".into(), json!(s.score));
    line.insert(
        "token_counts".into(),
        json!({"input_tokens": p.prompt_tokens, "output_tokens": p.completion_tokens}),
    );
    if let Some(e) = &p.error {
        line.insert("error".into(), json!(e));
    }
    Value::Object(line)
}
