//! Sweeps and the runs store end to end: the real `vlm-eval` binary sweeping the two tiny
//! fixture models over the shipped sample sets on two CPU "devices", reuse and resume after
//! a kill, a failing model, bad configurations, reading the store back, backfilling it from
//! output folders, and two workers sharing a real PostgreSQL queue.

mod common;
#[path = "../crates/vlm-runs/tests/postgres_server/mod.rs"]
#[allow(dead_code)]
mod postgres_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, root, vlm_eval_command};
use serde_json::Value;

fn vlm_eval(args: &[&str], hf_cache: &Path) -> Command {
    vlm_eval_command(args, hf_cache)
}

fn run(args: &[&str], hf_cache: &Path) -> Output {
    vlm_eval(args, hf_cache).output().expect("run vlm-eval")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vlm-eval failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Two CPU devices of one core each (the first two this process may use).
fn two_cpu_devices() -> [String; 2] {
    let cores = vlm_engine::available_cores();
    assert!(
        cores.len() >= 2,
        "the sweep tests need two cores, have {cores:?}"
    );
    [format!("cpu:{}", cores[0]), format!("cpu:{}", cores[1])]
}

/// A sweep file over both tiny models (plus `extra` models), tasks mme and mmmu_val.
fn write_sweep(dir: &Path, extra: &str) -> PathBuf {
    let [a, b] = two_cpu_devices();
    let text = format!(
        r#"
tasks = ["mme", "mmmu_val"]
data_dir = "{data}"
devices = ["{a}", "{b}"]

[[models]]
name = "llava-tiny"
model = "{llava}"
kv_cache_gb = 0.25
max_num_seqs = 2

[[models]]
name = "qwen2-vl-tiny"
model = "{qwen}"
kv_cache_gb = 0.25
{extra}
"#,
        data = root().join("eval-datasets").display(),
        llava = fixtures().join("llava-tiny-hub").display(),
        qwen = fixtures().join("qwen2-vl-tiny-hub").display(),
    );
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn runs_json(db: &str, extra: &[&str], hf_cache: &Path) -> Vec<Value> {
    let mut args = vec!["runs", "--db", db, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&run(&args, hf_cache))).unwrap()
}

fn completed(runs: &[Value]) -> Vec<&Value> {
    runs.iter().filter(|r| r["status"] == "completed").collect()
}

/// The primary metrics results.json holds for each task of a folder.
fn results_metrics(dir: &Path) -> Value {
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    results["results"].clone()
}

#[test]
fn a_sweep_equals_single_runs_and_reruns_reuse_or_resume() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let out = work.path().join("out");
    let config = write_sweep(work.path(), "");
    let db = format!("sqlite://{}/runs.db", out.display());
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", "--config", config.to_str().unwrap()];
        args.extend(["--output-dir", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        run(&args, &cache)
    };
    let first = ok(&sweep(&[]));
    assert!(first.contains("completed"), "{first}");

    // Four completed runs, each with the metrics of the same model evaluated on its own.
    let runs = runs_json(&db, &[], &cache);
    assert_eq!(completed(&runs).len(), 4, "{runs:#?}");
    // The children's progress reached the store (written from a heartbeat thread: the
    // in-process stream may not block on the store).
    for r in &runs {
        assert!(r["progress_total"].as_u64() > Some(0), "{r}");
        assert_eq!(r["progress_done"], r["progress_total"], "{r}");
    }
    for (name, fixture) in [
        ("llava-tiny", "llava-tiny-hub"),
        ("qwen2-vl-tiny", "qwen2-vl-tiny-hub"),
    ] {
        let single = work.path().join(format!("single-{name}"));
        ok(&run(
            &[
                "--model",
                fixtures().join(fixture).to_str().unwrap(),
                "--tasks",
                "mme,mmmu_val",
                "--data-dir",
                root().join("eval-datasets").to_str().unwrap(),
                "--output-dir",
                single.to_str().unwrap(),
                "--kv-cache-gb",
                "0.25",
            ],
            &cache,
        ));
        let expected = results_metrics(&single);
        for task in ["mme", "mmmu_val"] {
            let recorded = runs
                .iter()
                .find(|r| r["model"] == name && r["task"] == task)
                .unwrap();
            let metrics = recorded["metrics"].as_object().unwrap();
            assert!(!metrics.is_empty());
            for (metric, value) in metrics {
                assert_eq!(
                    expected[task][format!("{metric},none")],
                    *value,
                    "{name} {task} {metric}"
                );
            }
        }
        assert_eq!(results_metrics(&out.join(name)), expected, "{name}");
    }

    // Rerun: everything reused, nothing recomputed (no new runs, journals untouched).
    let journal = out.join("llava-tiny").join("predictions_mme.jsonl");
    let before = std::fs::metadata(&journal).unwrap().modified().unwrap();
    let again = ok(&sweep(&[]));
    assert_eq!(again.matches("reused").count(), 4, "{again}");
    assert_eq!(runs_json(&db, &[], &cache).len(), 4);
    assert_eq!(
        std::fs::metadata(&journal).unwrap().modified().unwrap(),
        before
    );

    // The leaderboard ranks the two models on each task's primary metric.
    let board: Vec<Value> = serde_json::from_str(&ok(&run(
        &["leaderboard", "--db", &db, "--task", "mme", "--json"],
        &cache,
    )))
    .unwrap();
    assert_eq!(board.len(), 2);
    assert_eq!(board[0]["metric"], "mme_perception_score");
    assert!(board[0]["value"].as_f64() >= board[1]["value"].as_f64());

    // --no-reuse recomputes all four.
    let fresh = ok(&sweep(&["--no-reuse"]));
    assert_eq!(fresh.matches("completed").count(), 4, "{fresh}");
    assert_eq!(completed(&runs_json(&db, &[], &cache)).len(), 8);
    assert!(std::fs::metadata(&journal).unwrap().modified().unwrap() > before);
}

#[test]
fn a_killed_sweep_resumes_what_was_partial_and_reuses_what_finished() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let out = work.path().join("out");
    let config = write_sweep(work.path(), "");
    let db = format!("sqlite://{}/runs.db", out.display());
    let args = [
        "sweep",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ];
    // Killed (with its children, as a terminal closing would) while llava-tiny's MMMU
    // journal is part written.
    let mut sweep = vlm_eval(&args, &cache);
    std::os::unix::process::CommandExt::process_group(&mut sweep, 0);
    let mut child = sweep
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.join("llava-tiny").join("predictions_mmmu_val.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.matches('\n').count())
            .unwrap_or(0)
    };
    while lines(&journal) == 0 {
        if Instant::now() > deadline {
            let _ = child.kill();
            let logs = ["llava-tiny", "qwen2-vl-tiny"].map(|m| {
                std::fs::read_to_string(out.join(m).join("vlm-eval.log")).unwrap_or_default()
            });
            panic!("the MMMU journal never started; logs: {logs:#?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: killing the process group this test started.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    child.wait().unwrap();
    let done_before_kill = lines(&journal);
    assert!(
        done_before_kill < 12,
        "finished before the kill: {done_before_kill}"
    );
    let finished_before: Vec<(String, String)> = completed(&runs_json(&db, &[], &cache))
        .iter()
        .map(|r| (r["model"].to_string(), r["task"].to_string()))
        .collect();

    let rerun = ok(&run(&args, &cache));
    let runs = runs_json(&db, &[], &cache);
    // Every (model, task) completed exactly once: nothing finished was recomputed.
    assert_eq!(completed(&runs).len(), 4, "{rerun}\n{runs:#?}");
    assert_eq!(
        rerun.matches("reused").count(),
        finished_before.len(),
        "{rerun}"
    );
    // The killed run is recorded as abandoned, not left running.
    assert!(runs.iter().all(|r| r["status"] != "running"), "{runs:#?}");
    // The partial run resumed from its journal.
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("llava-tiny").join("results.json")).unwrap(),
    )
    .unwrap();
    let resumed = results["vlm"]["tasks"]["mmmu_val"]["resumed_samples"].as_u64();
    assert_eq!(resumed, Some(done_before_kill as u64), "{results:#}");
}

#[test]
fn a_failing_model_is_recorded_and_the_rest_completes() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let out = work.path().join("out");
    let config = write_sweep(
        work.path(),
        "\n[[models]]\nname = \"missing\"\nmodel = \"/no/such/model\"\n",
    );
    let db = format!("sqlite://{}/runs.db", out.display());
    let result = run(
        &[
            "sweep",
            "--config",
            config.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("missing / mme"), "{stderr}");
    let runs = runs_json(&db, &[], &cache);
    assert_eq!(completed(&runs).len(), 4, "{runs:#?}");
    let failed = runs_json(&db, &["--model", "missing"], &cache);
    assert_eq!(failed.len(), 2);
    for r in &failed {
        assert_eq!(r["status"], "failed");
        assert!(
            r["error"].as_str().unwrap().contains("/no/such/model"),
            "{r}"
        );
    }
}

#[test]
fn bad_configurations_fail_before_anything_runs() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let good = std::fs::read_to_string(write_sweep(work.path(), "")).unwrap();
    let [a, _] = two_cpu_devices();
    for (change, expected) in [
        (
            (
                "kv_cache_gb = 0.25\nmax_num_seqs",
                "kv_cache_gb = 0.25\nmax_num_seq",
            ),
            "unknown field `max_num_seq`",
        ),
        (
            ("\"mme\", \"mmmu_val\"", "\"mme\", \"pope2\""),
            "unknown task `pope2`",
        ),
        ((a.as_str(), "cpu:99999"), "core 99999"),
        (
            ("max_num_seqs = 2", "max_num_seqs = 2\ndevices = 3"),
            "needs 3 device(s)",
        ),
    ] {
        let out = work.path().join("out-bad");
        let path = work.path().join("bad.toml");
        std::fs::write(&path, good.replacen(change.0, change.1, 1)).unwrap();
        let result = run(
            &[
                "sweep",
                "--config",
                path.to_str().unwrap(),
                "--output-dir",
                out.to_str().unwrap(),
            ],
            &cache,
        );
        assert!(!result.status.success());
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(stderr.lines().count() <= 3, "{stderr}");
        assert!(!out.exists(), "{expected}: something ran");
    }
}

#[test]
fn sync_records_our_folders_and_lmms_eval_results_once() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let ours = work.path().join("ours");
    ok(&run(
        &[
            "--model",
            fixtures().join("llava-tiny-hub").to_str().unwrap(),
            "--name",
            "llava-tiny",
            "--tasks",
            "mme,mmmu_val",
            "--limit",
            "4",
            "--data-dir",
            root().join("eval-datasets").to_str().unwrap(),
            "--output-dir",
            ours.to_str().unwrap(),
            "--kv-cache-gb",
            "0.25",
        ],
        &cache,
    ));
    // lmms-eval's layout: <output>/<sanitized model>/<date>_results.json.
    let lmms = work.path().join("lmms").join("llava-hf__llava-1.5-7b-hf");
    std::fs::create_dir_all(&lmms).unwrap();
    std::fs::write(
        lmms.join("20261129_101010_results.json"),
        serde_json::json!({
            "results": {"mme": {"alias": "mme",
                "mme_cognition_score,none": 355.7, "mme_cognition_score_stderr,none": "N/A",
                "mme_perception_score,none": 1510.75, "mme_perception_score_stderr,none": "N/A"}},
            "group_subtasks": {"mme": []},
            "configs": {"mme": {"task": "mme"}},
            "versions": {"mme": "Yaml"},
            "n-shot": {"mme": 0},
            "higher_is_better": {"mme": {"mme_cognition_score": true, "mme_perception_score": true}},
            "n-samples": {"mme": {"original": 2374, "effective": 2374}},
            "config": {"model": "llava_hf", "model_args": "pretrained=llava-hf/llava-1.5-7b-hf,device_map=auto", "batch_size": "1"},
            "git_hash": "abc1234",
            "date": 1795990210.5,
            "model_source": "llava_hf",
            "model_name": "llava-hf/llava-1.5-7b-hf",
            "model_name_sanitized": "llava-hf__llava-1.5-7b-hf",
            "total_evaluation_time_seconds": "3600.0"
        })
        .to_string(),
    )
    .unwrap();
    let db = format!("sqlite://{}/runs.db", work.path().display());
    let lmms_root = work.path().join("lmms");
    let dirs = [ours.to_str().unwrap(), lmms_root.to_str().unwrap()];
    let first = ok(&run(&["sync", "--db", &db, dirs[0], dirs[1]], &cache));
    assert!(first.contains("3 run(s) recorded"), "{first}");
    let again = ok(&run(&["sync", "--db", &db, dirs[0], dirs[1]], &cache));
    assert!(again.contains("0 run(s) recorded, 3 already"), "{again}");
    let runs = runs_json(&db, &[], &cache);
    assert_eq!(runs.len(), 3);
    let lmms_run = runs
        .iter()
        .find(|r| r["model"] == "llava-hf/llava-1.5-7b-hf")
        .unwrap();
    assert_eq!(lmms_run["metrics"]["mme_perception_score"], 1510.75);
    assert_eq!(lmms_run["finished_at"], 1_795_990_210_500i64);
    let ours_mme = runs
        .iter()
        .find(|r| r["model"] == "llava-tiny" && r["task"] == "mme")
        .unwrap();
    let results = results_metrics(&ours);
    assert_eq!(
        ours_mme["metrics"]["mme_perception_score"],
        results["mme"]["mme_perception_score,none"]
    );
    let board: Vec<Value> = serde_json::from_str(&ok(&run(
        &["leaderboard", "--db", &db, "--task", "mme", "--json"],
        &cache,
    )))
    .unwrap();
    assert_eq!(board[0]["model"], "llava-hf/llava-1.5-7b-hf");
    assert_eq!(board[0]["rank"], 1);
}

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
    let queued = ok(&run(
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
    let queued = ok(&run(
        &["queue", "--db", &db, "--config", config.to_str().unwrap()],
        &cache,
    ));
    assert!(queued.contains("queued 2 run(s)"), "{queued}");
    std::fs::remove_file(&task_file).unwrap();
    let out = work.path().join("out");
    ok(&run(
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
