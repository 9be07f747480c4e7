//! Workers sharing a real PostgreSQL queue: draining it, finishing a killed worker's run,
//! and running a queued task file they do not have.

use super::*;

#[test]
fn two_workers_on_postgres_drain_the_queue_and_finish_a_killed_workers_run() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(postgres_server::TestDatabase::create());
    let url = database.url.clone();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    // Three models x two tasks: six runs.
    let config = write_sweep(
        work.path(),
        &format!(
            "\n[[models]]\nname = \"llava-tiny-plain\"\nmodel = \"{}\"\nkv_cache_gb = 0.25\n",
            fixtures().join("llava-tiny").display()
        ),
    );
    let queued = succeeded(&run(
        &["queue", "--db", &url, "--config", config.to_str().unwrap()],
        &cache,
    ));
    assert!(queued.contains("queued 6 run(s)"), "{queued}");

    let [a, b] = two_cpu_devices();
    let worker = |devices: &str, out: &str| {
        let mut command = vlm_eval(
            &[
                "worker",
                "--db",
                &url,
                "--devices",
                devices,
                "--once",
                "--stale-after",
                "8",
                "--output-dir",
                work.path().join(out).to_str().unwrap(),
            ],
            &cache,
        );
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.spawn().unwrap()
    };
    let mut first = worker(&a, "a");
    let second = worker(&b, "b");
    // Kill the first worker (and its child) while it holds a run.
    let store = runtime.block_on(vlm_runs::RunStore::open(&url)).unwrap();
    let first_pid = format!(":{}", first.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let running = runtime
            .block_on(store.runs(&vlm_runs::RunFilter {
                status: Some(vlm_runs::RunStatus::Running),
                ..Default::default()
            }))
            .unwrap();
        if let Some(run) = running
            .into_iter()
            .find(|r| r.worker.as_deref().is_some_and(|w| w.ends_with(&first_pid)))
        {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker never claimed a run"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // SAFETY: killing the process group this test started.
    unsafe {
        libc::kill(-(first.id() as i32), libc::SIGKILL);
    }
    first.wait().unwrap();

    let output = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs = runtime
        .block_on(store.runs(&vlm_runs::RunFilter::default()))
        .unwrap();
    assert_eq!(runs.len(), 6, "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| r.status == vlm_runs::RunStatus::Completed),
        "{runs:#?}"
    );
    // The killed worker's run went back to the queue and the other worker finished it.
    let finished = runs.iter().find(|r| r.id == held.id).unwrap();
    let second_pid = format!(":{}", output_pid(&stdout));
    assert!(
        finished
            .worker
            .as_deref()
            .is_some_and(|w| w.ends_with(&second_pid)),
        "{finished:#?}"
    );
    // Every (model, task) once.
    let mut pairs: Vec<(String, String)> = runs
        .iter()
        .map(|r| (r.model.clone(), r.task.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 6);
    drop(store);
    drop(database);
}

/// A sweep naming a shipped task and a task file (relative to the config): queued, the file
/// deleted, and a worker still runs both, the file from the text its queued run carries,
/// each recorded under its task name.
#[test]
fn a_queued_task_file_runs_on_a_worker_without_the_file() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let pope = std::fs::read_to_string(root().join("crates/vlm-eval/tasks/pope.toml")).unwrap();
    let task_file = work.path().join("tasks/pope_local.toml");
    std::fs::create_dir_all(task_file.parent().unwrap()).unwrap();
    std::fs::write(
        &task_file,
        pope.replace("task = \"pope\"", "task = \"pope_local\""),
    )
    .unwrap();
    let [a, _] = two_cpu_devices();
    let config = work.path().join("sweep.toml");
    std::fs::write(
        &config,
        format!(
            "tasks = [\"pope\", \"tasks/pope_local.toml\"]\ndata_dir = \"{}\"\ndevices = [\"{a}\"]\n\n\
             [[models]]\nname = \"llava-tiny\"\nmodel = \"{}\"\nkv_cache_gb = 0.25\n",
            root().join("eval-datasets").display(),
            fixtures().join("llava-tiny-hub").display()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}/runs.db", work.path().display());
    let queued = succeeded(&run(
        &["queue", "--db", &db, "--config", config.to_str().unwrap()],
        &cache,
    ));
    assert!(queued.contains("queued 2 run(s)"), "{queued}");
    std::fs::remove_file(&task_file).unwrap();
    let out = work.path().join("out");
    succeeded(&run(
        &[
            "worker",
            "--db",
            &db,
            "--devices",
            &a,
            "--once",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &cache,
    ));
    // The shipped task travels by name, the user's file by its text.
    let runs = runs_json(&db, &[], &cache);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut tasks: Vec<&str> = runs.iter().map(|r| r["task"].as_str().unwrap()).collect();
    tasks.sort();
    assert_eq!(tasks, ["pope", "pope_local"]);
    assert!(runs.iter().all(|r| r["status"] == "completed"), "{runs:?}");
    assert!(
        runs.iter().all(|r| r["primary_metric"] == "pope_f1_score"),
        "{runs:?}"
    );
    let results = results_metrics(&out.join("llava-tiny/pope_local"));
    assert!(
        results["pope_local"]["pope_f1_score,none"].is_f64(),
        "{results}"
    );
}

/// The worker's pid from its closing line ("worker HOST:PID: ...").
fn output_pid(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("worker "))
        .unwrap_or_else(|| panic!("no closing line in {stdout:?}"));
    let id = line
        .trim_start_matches("worker ")
        .split(": ")
        .next()
        .unwrap();
    id.rsplit(':').next().unwrap().to_string()
}
