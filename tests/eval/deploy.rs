//! `--deploy` and `--base-url`: a deployed `vlm-serve` stopped after the run, deployments
//! that fail, replicas sharing the load, and no server left behind by a killed `vlm-eval`.

use super::*;

/// The processes whose command line holds `needle` (NUL-separated arguments, as in /proc),
/// once those being killed have had a moment to go.
fn processes_with(needle: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let found = processes_now(needle);
        if found.is_empty() || std::time::Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn processes_now(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).into_owned();
        if text.contains(needle) {
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                text.replace('\0', " ")
            ));
        }
    }
    found
}

/// The port a deployment log shows (`... on PORT` or `at http://127.0.0.1:PORT/v1`).
fn port_in(log: &str) -> String {
    let at = log
        .find("127.0.0.1:")
        .map(|i| i + "127.0.0.1:".len())
        .or_else(|| log.find(" on ").map(|i| i + 4))
        .expect("a port in the log");
    log[at..].chars().take_while(char::is_ascii_digit).collect()
}

/// `vlm-eval` on MME deploying `command` (which echoes `waiting on {port}` and runs a
/// `sleep` named by its port), writing to `dir`.
fn spawn_deploying(
    command: &str,
    dir: &Path,
    hf: &Path,
    stderr: std::process::Stdio,
) -> std::process::Child {
    vlm_eval_with_data(&["--model", "m", "--tasks", "mme", "--deploy", command], hf)
        .arg("--output-dir")
        .arg(dir)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Waits until the deployment in `dir` says `waiting on PORT` and its `sleep PREFIXPORT`
/// runs (the shell may not have started it yet); returns that process's /proc needle.
fn deployed_sleep(dir: &Path, prefix: &str) -> String {
    let log = dir.join("deploy.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("waiting on")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the deployment never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let needle = format!("sleep\x00{prefix}{}", port_in(&read(&log)));
    while processes_now(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    needle
}

#[test]
fn deploying_vlm_serve_gives_the_in_process_samples_and_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let local = tmp.path().join("local");
    in_process(&local, &hf, &["--tasks", "mme,pope"]);
    let deployed = tmp.path().join("deployed");
    let model = fixtures().join("llava-tiny-hub");
    let command = format!(
        "{} --model {{model}} --port {{port}} --kv-cache-gb 0.05",
        env!("CARGO_BIN_EXE_vlm-serve")
    );
    succeeded(&vlm_eval(
        &[
            "--model",
            model.to_str().unwrap(),
            "--deploy",
            &command,
            "--tasks",
            "mme,pope",
            "--output-dir",
            deployed.to_str().unwrap(),
        ],
        &hf,
    ));
    for file in ["samples_mme.jsonl", "samples_pope.jsonl"] {
        assert_eq!(
            read(&local.join(file)),
            read(&deployed.join(file)),
            "{file}"
        );
    }
    let log = read(&deployed.join("deploy.log"));
    assert!(
        log.contains("vlm-serve") && log.contains("stopped"),
        "{log}"
    );
    let port = port_in(&log);
    assert!(processes_with(&format!("--port\0{port}\0")).is_empty());
    let results = json(&deployed.join("results.json"));
    assert!(results["config"]["model_backend"]["base_url"]
        .as_str()
        .unwrap()
        .contains(&port));
}

#[test]
fn a_deploy_that_exits_or_never_answers_fails_with_its_log_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let run = |command: &str, out: &str, extra: &[&str]| {
        let dir = tmp.path().join(out);
        let mut args = vec![
            "--model",
            "m",
            "--deploy",
            command,
            "--tasks",
            "mme",
            "--output-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = vlm_eval(&args, &hf);
        assert!(!out.status.success());
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            read(&dir.join("deploy.log")),
        )
    };
    // Exits at once: the error says so and shows the log's end.
    let (stderr, _) = run(
        "echo loading {model}; echo 'no such flag: --bogus' >&2; exit 3 # {port}",
        "exits",
        &[],
    );
    assert!(
        stderr.contains("exited") && stderr.contains("no such flag: --bogus"),
        "{stderr}"
    );
    assert!(stderr.contains("loading m"), "{stderr}");

    // Never answers: after --deploy-timeout the whole group is stopped, children too.
    let (stderr, log) = run(
        "sleep 30{port} & echo waiting on {port}; wait",
        "silent",
        &["--deploy-timeout", "2", "--deploy-grace", "1"],
    );
    assert!(
        stderr.contains("did not answer") && stderr.contains("waiting on"),
        "{stderr}"
    );
    let port = port_in(&log);
    let left = processes_with(&format!("sleep\x0030{port}"));
    assert!(left.is_empty(), "left behind: {left:?}");

    // One that ignores SIGTERM is killed after the grace.
    let (stderr, log) = run(
        "trap '' TERM; echo stubborn on {port}; sleep 40{port} & wait",
        "stubborn",
        &["--deploy-timeout", "1", "--deploy-grace", "1"],
    );
    assert!(stderr.contains("did not answer"), "{stderr}");
    let port = port_in(&log);
    assert!(processes_with(&format!("sleep\x0040{port}")).is_empty());

    // Ctrl-C while waiting: the server's group is stopped too.
    let dir = tmp.path().join("interrupted");
    let mut child = spawn_deploying(
        "sleep 50{port} & echo waiting on {port}; wait",
        &dir,
        &hf,
        std::process::Stdio::piped(),
    );
    let needle = deployed_sleep(&dir, "50");
    // SAFETY: interrupting the vlm-eval this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(processes_with(&needle).is_empty());

    // No {port}: refused before anything starts.
    let out = vlm_eval(
        &[
            "--model",
            "m",
            "--deploy",
            "vllm serve {model}",
            "--tasks",
            "mme",
        ],
        &hf,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs `{port}`"));
}

#[test]
fn two_replicas_share_the_load_and_one_killed_mid_run_costs_no_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let tasks = "mme,pope,textvqa_val";
    let local = tmp.path().join("local");
    in_process(&local, &hf, &["--tasks", tasks]);

    let a = Server::start("llava-tiny-hub", &[]);
    let b = Server::start("llava-tiny-hub", &[]);
    let out = tmp.path().join("replicas");
    let mut child = vlm_eval_with_data(
        &["--model", "tiny", "--concurrency", "4", "--tasks", tasks],
        &hf,
    )
    .args(["--base-url", &a.v1(), "--base-url", &b.v1()])
    .arg("--output-dir")
    .arg(&out)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Kill replica b once some answers are in (textvqa's long answers keep the run going).
    let journal = out.join("predictions_mme.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count()) < 6 {
        assert!(std::time::Instant::now() < deadline, "no answers came");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before a replica could fail in it"
    );
    // SAFETY: killing the server this test started.
    unsafe { libc::kill(b.pid(), libc::SIGKILL) };
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for task in tasks.split(',') {
        let file = format!("samples_{task}.jsonl");
        assert_eq!(read(&local.join(&file)), read(&out.join(&file)), "{file}");
        for line in read(&out.join(format!("predictions_{task}.jsonl"))).lines() {
            assert!(!line.contains("\"error\""), "{line}");
        }
    }
    let backend = &json(&out.join("results.json"))["config"]["model_backend"];
    let answered: Vec<u64> = backend["answered_per_replica"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(answered.iter().sum::<u64>(), 20 + 9 + 9, "{backend}");
    assert!(answered.iter().all(|&n| n > 0), "{backend}");
}

/// `kill -9` of vlm-eval still stops the deployed server: the kernel tells its supervising
/// shell, which stops the group.
#[test]
fn a_killed_vlm_eval_leaves_no_deployed_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut child = spawn_deploying(
        "echo waiting on {port}; sleep 60{port}",
        &dir,
        &tmp.path().join("hf"),
        std::process::Stdio::null(),
    );
    let needle = deployed_sleep(&dir, "60");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        processes_with(&needle).is_empty(),
        "{:?}",
        processes_now(&needle)
    );
}
