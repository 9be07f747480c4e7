//! A model's tasks run by a child `vlm-eval` process (for a sweep or a worker): its command
//! line (model, tasks, devices, engine settings, the runs store), its log file, and
//! stopping it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vlm_eval::sweep::{device_flags, Device, JudgeEntry, ModelEntry};
use vlm_runs::RunId;

/// What one child evaluates, and where it writes.
#[derive(Debug, Clone)]
pub struct ChildJob {
    pub entry: ModelEntry,
    pub tasks: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub limit: Option<usize>,
    pub output_dir: PathBuf,
    pub db: String,
    /// Keep the journals already in the output folder (`--resume`).
    pub resume: bool,
    /// Store runs already made for these tasks (a worker's claims).
    pub claimed: Vec<(String, RunId)>,
    /// The judge model for tasks that need one.
    pub judge: Option<JudgeEntry>,
}

/// A running child.
pub struct Running {
    pub job: ChildJob,
    pub devices: Vec<Device>,
    pub child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

/// The child's arguments (after the program).
pub fn child_args(job: &ChildJob, devices: &[Device]) -> Vec<String> {
    let entry = &job.entry;
    let mut args: Vec<String> = vec![
        "--name".into(),
        entry.name.clone(),
        "--tasks".into(),
        job.tasks.join(","),
        "--output-dir".into(),
        job.output_dir.display().to_string(),
        "--db".into(),
        job.db.clone(),
    ];
    if let Some(dir) = &job.data_dir {
        args.extend(["--data-dir".into(), dir.display().to_string()]);
    }
    if let Some(limit) = job.limit {
        args.extend(["--limit".into(), limit.to_string()]);
    }
    if job.resume {
        args.push("--resume".into());
    }
    if let Some(judge) = &job.judge {
        args.extend(judge.flags());
    }
    if !job.claimed.is_empty() {
        let claimed: Vec<String> = job
            .claimed
            .iter()
            .map(|(task, id)| format!("{task}={}", id.as_str()))
            .collect();
        args.extend(["--claimed-runs".into(), claimed.join(",")]);
    }
    match (&entry.model, &entry.base_url) {
        (Some(model), None) if entry.deploy.is_some() => {
            args.extend(["--model".into(), model.clone()]);
            args.extend(["--deploy".into(), entry.deploy.clone().unwrap_or_default()]);
            if let Some(c) = entry.concurrency {
                args.extend(["--concurrency".into(), c.to_string()]);
            }
        }
        (_, Some(url)) => {
            args.extend([
                "--model".into(),
                entry.name.clone(),
                "--base-url".into(),
                url.clone(),
            ]);
            if let Some(c) = entry.concurrency {
                args.extend(["--concurrency".into(), c.to_string()]);
            }
        }
        (Some(model), None) => {
            args.extend(["--model".into(), model.clone()]);
            args.extend(device_flags(devices));
            let settings = [
                ("--dtype", entry.dtype.clone()),
                ("--quantize", entry.quantize.clone()),
                ("--kv-cache-gb", entry.kv_cache_gb.map(|v| v.to_string())),
                (
                    "--max-model-len",
                    entry.max_model_len.map(|v| v.to_string()),
                ),
                ("--max-num-seqs", entry.max_num_seqs.map(|v| v.to_string())),
                ("--min-pixels", entry.min_pixels.map(|v| v.to_string())),
                ("--max-pixels", entry.max_pixels.map(|v| v.to_string())),
            ];
            for (flag, value) in settings {
                if let Some(value) = value {
                    args.extend([flag.to_string(), value]);
                }
            }
        }
        (None, None) => {}
    }
    args
}

/// Starts the child with its output appended to `<output folder>/vlm-eval.log`.
pub fn spawn(job: ChildJob, devices: Vec<Device>) -> Result<Running> {
    let entry = &job.entry;
    let dir = &job.output_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join("vlm-eval.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the vlm-eval executable")?;
    let mut command = Command::new(exe);
    command
        .args(child_args(&job, &devices))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    if let Some(var) = &entry.api_key_env {
        if let Some(key) = std::env::var_os(var) {
            command.env("OPENAI_API_KEY", key);
        }
    }
    // A deployed server gets its share of the pool the way serving engines take devices.
    if entry.deploy.is_some() {
        let gpus: Vec<String> = devices
            .iter()
            .filter_map(|d| match d {
                Device::Cuda(i) => Some(i.to_string()),
                Device::Cpu(_) => None,
            })
            .collect();
        if !gpus.is_empty() {
            command.env("CUDA_VISIBLE_DEVICES", gpus.join(","));
        }
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start vlm-eval for {}", entry.name))?;
    Ok(Running {
        job,
        devices,
        child,
        log,
        started: Instant::now(),
    })
}

/// Asks the child to stop (SIGTERM), then kills it after `grace`.
pub fn stop(running: &mut Running, grace: Duration) {
    // SAFETY: signalling a child process id this process started and has not reaped.
    unsafe {
        libc::kill(running.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(running.child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = running.child.kill();
    let _ = running.child.wait();
}
