//! A run: for each task, load its split, pick the rows (`--limit`), get a response for
//! every row not already answered (`--resume`), then score them all in document order and
//! write the samples file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use crate::backend::{Backend, Job};
use crate::dataset::{Dataset, DatasetError, Origin, Row};
use crate::journal::{read_predictions, Journal, JournalError, Prediction};
use crate::python::py_strip;
use crate::reasoning::strip_reasoning_tags;
use crate::tasks::{Task, TaskError, TaskScores};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    pub limit: Option<usize>,
    pub output_dir: PathBuf,
    pub resume: bool,
    pub reasoning_tags: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Io(String),
    #[error(
        "{task}: no prediction for doc_id {doc_id} in {} (with --limit, MME takes whole \
         image pairs: the file must answer both questions of each image)",
        file.display()
    )]
    MissingPrediction {
        task: String,
        doc_id: usize,
        file: PathBuf,
    },
    #[error("{0}")]
    Resume(String),
}

/// Progress for a bar or a log.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    TaskStarted {
        task: &'a str,
        total: usize,
        already_done: usize,
    },
    SampleDone {
        task: &'a str,
        failed: bool,
    },
    TaskFinished {
        task: &'a str,
    },
}

/// Where a task's rows came from.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    pub repo: String,
    pub split: String,
    pub revision: Option<String>,
    pub source: String,
}

/// One task, evaluated.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub name: &'static str,
    pub version: Value,
    pub config: Value,
    pub higher_is_better: Vec<&'static str>,
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
}

pub fn predictions_path(output_dir: &Path, task: &str) -> PathBuf {
    output_dir.join(format!("predictions_{task}.jsonl"))
}

pub fn samples_path(output_dir: &Path, task: &str) -> PathBuf {
    output_dir.join(format!("samples_{task}.jsonl"))
}

fn dataset_info(ds: &Dataset) -> DatasetInfo {
    DatasetInfo {
        repo: ds.repo.clone(),
        split: ds.split.clone(),
        revision: ds.located.revision.clone(),
        source: match &ds.located.origin {
            Origin::DataDir(p) | Origin::HfCache(p) => p.display().to_string(),
            Origin::Hub => "hub".into(),
        },
    }
}

/// The task's dataset, trying its repository id and then its aliases (the same data
/// published under another id) in the data directory and cache before the hub.
fn load_dataset(task: &dyn Task, options: &RunOptions) -> Result<Dataset, RunError> {
    let (repo, split) = task.dataset();
    Ok(Dataset::load(
        repo,
        task.dataset_aliases(),
        split,
        options.data_dir.as_deref(),
    )?)
}

fn selected(task: &dyn Task, ds: &Dataset, limit: Option<usize>) -> Vec<usize> {
    match limit {
        Some(n) => task.limit(&ds.rows, n),
        None => (0..ds.rows.len()).collect(),
    }
}

/// Records which model and backend an output directory's predictions came from, so a
/// `--resume` never mixes two runs' answers. A fresh run removes every task's earlier
/// predictions and samples, since they no longer belong to the directory's run.
fn check_resume_identity(
    output_dir: &Path,
    identity: &Value,
    resume: bool,
) -> Result<(), RunError> {
    let path = output_dir.join("run.json");
    if resume {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let before: Value = serde_json::from_str(&text).map_err(|e| {
                RunError::Resume(format!(
                    "{} is not valid JSON ({e}); drop --resume to start over",
                    path.display()
                ))
            })?;
            if &before != identity {
                return Err(RunError::Resume(format!(
                    "{} holds a run of {before}, not {identity}; pass another --output-dir or \
                     drop --resume to start over",
                    output_dir.display()
                )));
            }
        }
    }
    create_dir(output_dir)?;
    if !resume {
        for entry in std::fs::read_dir(output_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with("predictions_") || name.starts_with("samples_"))
                && name.ends_with(".jsonl")
            {
                std::fs::remove_file(entry.path()).map_err(|e| {
                    RunError::Io(format!("cannot remove {}: {e}", entry.path().display()))
                })?;
            }
        }
    }
    std::fs::write(&path, format!("{identity:#}\n"))
        .map_err(|e| RunError::Io(format!("cannot write {}: {e}", path.display())))
}

fn create_dir(dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RunError::Io(format!("cannot create {}: {e}", dir.display())))
}

fn build_job(task: &dyn Task, backend: &dyn Backend, doc: &Row) -> Result<Job, String> {
    let prompt = task.prompt(doc).map_err(|e| e.to_string())?;
    backend
        .prepare(Job {
            doc_id: doc.doc_id,
            parts: prompt.parts,
            max_tokens: task.max_new_tokens(),
            prepared: None,
        })
        .map_err(|e| format!("row {}: {e}", doc.doc_id))
}

/// Gets every missing response of every task from `backend`, then scores each task.
/// `identity` (model and backend) guards `--resume` against mixing runs.
pub fn evaluate(
    tasks: &[Box<dyn Task>],
    backend: &dyn Backend,
    options: &RunOptions,
    identity: &Value,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<TaskRun>, RunError> {
    // Every dataset first: a missing one must not surface after hours of generation.
    let datasets = tasks
        .iter()
        .map(|t| load_dataset(t.as_ref(), options))
        .collect::<Result<Vec<_>, _>>()?;
    check_resume_identity(&options.output_dir, identity, options.resume)?;
    let mut runs = Vec::new();
    for (task, ds) in tasks.iter().zip(&datasets) {
        let picked = selected(task.as_ref(), ds, options.limit);
        let journal_path = predictions_path(&options.output_dir, task.name());
        let earlier = if options.resume && journal_path.exists() {
            read_predictions(&journal_path)?
        } else {
            BTreeMap::new()
        };
        let todo: Vec<usize> = picked
            .iter()
            .copied()
            .filter(|d| earlier.get(d).is_none_or(|p| p.error.is_some()))
            .collect();
        let resumed = picked.len() - todo.len();
        progress(Progress::TaskStarted {
            task: task.name(),
            total: picked.len(),
            already_done: resumed,
        });
        let mut journal = Journal::open(&journal_path, options.resume)?;
        let started = Instant::now();
        let mut write_error = None;
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(backend.queue_depth().max(1));
        std::thread::scope(|scope| {
            let rows = &ds.rows;
            let task = task.as_ref();
            let todo = &todo;
            let (fail_tx, fail_rx) = std::sync::mpsc::channel::<Prediction>();
            scope.spawn(move || {
                for &doc_id in todo {
                    match build_job(task, backend, &rows[doc_id]) {
                        Ok(job) => {
                            if tx.blocking_send(job).is_err() {
                                break;
                            }
                        }
                        Err(error) => {
                            let _ = fail_tx.send(Prediction::failed(doc_id, error));
                        }
                    }
                }
            });
            let mut record = |p: Prediction| {
                let failed = p.error.is_some();
                if let Err(e) = journal.record(&p) {
                    write_error.get_or_insert(e);
                }
                progress(Progress::SampleDone {
                    task: task.name(),
                    failed,
                });
            };
            backend.run(rx, &mut record);
            for p in fail_rx.try_iter() {
                record(p);
            }
        });
        if let Some(e) = write_error {
            return Err(e.into());
        }
        let generation_seconds = started.elapsed().as_secs_f64();
        progress(Progress::TaskFinished { task: task.name() });
        let predictions = read_predictions(&journal_path)?;
        let mut run = score(
            task.as_ref(),
            ds,
            &picked,
            &predictions,
            &journal_path,
            options,
        )?;
        run.generation_seconds = generation_seconds;
        run.resumed = resumed;
        runs.push(run);
    }
    Ok(runs)
}

/// Scores a predictions file without running a model (`vlm-eval score`).
pub fn rescore(
    task: &dyn Task,
    predictions_file: &Path,
    options: &RunOptions,
) -> Result<TaskRun, RunError> {
    let ds = load_dataset(task, options)?;
    let (repo, split) = (ds.repo.as_str(), ds.split.as_str());
    let predictions = read_predictions(predictions_file)?;
    if predictions.is_empty() {
        return Err(RunError::Io(format!(
            "{} holds no predictions (one JSON object per line with `doc_id` and `response`)",
            predictions_file.display()
        )));
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
        return Err(RunError::Io(format!(
            "{}: doc_id {bad} is past the {} rows of {repo} {split}",
            predictions_file.display(),
            ds.rows.len()
        )));
    }
    create_dir(&options.output_dir)?;
    score(task, &ds, &picked, &predictions, predictions_file, options)
}

fn score(
    task: &dyn Task,
    ds: &Dataset,
    picked: &[usize],
    predictions: &BTreeMap<usize, Prediction>,
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
    // lmms-eval strips reasoning blocks, then `process_results` strips whitespace.
    let filtered: Vec<String> = preds
        .iter()
        .map(|p| py_strip(&strip_reasoning_tags(&p.response, &options.reasoning_tags)).to_string())
        .collect();
    let refs: Vec<&str> = filtered.iter().map(String::as_str).collect();
    let scores = task.score(&docs, &refs)?;
    let samples_file = samples_path(&options.output_dir, task.name());
    let mut out = String::new();
    for (((doc, p), filtered), s) in docs.iter().zip(&preds).zip(&filtered).zip(&scores.samples) {
        let prompt = task.prompt(doc).map(|p| p.input).unwrap_or_default();
        let mut line = s.fields.clone();
        line.insert("doc_id".into(), json!(doc.doc_id));
        line.insert("id".into(), json!(s.id));
        line.insert("input".into(), json!(prompt));
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
        out.push_str(&Value::Object(line).to_string());
        out.push('\n');
    }
    std::fs::write(&samples_file, out)
        .map_err(|e| RunError::Io(format!("cannot write {}: {e}", samples_file.display())))?;
    Ok(TaskRun {
        name: task.name(),
        version: task.version(),
        config: task.config(),
        higher_is_better: task.metric_names().to_vec(),
        dataset: dataset_info(ds),
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
    })
}
