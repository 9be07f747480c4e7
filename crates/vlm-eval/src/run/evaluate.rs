//! Generation: a producer thread builds each missing row's prompt once and has the backend
//! prepare it, the backend answers the jobs, and every answer is journaled as it arrives;
//! then the task is scored.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::error::RunError;
use super::options::RunOptions;
use super::output_dir::{check_resume_identity, predictions_path, set_aside_changed_task};
use super::score::{score, TaskRun};
use super::split::{load_dataset, selected};
use crate::backend::{Backend, Job, PrepareError};
use crate::dataset::Row;
use crate::journal::{read_predictions, Journal, Prediction};
use crate::tasks::{Task, TaskError};

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

/// Why a row never became a job; recorded as its sample's failure.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Prompt(#[from] TaskError),
    #[error("row {doc_id}: {error}")]
    Prepare { doc_id: usize, error: PrepareError },
}

/// Builds the row's prompt (once): its parts become the job, and its text (`input` in the
/// samples file) is returned alongside, empty where the prompt cannot be built.
fn build_job(
    task: &dyn Task,
    backend: &dyn Backend,
    doc: &Row,
    max_new_tokens: Option<usize>,
) -> (String, Result<Job, JobError>) {
    let prompt = match task.prompt(doc) {
        Ok(prompt) => prompt,
        Err(e) => return (String::new(), Err(e.into())),
    };
    let job = backend
        .prepare(Job {
            doc_id: doc.doc_id,
            parts: prompt.parts,
            max_tokens: max_new_tokens.unwrap_or_else(|| task.max_new_tokens()),
            stop: task.stop().to_vec(),
            temperature: task.temperature(),
            prepared: None,
        })
        .map_err(|error| JobError::Prepare {
            doc_id: doc.doc_id,
            error,
        });
    (prompt.input, job)
}

/// Answers the `todo` rows: a producer thread builds each row's prompt and has the backend
/// prepare the job, while this thread runs the backend; every answer (or failure) goes to
/// `record`. Returns the rows' prompt texts, for the samples file.
fn generate(
    task: &dyn Task,
    backend: &dyn Backend,
    rows: &[Row],
    todo: &[usize],
    max_new_tokens: Option<usize>,
    record: &mut dyn FnMut(Prediction),
) -> BTreeMap<usize, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Job>(backend.queue_depth().max(1));
    std::thread::scope(|scope| {
        let (fail_tx, fail_rx) = std::sync::mpsc::channel::<Prediction>();
        let producer = scope.spawn(move || {
            let mut inputs = BTreeMap::new();
            for &doc_id in todo {
                let (input, job) = build_job(task, backend, &rows[doc_id], max_new_tokens);
                inputs.insert(doc_id, input);
                match job {
                    Ok(job) => {
                        if tx.blocking_send(job).is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        let _ = fail_tx.send(Prediction::failed(doc_id, error.to_string()));
                    }
                }
            }
            inputs
        });
        backend.run(rx, record);
        for p in fail_rx.try_iter() {
            record(p);
        }
        producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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
    // Every dataset first: a missing one, or one its task does not fit, must not surface
    // after hours of generation.
    let datasets = tasks
        .iter()
        .map(|t| load_dataset(t.as_ref(), options))
        .collect::<Result<Vec<_>, _>>()?;
    check_resume_identity(&options.output_dir, identity, options.resume)?;
    let mut runs = Vec::new();
    for (task, ds) in tasks.iter().zip(&datasets) {
        let picked = selected(task.as_ref(), ds, options.limit);
        let journal_path = predictions_path(&options.output_dir, task.name());
        if let Some(aside) =
            set_aside_changed_task(&options.output_dir, task.name(), task.definition())?
        {
            tracing::warn!(
                task = task.name(),
                "the task file changed since the answers in this folder were made; they are \
                 kept in {} and not reused",
                aside.display()
            );
        }
        let earlier = if options.resume && journal_path.exists() {
            read_predictions(&journal_path)?
        } else {
            BTreeMap::new()
        };
        let unknown = earlier.range(ds.rows.len()..).count();
        if unknown > 0 {
            tracing::warn!(
                task = task.name(),
                journal = %journal_path.display(),
                "{unknown} journal line(s) name doc_ids past the {} rows of the split; ignored",
                ds.rows.len()
            );
        }
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
        let inputs = generate(
            task.as_ref(),
            backend,
            &ds.rows,
            &todo,
            options.max_new_tokens,
            &mut record,
        );
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
            inputs,
            &journal_path,
            options,
        )?;
        run.generation_seconds = generation_seconds;
        run.resumed = resumed;
        runs.push(run);
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::prompt::{Prompt, PromptPart};
    use crate::tasks::TaskScores;

    /// Counts its prompts; row 2 has none.
    #[derive(Default)]
    struct CountingTask {
        prompts: AtomicUsize,
    }

    impl Task for CountingTask {
        fn name(&self) -> &str {
            "counting"
        }
        fn dataset(&self) -> crate::dataset::DatasetSpec {
            crate::dataset::DatasetSpec::new("none/none", "test")
        }
        fn max_new_tokens(&self) -> usize {
            4
        }
        fn metric_names(&self) -> Vec<&str> {
            Vec::new()
        }
        fn version(&self) -> Value {
            json!(0)
        }
        fn config(&self) -> Value {
            json!({})
        }
        fn prompt(&self, doc: &Row) -> Result<Prompt, TaskError> {
            self.prompts.fetch_add(1, Ordering::Relaxed);
            if doc.doc_id == 2 {
                return Err(TaskError::Row {
                    doc_id: 2,
                    problem: "no question".into(),
                });
            }
            let input = format!("question {}", doc.doc_id);
            Ok(Prompt {
                parts: vec![PromptPart::Text(input.clone())],
                input,
            })
        }
        fn score(&self, _: &[&Row], _: &[&str]) -> Result<TaskScores, TaskError> {
            unreachable!("generation only")
        }
    }

    /// Answers every job with its prompt text.
    struct EchoBackend;

    impl Backend for EchoBackend {
        fn describe(&self) -> Value {
            json!({})
        }
        fn prepare(&self, job: Job) -> Result<Job, PrepareError> {
            Ok(job)
        }
        fn queue_depth(&self) -> usize {
            1
        }
        fn run(
            &self,
            mut jobs: tokio::sync::mpsc::Receiver<Job>,
            done: &mut dyn FnMut(Prediction),
        ) {
            while let Some(job) = jobs.blocking_recv() {
                let response = match &job.parts[..] {
                    [PromptPart::Text(t)] => t.clone(),
                    other => panic!("unexpected parts {other:?}"),
                };
                done(Prediction {
                    doc_id: job.doc_id,
                    response,
                    error: None,
                    prompt_tokens: None,
                    completion_tokens: None,
                    finish_reason: None,
                });
            }
        }
    }

    #[test]
    fn each_prompt_is_built_once_and_its_text_kept() {
        let task = CountingTask::default();
        let rows: Vec<Row> = (0..5)
            .map(|doc_id| Row {
                doc_id,
                columns: Vec::new(),
            })
            .collect();
        let mut answers = BTreeMap::new();
        let inputs = generate(&task, &EchoBackend, &rows, &[1, 2, 4], None, &mut |p| {
            answers.insert(p.doc_id, p);
        });
        assert_eq!(task.prompts.load(Ordering::Relaxed), 3);
        assert_eq!(
            inputs,
            BTreeMap::from([
                (1, "question 1".to_string()),
                (2, String::new()),
                (4, "question 4".to_string()),
            ])
        );
        assert_eq!(answers[&1].response, "question 1");
        assert_eq!(answers[&1].error, None);
        assert_eq!(answers[&4].response, "question 4");
        assert_eq!(answers[&2].error.as_deref(), Some("row 2: no question"));
        assert_eq!(answers.len(), 3);
    }
}
