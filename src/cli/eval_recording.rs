//! A `vlm-eval` run recording itself in the runs store (`--db`): one run per task, marked
//! running when it starts, its progress heartbeated every few seconds, then completed with
//! its metrics or failed with the error.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Map, Value};
use vlm_eval::identity::RunIdentity;
use vlm_eval::tasks::Task;
use vlm_eval::{Progress, TaskRun};
use vlm_runs::{ModelRecord, NewRun, RunId, RunResult, TaskRecord};

use super::store::Store;

/// How often progress reaches the store.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The store rows of one `vlm-eval` invocation's tasks.
pub struct Recorder {
    store: Store,
    /// Task name, run id, finished.
    runs: Vec<(String, RunId, bool)>,
    last_beat: Instant,
    done: u64,
    total: u64,
}

/// Who is running: `host:pid`.
pub fn worker_name() -> (String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let worker = format!("{host}:{}", std::process::id());
    (host, worker)
}

impl Recorder {
    /// Records the model and tasks, and one running run per task. `existing` are run ids a
    /// worker already claimed for these tasks (their rows are reused, not duplicated).
    pub fn start(
        store: Store,
        model: ModelRecord,
        tasks: &[Box<dyn Task>],
        identities: &[RunIdentity],
        config: &Value,
        output_dir: &str,
        existing: &[(String, RunId)],
    ) -> Result<Self> {
        let (host, worker) = worker_name();
        store.call(|s| s.upsert_model(&model))?;
        let mut runs = Vec::new();
        for (task, identity) in tasks.iter().zip(identities) {
            let record = TaskRecord {
                name: task.name().into(),
                display_name: task.name().into(),
                primary_metric: task.primary_metric().into(),
                created_at: 0,
            };
            store.call(|s| s.upsert_task(&record))?;
            if let Some((_, id)) = existing.iter().find(|(t, _)| t == task.name()) {
                runs.push((task.name().to_string(), id.clone(), false));
                continue;
            }
            let mut run_config = config.clone();
            run_config["identity"] = identity.value.clone();
            let new = NewRun {
                model: model.name.clone(),
                task: task.name().into(),
                identity_key: identity.key.clone(),
                config: run_config,
                primary_metric: task.primary_metric().into(),
                output_dir: Some(output_dir.to_string()),
            };
            let id = store.call(|s| s.start(&new, &worker, &host))?;
            runs.push((task.name().to_string(), id, false));
        }
        Ok(Self {
            store,
            runs,
            last_beat: Instant::now() - HEARTBEAT,
            done: 0,
            total: 0,
        })
    }

    fn id_of(&self, task: &str) -> Option<RunId> {
        self.runs
            .iter()
            .find(|(t, _, _)| t == task)
            .map(|(_, id, _)| id.clone())
    }

    /// Follows the evaluation's progress; a store that cannot be reached costs a warning,
    /// never the evaluation.
    pub fn progress(&mut self, event: &Progress<'_>) {
        let task = match *event {
            Progress::TaskStarted {
                task,
                total,
                already_done,
            } => {
                self.done = already_done as u64;
                self.total = total as u64;
                self.last_beat = Instant::now() - HEARTBEAT;
                task
            }
            Progress::SampleDone { task, .. } => {
                self.done += 1;
                task
            }
            Progress::TaskFinished { task } => {
                self.last_beat = Instant::now() - HEARTBEAT;
                task
            }
        };
        if self.last_beat.elapsed() < HEARTBEAT {
            return;
        }
        self.last_beat = Instant::now();
        if let Some(id) = self.id_of(task) {
            let progress = Some((self.done, self.total));
            if let Err(e) = self.store.call(|s| s.heartbeat(&id, progress)) {
                tracing::warn!("cannot record progress in the runs store: {e:#}");
            }
        }
    }

    /// Completes each task's run with its metrics.
    pub fn finish(&mut self, runs: &[TaskRun]) -> Result<()> {
        for run in runs {
            let Some(id) = self.id_of(run.name) else {
                continue;
            };
            let metrics: Map<String, Value> = run
                .scores
                .metrics
                .iter()
                .map(|m| (m.name.to_string(), Value::from(m.value)))
                .collect();
            let answered = run.effective.saturating_sub(run.resumed);
            let result = RunResult {
                metrics,
                details: Some(run.scores.details.clone()),
                duration_s: run.generation_seconds + run.scoring_seconds,
                samples_per_s: if run.generation_seconds > 0.0 {
                    answered as f64 / run.generation_seconds
                } else {
                    0.0
                },
                output_dir: None,
                finished_at: None,
            };
            self.store.call(|s| s.complete(&id, &result))?;
            if let Some(entry) = self.runs.iter_mut().find(|(t, _, _)| t == run.name) {
                entry.2 = true;
            }
        }
        Ok(())
    }

    /// Fails every task's run that has not completed.
    pub fn fail(&self, error: &str) {
        for (_, id, finished) in &self.runs {
            if !finished {
                if let Err(e) = self.store.call(|s| s.fail(id, error)) {
                    tracing::warn!("cannot record the failure in the runs store: {e:#}");
                }
            }
        }
    }
}
