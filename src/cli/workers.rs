//! `vlm-eval queue` and `vlm-eval worker`: a sweep's runs put in the runs store, and workers
//! (on any number of machines sharing one PostgreSQL) that claim them one by one, run each
//! in a child `vlm-eval` on their devices, heartbeat, and record the results. A run whose
//! worker stops heartbeating goes back to the queue.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use vlm_eval::log_tail;
use vlm_eval::sweep::{parse_pool, Device, ModelEntry, Overrides, SweepConfig};
use vlm_eval::tasks;
use vlm_runs::{NewRun, Run, RunFilter, RunId, RunStatus};

use super::eval_child::{spawn, stop, ChildJob, Running};
use super::eval_recording::worker_name;
use super::store::Store;
use super::sweep::{identities, stop_flag};

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    /// The runs store the workers share: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: String,
    /// The sweep whose runs to queue (its devices are the workers' business).
    #[arg(long)]
    pub config: PathBuf,
    /// Queue runs even where the store holds a finished one with the same identity.
    #[arg(long)]
    pub no_reuse: bool,
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The runs store the workers share: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: String,
    /// This worker's devices: "cuda:0,cuda:1" or "cpu:0-7,cpu:8-15" (default: one CPU
    /// device of every available core). One run per device at a time.
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<String>>,
    /// Exit once nothing is queued or running (for Slurm jobs and Kubernetes Jobs).
    #[arg(long)]
    pub once: bool,
    /// Where runs write their folders (<dir>/<model>/<task>).
    #[arg(long, default_value = "vlm-eval-runs")]
    pub output_dir: PathBuf,
    /// A running run whose heartbeat is older than this many seconds goes back to the queue.
    #[arg(long, default_value_t = 120)]
    pub stale_after: u64,
}

/// How often a worker heartbeats its runs (their children heartbeat progress too).
const HEARTBEAT: Duration = Duration::from_secs(3);

pub fn queue_command(args: QueueArgs) -> Result<()> {
    let overrides = Overrides {
        for_queue: true,
        ..Overrides::default()
    };
    let config = SweepConfig::read(&args.config)?;
    // `auto` dtypes resolve as on the devices the config names.
    let cuda = config.devices.iter().any(|d| d.starts_with("cuda"));
    let mut sweep = config.check(&args.config, &overrides)?;
    if cuda {
        sweep.pool = vec![Device::Cuda(0)];
    }
    let store = Store::open(&args.db)?;
    let mut queued = 0;
    let mut skipped = 0;
    for entry in &sweep.models {
        let ids = identities(&sweep, entry).with_context(|| format!("model `{}`", entry.name))?;
        super::sweep::record_model(&store, entry)?;
        for (task, identity) in sweep.tasks.iter().zip(&ids) {
            if !args.no_reuse && store.call(|s| s.find_completed(&identity.key))?.is_some() {
                skipped += 1;
                continue;
            }
            let task_def = tasks::resolve(task)?;
            let filter = RunFilter {
                model: Some(entry.name.clone()),
                task: Some(task_def.name().to_string()),
                ..RunFilter::default()
            };
            let pending = store.call(|s| s.runs(&filter))?.into_iter().any(|r| {
                r.identity_key == identity.key
                    && matches!(r.status, RunStatus::Queued | RunStatus::Running)
            });
            if pending {
                skipped += 1;
                continue;
            }
            let mut config = json!({
                "entry": entry,
                "data_dir": sweep.data_dir,
                "limit": sweep.limit,
                "resume": !args.no_reuse,
                "identity": identity.value,
                "judge": sweep.judge,
            });
            // A task file travels in the run, for workers that do not have it.
            if let Some(text) = task_def.definition() {
                config["task_file"] = json!(text);
            }
            let new = NewRun {
                model: entry.name.clone(),
                task: task_def.name().to_string(),
                identity_key: identity.key.clone(),
                config,
                primary_metric: task_def.primary_key(),
                output_dir: None,
            };
            match store.call(|s| s.enqueue(&new)) {
                Ok(_) => queued += 1,
                // Queued meanwhile by someone else: the same run, once.
                Err(e)
                    if e.downcast_ref::<vlm_runs::StoreError>().is_some_and(|e| {
                        matches!(e, vlm_runs::StoreError::AlreadyQueued { .. })
                    }) =>
                {
                    skipped += 1
                }
                Err(e) => return Err(e),
            }
        }
    }
    println!("queued {queued} run(s); {skipped} already finished or queued");
    Ok(())
}

/// What a queued run's config says to run.
fn job_of(run: &Run, output_dir: &std::path::Path, db: &str) -> Result<ChildJob> {
    let entry: ModelEntry = serde_json::from_value(run.config["entry"].clone())
        .context("its config has no model entry (it was recorded by a vlm-eval run, not queued)")?;
    let run_dir = output_dir.join(&entry.name).join(&run.task);
    // A task file's text is written where the child reads it.
    let task = match run.config["task_file"].as_str() {
        Some(text) => {
            std::fs::create_dir_all(&run_dir)
                .with_context(|| format!("cannot create {}", run_dir.display()))?;
            let path = run_dir.join(format!("{}.toml", run.task));
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path.display().to_string()
        }
        None => run.task.clone(),
    };
    Ok(ChildJob {
        tasks: vec![task],
        data_dir: run.config["data_dir"].as_str().map(PathBuf::from),
        limit: run.config["limit"].as_u64().map(|l| l as usize),
        output_dir: run_dir,
        db: db.to_string(),
        resume: run.config["resume"].as_bool().unwrap_or(true),
        claimed: vec![(run.task.clone(), run.id.clone())],
        judge: serde_json::from_value(run.config["judge"].clone()).ok(),
        entry,
    })
}

/// The run's row, when it is still marked running (its child did not finish it).
fn still_running(store: &Store, id: &RunId) -> bool {
    matches!(store.call(|s| s.get(id.as_str())), Ok(Some(r)) if r.status == RunStatus::Running)
}

pub fn worker_command(args: WorkerArgs) -> Result<()> {
    let pool = parse_pool(args.devices.as_deref().unwrap_or(&[]))
        .map_err(|e| anyhow::anyhow!("--devices: {e}"))?;
    let store = Store::open(&args.db)?;
    let (host, worker) = worker_name();
    let stale = Duration::from_secs(args.stale_after);
    let stopping = stop_flag()?;
    let mut free: Vec<Device> = pool.clone();
    let mut running: Vec<Running> = Vec::new();
    let mut last_beat = Instant::now();
    let (mut finished, mut failed) = (0usize, 0usize);
    eprintln!(
        "vlm-eval worker {worker}: {} device(s): {}",
        pool.len(),
        pool.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    loop {
        if stopping.load(Ordering::SeqCst) {
            for mut r in running.drain(..) {
                stop(&mut r, Duration::from_secs(20));
            }
            // Their runs stay marked running until they go stale and are queued again.
            bail!("the worker was interrupted; its runs return to the queue after --stale-after");
        }
        let requeued = store.call(|s| s.requeue_stale(stale))?;
        if requeued > 0 {
            eprintln!("vlm-eval worker {worker}: {requeued} stale run(s) back in the queue");
        }
        // Claim while a device is free.
        let mut claimed_any = false;
        while !free.is_empty() {
            let Some(run) = store.call(|s| s.claim(&worker, &host))? else {
                break;
            };
            claimed_any = true;
            let job = match job_of(&run, &args.output_dir, &args.db) {
                Ok(job) => job,
                Err(e) => {
                    let error = format!("{e:#}");
                    store.call(|s| s.fail(run.id.as_str(), &error))?;
                    failed += 1;
                    continue;
                }
            };
            let need = job.entry.devices;
            if need > free.len() {
                let error = format!(
                    "needs {need} device(s); this worker has {} free of {}",
                    free.len(),
                    pool.len()
                );
                store.call(|s| s.fail(run.id.as_str(), &error))?;
                failed += 1;
                continue;
            }
            let devices: Vec<Device> = free.drain(..need).collect();
            eprintln!(
                "vlm-eval worker {worker}: running {} / {} ({}) on {}",
                run.model,
                run.task,
                run.id.as_str(),
                devices
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("+")
            );
            match spawn(job, devices.clone()) {
                Ok(child) => running.push(child),
                Err(e) => {
                    free.extend(devices);
                    let error = format!("{e:#}");
                    store.call(|s| s.fail(run.id.as_str(), &error))?;
                    failed += 1;
                }
            }
        }
        if last_beat.elapsed() >= HEARTBEAT {
            last_beat = Instant::now();
            for r in &running {
                let (_, id) = &r.job.claimed[0];
                let _ = store.call(|s| s.heartbeat(id.as_str(), None));
            }
        }
        let mut still = Vec::new();
        for mut r in running.drain(..) {
            match r.child.try_wait() {
                Ok(None) => still.push(r),
                Ok(Some(status)) => {
                    free.extend(r.devices.clone());
                    let (task, id) = r.job.claimed[0].clone();
                    if still_running(&store, &id) {
                        let error = format!(
                            "vlm-eval exited with {status}; its log ({}) ends:\n{}",
                            r.log.display(),
                            log_tail(&r.log, 20)
                        );
                        let _ = store.call(|s| s.fail(id.as_str(), &error));
                    }
                    let ok = matches!(store.call(|s| s.get(id.as_str())), Ok(Some(run)) if run.status == RunStatus::Completed);
                    if ok {
                        finished += 1;
                    } else {
                        failed += 1;
                    }
                    eprintln!(
                        "vlm-eval worker {worker}: {} / {task} {} in {:.0} s",
                        r.job.entry.name,
                        if ok { "completed" } else { "failed" },
                        r.started.elapsed().as_secs_f64()
                    );
                }
                Err(e) => {
                    free.extend(r.devices.clone());
                    eprintln!("vlm-eval worker {worker}: lost a child: {e}");
                }
            }
        }
        running = still;
        if args.once && running.is_empty() && !claimed_any {
            let all = RunFilter::default();
            let open = store
                .call(|s| s.runs(&all))?
                .into_iter()
                .any(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running));
            if !open {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("worker {worker}: {finished} run(s) completed, {failed} failed");
    if failed > 0 {
        bail!("{failed} run(s) failed; `vlm-eval runs --db ... --status failed` lists why");
    }
    Ok(())
}
