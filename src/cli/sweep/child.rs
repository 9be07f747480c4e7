//! One model of a sweep as a child `vlm-eval` process: its command line (model, tasks,
//! devices, engine settings, the runs store), its log file, and stopping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vlm_eval::sweep::{device_flags, Device, ModelEntry, Sweep};

/// A running child.
pub struct Running {
    pub entry: ModelEntry,
    pub devices: Vec<Device>,
    pub tasks: Vec<String>,
    pub child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

/// The model's run folder inside the sweep's output directory.
pub fn run_dir(sweep: &Sweep, entry: &ModelEntry) -> PathBuf {
    sweep.output_dir.join(&entry.name)
}

/// The child's arguments (after the program).
pub fn child_args(
    sweep: &Sweep,
    entry: &ModelEntry,
    tasks: &[String],
    devices: &[Device],
    db: &str,
    resume: bool,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--name".into(),
        entry.name.clone(),
        "--tasks".into(),
        tasks.join(","),
        "--output-dir".into(),
        run_dir(sweep, entry).display().to_string(),
        "--db".into(),
        db.into(),
    ];
    if let Some(dir) = &sweep.data_dir {
        args.extend(["--data-dir".into(), dir.display().to_string()]);
    }
    if let Some(limit) = sweep.limit {
        args.extend(["--limit".into(), limit.to_string()]);
    }
    if resume {
        args.push("--resume".into());
    }
    match (&entry.model, &entry.base_url) {
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

/// Starts the child with its output appended to `<run folder>/vlm-eval.log`.
pub fn spawn(
    sweep: &Sweep,
    entry: &ModelEntry,
    tasks: Vec<String>,
    devices: Vec<Device>,
    db: &str,
    resume: bool,
) -> Result<Running> {
    let dir = run_dir(sweep, entry);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join("vlm-eval.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the vlm-eval executable")?;
    let mut command = Command::new(exe);
    command
        .args(child_args(sweep, entry, &tasks, &devices, db, resume))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    if let Some(var) = &entry.api_key_env {
        if let Some(key) = std::env::var_os(var) {
            command.env("OPENAI_API_KEY", key);
        }
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start vlm-eval for {}", entry.name))?;
    Ok(Running {
        entry: entry.clone(),
        devices,
        tasks,
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

/// The last `lines` lines of a log, for a failure's record.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
