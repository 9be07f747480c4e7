//! Whole runs, in-process and against `vlm-serve`: identical samples, rescoring, resume after
//! a kill, unreachable and dead servers, missing data.

use super::*;
use crate::scripted_servers::{fake_server, OVERLOADED};

#[test]
fn in_process_and_served_runs_write_identical_samples_and_rescoring_reproduces_them() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let local = tmp.path().join("local");
    let stdout = in_process(&local, &hf, &["--tasks", "mme,mmmu_val"]);
    // lmms-eval's table layout.
    assert!(
        stdout.contains(" Tasks ") && stdout.contains("|mme ") && stdout.contains("|mmmu_val|"),
        "{stdout}"
    );
    assert!(stdout.contains("mme_perception_score") && stdout.contains("mmmu_acc"));

    let server = Server::start("llava-tiny-hub", &[]);
    let served = tmp.path().join("served");
    let v1 = server.v1();
    succeeded(&vlm_eval(
        &[
            "--model",
            "tiny",
            "--base-url",
            &v1,
            "--concurrency",
            "3",
            "--tasks",
            "mme,mmmu_val",
            "--output-dir",
            served.to_str().unwrap(),
        ],
        &hf,
    ));
    for task in ["mme", "mmmu_val"] {
        let file = format!("samples_{task}.jsonl");
        assert_eq!(
            read(&local.join(&file)),
            read(&served.join(&file)),
            "{file} differs between in-process and /v1"
        );
    }

    // results.json in lmms-eval's layout, plus our extras.
    let results = json(&local.join("results.json"));
    let mme = &results["results"]["mme"];
    for key in [
        "mme_perception_score,none",
        "mme_cognition_score,none",
        "mme_perception_score_stderr_clt,none",
    ] {
        assert!(mme[key].is_f64(), "{key}: {mme}");
    }
    assert_eq!(mme["mme_perception_score_stderr,none"], "N/A");
    assert!(results["results"]["mmmu_val"]["mmmu_acc,none"].is_f64());
    assert_eq!(results["n-samples"]["mme"]["effective"], 20);
    assert_eq!(results["n-samples"]["mmmu_val"]["original"], 12);
    assert_eq!(results["versions"]["mme"], "Yaml");
    assert_eq!(
        results["configs"]["mmmu_val"]["generation_kwargs"]["max_new_tokens"],
        128
    );
    let extras = &results["vlm"]["tasks"]["mmmu_val"];
    assert_eq!(extras["dataset"]["repo"], "lmms-lab/MMMU");
    assert!(extras["tokens"]["completion"].as_u64().unwrap() > 0);
    assert!(extras["details"]["breakdown"]["Overall-Science"]["num"].is_u64());
    assert!(extras["details"]["random_fallbacks"].is_u64());

    let samples = lines(&local.join("samples_mmmu_val.jsonl"));
    assert_eq!(samples.len(), 12);
    let first = &samples[0];
    for key in [
        "doc_id", "id", "input", "target", "response", "parsed", "score", "mmmu_acc",
    ] {
        assert!(
            first.get(key).is_some(),
            "samples line lacks {key}: {first}"
        );
    }
    // The prompt keeps `<image k>` and ends with lmms-eval's multiple-choice instruction.
    let input = first["input"].as_str().unwrap();
    assert!(input.contains("<image 1>"));
    assert!(input.ends_with("Answer with the option's letter from the given choices directly."));

    // Rescoring the run's own predictions writes the same samples and scores.
    let rescored = tmp.path().join("rescored");
    for task in ["mme", "mmmu_val"] {
        let predictions = local.join(format!("predictions_{task}.jsonl"));
        score(task, &predictions, &rescored, &hf);
        let file = format!("samples_{task}.jsonl");
        assert_eq!(read(&local.join(&file)), read(&rescored.join(&file)));
        let again = json(&rescored.join("results.json"));
        assert_eq!(again["results"][task], results["results"][task]);
    }
}

#[test]
fn resume_completes_a_killed_run_without_losing_or_repeating_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let full = tmp.path().join("full");
    in_process(&full, &hf, &["--tasks", "mme"]);

    // What a kill leaves: 7 answers, half of an eighth line.
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::copy(full.join("run.json"), killed.join("run.json")).unwrap();
    let answers = read(&full.join("predictions_mme.jsonl"));
    let kept: Vec<&str> = answers.lines().take(8).collect();
    let mut bytes = format!("{}\n", kept[..7].join("\n")).into_bytes();
    bytes.extend_from_slice(&kept[7].as_bytes()[..kept[7].len() / 2]);
    std::fs::write(killed.join("predictions_mme.jsonl"), bytes).unwrap();
    let stdout = in_process(&killed, &hf, &["--tasks", "mme", "--resume"]);
    assert!(stdout.contains("20 samples (7 resumed)"), "{stdout}");
    assert_eq!(
        read(&full.join("samples_mme.jsonl")),
        read(&killed.join("samples_mme.jsonl"))
    );
    let journal = lines(&killed.join("predictions_mme.jsonl"));
    let mut ids: Vec<u64> = journal
        .iter()
        .map(|l| l["doc_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..20).collect::<Vec<_>>(),
        "each sample answered once"
    );

    // Resuming someone else's run is refused.
    let other = fixtures().join("qwen2-vl-tiny");
    let out = vlm_eval(
        &[
            "--model",
            other.to_str().unwrap(),
            "--tasks",
            "mme",
            "--resume",
            "--output-dir",
            killed.to_str().unwrap(),
        ],
        &hf,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drop --resume"), "{err}");
}

#[test]
fn unreachable_server_records_failures_and_resume_retries_them() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    // A listener that never answers: the preflight GET /models times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/v1", silent.local_addr().unwrap());
    let out = vlm_eval(
        &[
            "--model",
            "tiny",
            "--base-url",
            &silent_url,
            "--request-timeout",
            "1",
            "--tasks",
            "mme",
        ],
        &hf,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot reach") && err.contains("--base-url"),
        "{err}"
    );
    drop(silent);
    // A server that lists the model but answers every completion with 503.
    let (failing, _) = fake_server(OVERLOADED.0, OVERLOADED.1);
    let dir = tmp.path().join("run");
    let args = |url: &str| -> Vec<String> {
        [
            "--model",
            "tiny",
            "--base-url",
            url,
            "--tasks",
            "mme",
            // Widened to whole image pairs: 4 rows.
            "--limit",
            "3",
            "--max-retries",
            "2",
            "--concurrency",
            "4",
            "--output-dir",
            dir.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let a = args(&failing);
    let out = vlm_eval(&a.iter().map(String::as_str).collect::<Vec<_>>(), &hf);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Completed, written, and reported as incomplete.
    assert!(!out.status.success(), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rerun with --resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = json(&dir.join("results.json"));
    let failures = results["vlm"]["tasks"]["mme"]["failures"].as_u64().unwrap();
    assert_eq!(failures, 4, "{stdout}");
    assert!(stdout.contains(&format!(
        "WARNING mme: {failures} of 4 samples got no response"
    )));
    let samples = lines(&dir.join("samples_mme.jsonl"));
    assert_eq!(samples.len(), 4);
    assert_eq!(
        samples.iter().filter(|s| s["error"].is_string()).count() as u64,
        failures
    );
    assert_eq!(results["n-samples"]["mme"]["effective"], 4);

    // A working server: --resume asks again for exactly the failed samples.
    let server = Server::start("llava-tiny-hub", &[]);
    let mut b = args(&server.v1());
    b.push("--resume".into());
    let stdout = succeeded(&vlm_eval(
        &b.iter().map(String::as_str).collect::<Vec<_>>(),
        &hf,
    ));
    assert!(
        stdout.contains("4 samples (0 resumed)") && !stdout.contains("WARNING"),
        "{stdout}"
    );
    let local = tmp.path().join("local");
    in_process(&local, &hf, &["--tasks", "mme", "--limit", "3"]);
    assert_eq!(
        read(&local.join("samples_mme.jsonl")),
        read(&dir.join("samples_mme.jsonl"))
    );
}

#[test]
fn missing_data_is_one_clear_line_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vlm_eval_command(
        &["score", "--tasks", "mme", "--predictions", "/dev/null"],
        tmp.path(),
    )
    .arg("--data-dir")
    .arg(tmp.path())
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("vlm-eval: error: dataset lmms-lab/MME (split `test`) not found"),
        "{err}"
    );
    assert!(err.contains("huggingface-cli download lmms-lab/MME --repo-type dataset"));
    let out = vlm_eval_command(
        &["score", "--tasks", "mmu", "--predictions", "/dev/null"],
        tmp.path(),
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown task `mmu`; known: mme, mmmu_val"),
        "{err}"
    );
}

#[test]
fn a_dead_server_is_given_up_on_and_a_null_content_is_an_empty_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let run = |url: &str, dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "--model",
            "tiny",
            "--base-url",
            url,
            "--tasks",
            "mme",
            "--max-retries",
            "1",
            "--concurrency",
            "1",
            "--output-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        vlm_eval(&args, &hf)
    };

    // 20 samples against a server that always fails: after 16 failures in a row the rest
    // are recorded without being sent.
    let (url, posts) = fake_server(OVERLOADED.0, OVERLOADED.1);
    let dead = tmp.path().join("dead");
    let out = run(&url, &dead, &[]);
    assert!(!out.status.success());
    assert_eq!(posts.load(std::sync::atomic::Ordering::SeqCst), 16);
    let samples = lines(&dead.join("samples_mme.jsonl"));
    assert_eq!(samples.len(), 20);
    let errors: Vec<&str> = samples
        .iter()
        .map(|s| s["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors.iter().filter(|e| e.starts_with("HTTP 503")).count(),
        16
    );
    assert_eq!(
        errors.iter().filter(|e| e.starts_with("not sent")).count(),
        4
    );

    // `"content": null` is an empty answer, as lmms-eval scores it, not a failure.
    let (url, _) = fake_server(
        "200 OK",
        r#"{"id":"x","object":"chat.completion","created":0,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":0,"total_tokens":5}}"#,
    );
    let empty = tmp.path().join("empty");
    succeeded(&run(&url, &empty, &["--limit", "1"]));
    let samples = lines(&empty.join("samples_mme.jsonl"));
    assert_eq!(samples.len(), 2);
    for s in &samples {
        assert!(s.get("error").is_none(), "{s}");
        assert_eq!(s["response"], "");
        assert_eq!(s["parsed"], "other");
    }
}

/// Flags that cannot work are refused before anything loads, in one line that says what to
/// change.
#[test]
fn bad_flags_are_one_line_each_before_anything_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let task_file = fixtures().join("eval-crosscheck/expected.json");
    let copy_a = tmp.path().join("a/shapes.toml");
    let copy_b = tmp.path().join("b/shapes.toml");
    let renamed = read(&root().join("crates/vlm-eval/tasks/pope.toml"))
        .replace("task = \"pope\"", "task = \"shapes\"");
    for copy in [&copy_a, &copy_b] {
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(copy, &renamed).unwrap();
    }
    let (a, b) = (copy_a.to_str().unwrap(), copy_b.to_str().unwrap());
    let twice = format!("{a},{b}");
    let judge = ["--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "j"];
    for (args, says) in [
        (
            vec!["--model", "m", "--tasks", "mme,mme"],
            "--tasks names task `mme` twice",
        ),
        (
            vec!["--model", "m", "--tasks", &twice],
            "give each task file its own `task` name",
        ),
        (
            [
                &["--model", "m", "--tasks", "mme"][..],
                &judge,
                &["--judge-api-key-env", "VLM_NO_SUCH_VAR_SET"],
            ]
            .concat(),
            "--judge-api-key-env names VLM_NO_SUCH_VAR_SET, which is not set",
        ),
        (
            vec!["--model", "m", "--tasks", "mme", "--max-new-tokens", "0"],
            "--max-new-tokens must be at least 1",
        ),
        (
            vec!["score", "--tasks", "mme,pope", "--predictions", "p.jsonl"],
            "score reads one task's predictions per call",
        ),
        (
            vec!["tasks", task_file.to_str().unwrap()],
            "a task file's name ends in .toml",
        ),
    ] {
        let out = vlm_eval_command(&args, &hf).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Two ways to reach a server at once: clap's own refusal.
    let out = vlm_eval(
        &[
            "--model",
            "m",
            "--tasks",
            "mme",
            "--deploy",
            "x {port}",
            "--base-url",
            "http://h/v1",
        ],
        &hf,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
}
