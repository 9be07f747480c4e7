//! `vlm-eval sweep`: many models over the same tasks on a pool of devices. Each model is one
//! child `vlm-eval` that loads its weights once and runs its tasks, pinned to its share of
//! the pool and recording into the runs store; a rerun reuses every finished run whose
//! identity matches and resumes partial ones from their journals.

mod summary;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use vlm_eval::identity::RunIdentity;
use vlm_eval::log_tail;
use vlm_eval::sweep::{Device, ModelEntry, Overrides, Sweep, SweepConfig};
use vlm_eval::tasks;
use vlm_runs::{RunFilter, RunStatus};

use super::eval_child::{spawn, stop, ChildJob, Running};
use super::store::Store;
pub use summary::{Outcome, Summary};
use vlm_eval::identity::task_identities;

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// The sweep: tasks, data, devices and [[models]] (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The runs store (default: sqlite://<output dir>/runs.db).
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: Option<String>,
    /// Overrides the config's output_dir.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Overrides the config's devices: "cuda:0,cuda:1" or "cpu:0-7,cpu:8-15".
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<String>>,
    /// Recompute every run, even those the store holds as finished.
    #[arg(long)]
    pub no_reuse: bool,
}

/// How long a stopped child gets to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A model's plan: the identity of each task's run, and which tasks still need running.
struct Plan {
    entry: ModelEntry,
    todo: Vec<String>,
}

pub fn identities(sweep: &Sweep, entry: &ModelEntry) -> Result<Vec<RunIdentity>> {
    let cuda = matches!(sweep.pool.first(), Some(Device::Cuda(_)));
    // The judge is part of the identities of the tasks that use one, as the child records it.
    let model = vlm_eval::identity::with_judge(
        entry.spec(cuda).identity()?,
        sweep.judge.as_ref().map(|j| j.model.as_str()),
    );
    let tasks = sweep
        .tasks
        .iter()
        .map(|t| tasks::resolve(t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(task_identities(
        &model,
        &tasks,
        sweep.data_dir.as_deref(),
        sweep.limit,
    )?)
}

/// Set by SIGINT / SIGTERM.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
        });
        set.store(true, Ordering::SeqCst);
    });
    Ok(flag)
}

pub fn sweep_command(args: SweepArgs) -> Result<()> {
    let overrides = Overrides {
        output_dir: args.output_dir.clone(),
        devices: args.devices.clone(),
        for_queue: false,
    };
    let sweep = SweepConfig::read(&args.config)?.check(&args.config, &overrides)?;
    let store = Store::open_or_default(args.db.as_deref(), &sweep.output_dir)?;
    let db = match &args.db {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}",
            sweep.output_dir.canonicalize()?.join("runs.db").display()
        ),
    };
    let mut summary = Summary::new(&sweep);
    let mut plans = Vec::new();
    for entry in &sweep.models {
        abandon_dead_runs(&store, &entry.name);
        let identities = match identities(&sweep, entry) {
            Ok(ids) => ids,
            Err(e) => {
                let error = format!("{e:#}");
                eprintln!("vlm-eval sweep: {}: {error}", entry.name);
                record_failure(&store, entry, &sweep.tasks, &error);
                summary.fail_model(&entry.name, &error);
                continue;
            }
        };
        let mut todo = Vec::new();
        for (task, identity) in sweep.tasks.iter().zip(&identities) {
            let earlier = if args.no_reuse {
                None
            } else {
                store.call(|s| s.find_completed(&identity.key))?
            };
            match earlier {
                Some(run) => summary.set(&entry.name, task, Outcome::reused(&run)),
                None => todo.push(task.clone()),
            }
        }
        if !todo.is_empty() {
            plans.push(Plan {
                entry: entry.clone(),
                todo,
            });
        }
    }
    let stopping = stop_flag()?;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>16} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut free: Vec<Device> = sweep.pool.clone();
    let mut pending: Vec<Plan> = plans;
    let mut running: Vec<(Running, ProgressBar)> = Vec::new();
    while !pending.is_empty() || !running.is_empty() {
        if stopping.load(Ordering::SeqCst) {
            for (mut r, bar) in running.drain(..) {
                bar.finish_with_message("stopped");
                stop(&mut r, STOP_GRACE);
                let error = "stopped: the sweep was interrupted (Ctrl-C / SIGTERM)";
                fail_running(&store, &r.job.entry.name, error);
                for task in &r.job.tasks {
                    summary.set(&r.job.entry.name, task, Outcome::Failed(error.into()));
                }
            }
            eprintln!("{}", summary.table());
            bail!("the sweep was interrupted; run it again to resume");
        }
        // Start every pending model that fits in the free devices, in order.
        let mut i = 0;
        while i < pending.len() {
            let need = pending[i].entry.devices;
            if need > free.len() {
                i += 1;
                continue;
            }
            let plan = pending.remove(i);
            let devices: Vec<Device> = free.drain(..need).collect();
            let job = ChildJob {
                entry: plan.entry.clone(),
                tasks: plan.todo.clone(),
                data_dir: sweep.data_dir.clone(),
                limit: sweep.limit,
                output_dir: sweep.output_dir.join(&plan.entry.name),
                db: db.clone(),
                resume: !args.no_reuse,
                claimed: Vec::new(),
                judge: sweep.judge.clone(),
            };
            match spawn(job, devices.clone()) {
                Ok(r) => {
                    let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
                    bar.set_prefix(plan.entry.name.clone());
                    bar.set_message(format!(
                        "starting on {}",
                        devices
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("+")
                    ));
                    running.push((r, bar));
                }
                Err(e) => {
                    free.extend(devices);
                    let error = format!("{e:#}");
                    record_failure(&store, &plan.entry, &plan.todo, &error);
                    summary.fail_model(&plan.entry.name, &error);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut still = Vec::new();
        for (mut r, bar) in running.drain(..) {
            match r.child.try_wait() {
                Ok(None) => {
                    bar.set_message(progress_line(&store, &r.job.entry.name));
                    bar.tick();
                    still.push((r, bar));
                }
                Ok(Some(status)) => {
                    free.extend(r.devices.clone());
                    let seconds = r.started.elapsed().as_secs_f64();
                    if !status.success() {
                        let error = format!(
                            "vlm-eval exited with {status}; its log ({}) ends:\n{}",
                            r.log.display(),
                            log_tail(&r.log, 20)
                        );
                        fail_running(&store, &r.job.entry.name, &error);
                    }
                    let outcomes = task_outcomes(&store, &r, seconds);
                    bar.finish_with_message(format!(
                        "{} in {seconds:.0} s",
                        if status.success() { "done" } else { "failed" }
                    ));
                    for (task, outcome) in outcomes {
                        summary.set(&r.job.entry.name, &task, outcome);
                    }
                }
                Err(e) => {
                    bar.finish_with_message(format!("lost: {e}"));
                    free.extend(r.devices.clone());
                }
            }
        }
        running = still;
    }
    println!("{}", summary.table());
    if let Some(why) = summary.failure() {
        bail!("{why}");
    }
    Ok(())
}

/// "task 12/40" of the model's running run, from the store.
fn progress_line(store: &Store, model: &str) -> String {
    let filter = RunFilter {
        model: Some(model.into()),
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    match store.call(|s| s.runs(&filter)) {
        Ok(runs) => runs
            .iter()
            .map(|r| match (r.progress_done, r.progress_total) {
                (Some(d), Some(t)) => format!("{} {d}/{t}", r.task),
                _ => format!("{} loading", r.task),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => String::new(),
    }
}

/// Each task's latest run for a finished child.
fn task_outcomes(store: &Store, r: &Running, seconds: f64) -> Vec<(String, Outcome)> {
    r.job
        .tasks
        .iter()
        .map(|task| {
            let filter = RunFilter {
                model: Some(r.job.entry.name.clone()),
                // Runs are recorded under the task's name, a task file's too.
                task: Some(tasks::name_of(task)),
                ..RunFilter::default()
            };
            let latest = store
                .call(|s| s.runs(&filter))
                .ok()
                .and_then(|v| v.into_iter().next());
            let outcome = match latest {
                Some(run) if run.status == RunStatus::Completed => Outcome::completed(&run),
                Some(run) => Outcome::Failed(run.error.unwrap_or_else(|| "no result".into())),
                None => Outcome::Failed(format!(
                    "no run recorded after {seconds:.0} s; see {}",
                    r.log.display()
                )),
            };
            (task.clone(), outcome)
        })
        .collect()
}

/// Fails the model's runs still marked running (its child is gone).
fn fail_running(store: &Store, model: &str, error: &str) {
    let filter = RunFilter {
        model: Some(model.into()),
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    if let Ok(runs) = store.call(|s| s.runs(&filter)) {
        for run in runs {
            let _ = store.call(|s| s.fail(&run.id, error));
        }
    }
}

/// Records the model of a sweep entry and the sweep's tasks in the store.
pub fn record_model(store: &Store, entry: &ModelEntry) -> Result<()> {
    let model = vlm_runs::ModelRecord {
        name: entry.name.clone(),
        display_name: entry.name.clone(),
        reference: entry.model.clone(),
        base_url: entry.base_url.clone(),
        settings: serde_json::to_value(entry)?,
        params_b: None,
        created_at: 0,
    };
    store.call(|s| s.upsert_model(&model))?;
    for task in tasks::names() {
        if let Some(t) = tasks::by_name(task) {
            let record = vlm_runs::TaskRecord {
                name: task.into(),
                display_name: task.into(),
                primary_metric: t.primary_key(),
                created_at: 0,
            };
            store.call(|s| s.upsert_task(&record))?;
        }
    }
    Ok(())
}

/// Records a model that could not start as one failed run per task.
pub fn record_failure(store: &Store, entry: &ModelEntry, tasks: &[String], error: &str) {
    let (host, worker) = super::eval_recording::worker_name();
    if let Err(e) = record_model(store, entry) {
        eprintln!("vlm-eval sweep: cannot record {}: {e:#}", entry.name);
    }
    for spec in tasks {
        let (task, primary) = match tasks::resolve(spec) {
            Ok(t) => (t.name().to_string(), t.primary_key()),
            Err(_) => (spec.clone(), String::new()),
        };
        let new = vlm_runs::NewRun {
            model: entry.name.clone(),
            task: task.clone(),
            // Never matches a completed run: the model could not even be identified.
            identity_key: format!("unidentified:{}:{task}", entry.name),
            config: serde_json::json!({"model": entry.model, "base_url": entry.base_url}),
            primary_metric: primary,
            output_dir: None,
        };
        let recorded = store
            .call(|s| s.start(&new, &worker, &host))
            .and_then(|id| store.call(|s| s.fail(&id, error)));
        if let Err(e) = recorded {
            eprintln!(
                "vlm-eval sweep: cannot record the failure of {}: {e:#}",
                entry.name
            );
        }
    }
}

/// Fails the model's runs still marked running by a process of this host that is gone (a
/// sweep killed with its children), so the store does not show them running forever.
fn abandon_dead_runs(store: &Store, model: &str) {
    let (host, _) = super::eval_recording::worker_name();
    let filter = RunFilter {
        model: Some(model.into()),
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    let Ok(runs) = store.call(|s| s.runs(&filter)) else {
        return;
    };
    for run in runs {
        let Some((run_host, pid)) = run.worker.as_deref().and_then(|w| w.rsplit_once(':')) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if run_host == host && !process_alive(pid) {
            let error = format!("abandoned: its process ({pid}) is gone; the sweep ran it again");
            let _ = store.call(|s| s.fail(&run.id, &error));
        }
    }
}

/// Whether a process runs (a zombie, which a container's init may never reap, does not).
fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}
