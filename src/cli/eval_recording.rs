//! A `vlm-eval` run recording itself in the runs store (`--db`): one run per task, marked
//! running when it starts, its progress heartbeated every few seconds (from a thread of its
//! own: progress arrives inside the engine's async stream, where nothing may block), then
//! completed with its metrics or failed with the error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value};
use vlm_eval::identity::RunIdentity;
use vlm_eval::tasks::{store_metric_key, Task};
use vlm_eval::{Progress, TaskRun};
use vlm_runs::{ModelRecord, NewRun, RunId, RunResult, TaskRecord};

use super::store::Store;

/// How often progress reaches the store.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The store rows of one `vlm-eval` invocation's tasks.
pub struct Recorder {
    store: Arc<Store>,
    /// Task name, run id, finished.
    runs: Vec<(String, RunId, bool)>,
    /// The latest progress, for the heartbeat thread.
    progress: Arc<Mutex<Progressing>>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

/// How far each task's run is, and which runs changed since the last heartbeat.
#[derive(Default)]
struct Progressing {
    current: Option<RunId>,
    counts: std::collections::BTreeMap<String, (u64, u64)>,
    changed: std::collections::BTreeSet<String>,
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
                primary_metric: task.primary_key(),
                created_at: 0,
            };
            store.call(|s| s.upsert_task(&record))?;
            if let Some((_, id)) = existing.iter().find(|(t, _)| t == task.name()) {
                runs.push((task.name().to_string(), id.clone(), false));
                continue;
            }
            let mut run_config = config.clone();
            run_config["identity"] = identity.value.clone();
            if let Some(text) = task.definition() {
                run_config["task_file"] = Value::String(text.to_string());
            }
            let new = NewRun {
                model: model.name.clone(),
                task: task.name().into(),
                identity_key: identity.key.clone(),
                config: run_config,
                primary_metric: task.primary_key(),
                output_dir: Some(output_dir.to_string()),
            };
            let id = store.call(|s| s.start(&new, &worker, &host))?;
            runs.push((task.name().to_string(), id, false));
        }
        let store = Arc::new(store);
        let progress = Arc::new(Mutex::new(Progressing::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (store, progress, stop) = (store.clone(), progress.clone(), stop.clone());
            let alive: Vec<String> = runs
                .iter()
                .map(|(_, id, _)| id.as_str().to_string())
                .collect();
            std::thread::Builder::new()
                .name("vlm-eval-heartbeat".into())
                .spawn(move || heartbeats(&store, &progress, &stop, &alive))
                .ok()
        };
        Ok(Self {
            store,
            runs,
            progress,
            stop,
            heartbeat,
        })
    }

    fn id_of(&self, task: &str) -> Option<RunId> {
        self.runs
            .iter()
            .find(|(t, _, _)| t == task)
            .map(|(_, id, _)| id.clone())
    }

    /// Follows the evaluation's progress (never blocking: the heartbeat thread writes it).
    pub fn progress(&mut self, event: &Progress<'_>) {
        let mut state = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        match *event {
            Progress::TaskStarted {
                task,
                total,
                already_done,
            } => {
                state.current = self.id_of(task);
                if let Some(id) = state.current.clone() {
                    state
                        .counts
                        .insert(id.as_str().to_string(), (already_done as u64, total as u64));
                }
            }
            Progress::SampleDone { .. } => {
                if let Some(id) = state.current.clone() {
                    if let Some((done, _)) = state.counts.get_mut(id.as_str()) {
                        *done += 1;
                    }
                }
            }
            Progress::TaskFinished { .. } => {}
        }
        if let Some(id) = state.current.clone() {
            state.changed.insert(id.as_str().to_string());
        }
    }

    /// Stops the heartbeat thread (after its last write).
    fn stop_heartbeats(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
    }

    /// Completes each task's run with its metrics.
    pub fn finish(&mut self, runs: &[TaskRun]) -> Result<()> {
        self.stop_heartbeats();
        for run in runs {
            let Some(id) = self.id_of(&run.name) else {
                continue;
            };
            let metrics: Map<String, Value> = run
                .scores
                .metrics
                .iter()
                .map(|m| (store_metric_key(&m.name, &m.filter), Value::from(m.value)))
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
            if let Some(entry) = self.runs.iter_mut().find(|(t, _, _)| *t == run.name) {
                entry.2 = true;
            }
        }
        Ok(())
    }

    /// Fails every task's run that has not completed.
    pub fn fail(&mut self, error: &str) {
        self.stop_heartbeats();
        for (_, id, finished) in &self.runs {
            if !finished {
                if let Err(e) = self.store.call(|s| s.fail(id, error)) {
                    tracing::warn!("cannot record the failure in the runs store: {e:#}");
                }
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

/// Every [`HEARTBEAT`] until stopped (and once more then): the latest progress of runs
/// that moved, and a plain heartbeat for this invocation's other runs, so that a run whose
/// model is still loading is not taken for dead and requeued. A store that cannot be
/// reached costs a warning, never the evaluation.
fn heartbeats(store: &Store, progress: &Mutex<Progressing>, stop: &AtomicBool, alive: &[String]) {
    let tick = Duration::from_millis(50);
    let mut waited = HEARTBEAT;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if waited >= HEARTBEAT || stopping {
            waited = Duration::ZERO;
            let beats: Vec<(String, Option<(u64, u64)>)> = {
                let mut state = progress.lock().unwrap_or_else(|p| p.into_inner());
                let changed = std::mem::take(&mut state.changed);
                alive
                    .iter()
                    .map(|id| {
                        let counts = changed.contains(id).then(|| state.counts.get(id).copied());
                        (id.clone(), counts.flatten())
                    })
                    .collect()
            };
            for (id, counts) in beats {
                // A finished run refuses heartbeats (WrongStatus): nothing to report.
                if let Err(e) = store.call(|s| s.heartbeat(&id, counts)) {
                    if counts.is_some() {
                        tracing::warn!("cannot record progress in the runs store: {e:#}");
                    }
                }
            }
        }
        if stopping {
            return;
        }
        std::thread::sleep(tick);
        waited += tick;
    }
}
