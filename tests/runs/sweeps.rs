//! Sweeps: equal to single runs, reused and resumed (after a kill too), a failing model
//! recorded while the rest completes, bad configurations refused before anything runs.

use super::*;

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
    let first = succeeded(&sweep(&[]));
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
        succeeded(&run(
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
    let again = succeeded(&sweep(&[]));
    assert_eq!(again.matches("reused").count(), 4, "{again}");
    assert_eq!(runs_json(&db, &[], &cache).len(), 4);
    assert_eq!(
        std::fs::metadata(&journal).unwrap().modified().unwrap(),
        before
    );

    // The leaderboard ranks the two models on each task's primary metric.
    let board: Vec<Value> = serde_json::from_str(&succeeded(&run(
        &["leaderboard", "--db", &db, "--task", "mme", "--json"],
        &cache,
    )))
    .unwrap();
    assert_eq!(board.len(), 2);
    assert_eq!(board[0]["metric"], "mme_perception_score");
    assert!(board[0]["value"].as_f64() >= board[1]["value"].as_f64());

    // --no-reuse recomputes all four.
    let fresh = succeeded(&sweep(&["--no-reuse"]));
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

    let rerun = succeeded(&run(&args, &cache));
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
