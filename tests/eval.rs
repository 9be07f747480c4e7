//! `vlm-eval` end to end: the shipped sample sets through the tiny fixture model, in-process
//! and against a running `vlm-serve`; resume, failures, rescoring, and scoring against
//! lmms-eval's own functions on fixed predictions.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures, Server};
use serde_json::Value;

fn eval_datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval-datasets")
}

/// Runs vlm-eval offline (no hub, an empty HF cache) with the shipped data.
fn vlm_eval(args: &[&str], hf_cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(args)
        .arg("--data-dir")
        .arg(eval_datasets())
        .env("RUST_LOG", "error")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", hf_cache)
        .output()
        .expect("run vlm-eval")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vlm-eval failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `vlm-eval score` on one predictions file, which must succeed.
fn score(task: &str, predictions: &Path, out: &Path, hf: &Path) -> String {
    ok(vlm_eval(
        &[
            "score",
            "--tasks",
            task,
            "--predictions",
            predictions.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
        hf,
    ))
}

fn in_process(dir: &Path, hf: &Path, extra: &[&str]) -> String {
    let model = fixtures().join("llava-tiny-hub");
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--kv-cache-gb",
        "0.05",
        "--output-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(vlm_eval(&args, hf))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    read(path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

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
    ok(vlm_eval(
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

/// `GET /v1/models` lists `tiny`; every other request gets `status` and `body`. Returns
/// its `/v1` URL and how many such other requests it has had.
fn fake_server(
    status: &'static str,
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = posts.clone();
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut request = vec![0u8; length];
            let _ = reader.read_exact(&mut request);
            let (status, text) = if head.starts_with("GET /v1/models") {
                (
                    "200 OK",
                    r#"{"object":"list","data":[{"id":"tiny","object":"model"}]}"#,
                )
            } else {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (status, body)
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = reader.get_mut().write_all(reply.as_bytes());
        }
    });
    (url, posts)
}

const OVERLOADED: (&str, &str) = (
    "503 Service Unavailable",
    r#"{"error":{"message":"overloaded"}}"#,
);

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
    let stdout = ok(vlm_eval(
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
    let out = Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(["score", "--tasks", "mme", "--predictions", "/dev/null"])
        .arg("--data-dir")
        .arg(tmp.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", tmp.path())
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
    let out = Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(["score", "--tasks", "mmu", "--predictions", "/dev/null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown task `mmu`; known: mme, mmmu_val"),
        "{err}"
    );
}

/// The same value, with lmms-eval's `{"float": "inf"}` spelling of non-finite numbers read
/// as ours (`"inf"`), and open-answer candidates compared as sets.
fn normalize_parsed(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.contains_key("float") => o["float"].clone(),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalize_parsed).collect();
            items.sort_by_key(|i| (i.is_string(), i.to_string()));
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// Numbers compared as f64 (lmms-eval's Python gives `1` where it computed an int).
fn same_number(got: &Value, want: &Value) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => got == want,
    }
}

/// The same JSON, numbers compared as f64.
fn same_json(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && b.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|g| same_json(g, v)))
        }
        _ => same_number(got, want),
    }
}

/// One task file's fixed predictions scored by `vlm-eval score`, against what lmms-eval's
/// own functions computed: every sample's filtered response and per-metric values, every
/// metric, its `_stderr` and its `_stderr_clt`, keyed `metric,filter`.
fn check_task_file_set(name: &str, task: &str, want: &Value, dir: &Path, out: &Path, hf: &Path) {
    let predictions = dir.join(format!("predictions_{name}.jsonl"));
    score(task, &predictions, out, hf);
    let results = json(&out.join("results.json"));
    let ours = &results["results"][task];
    for (kind, suffix) in [
        ("metrics", ""),
        ("stderr", "_stderr"),
        ("stderr_clt", "_stderr_clt"),
    ] {
        for (key, value) in want[kind].as_object().unwrap() {
            let (metric, filter) = key.split_once(',').unwrap();
            let got = &ours[format!("{metric}{suffix},{filter}")];
            assert!(
                same_number(got, value),
                "{name} {kind} {key}: {got} != {value}"
            );
        }
    }
    // No metric lmms-eval did not report (ChartQA's splits exist only with their rows).
    let reported = ours
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.contains(',') && !k.contains("_stderr"))
        .count();
    assert_eq!(
        reported,
        want["metrics"].as_object().unwrap().len(),
        "{name}: {ours}"
    );
    let samples = lines(&out.join(format!("samples_{task}.jsonl")));
    let want_samples = want["samples"].as_array().unwrap();
    assert_eq!(samples.len(), want_samples.len(), "{name}");
    for (i, (got, exp)) in samples.iter().zip(want_samples).enumerate() {
        assert_eq!(got["filtered_resps"], exp["filtered"], "{name} doc {i}");
        for (metric, value) in exp["results"].as_object().unwrap() {
            assert!(
                same_json(&got[metric], value),
                "{name} doc {i} {metric}: {} != {value} (response {})",
                got[metric],
                got["response"]
            );
        }
    }
}

#[test]
fn scoring_fixed_predictions_matches_lmms_eval_functions() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let dir = fixtures().join("eval-crosscheck");
    let expected = json(&dir.join("expected.json"));
    let sets = expected.as_object().unwrap();
    assert_eq!(sets.len(), 30);
    for (name, want) in sets {
        let task = name.rsplit_once('_').unwrap().0;
        if task.starts_with("mathvista") {
            check_mathvista_set(name, task, want, &dir, &tmp.path().join(name), &hf);
            continue;
        }
        if task != "mme" && task != "mmmu_val" {
            check_task_file_set(name, task, want, &dir, &tmp.path().join(name), &hf);
            continue;
        }
        let out = tmp.path().join(name);
        let predictions = dir.join(format!("predictions_{name}.jsonl"));
        score(task, &predictions, &out, &hf);
        let results = json(&out.join("results.json"));
        for (metric, value) in want["metrics"].as_object().unwrap() {
            assert_eq!(
                &results["results"][task][format!("{metric},none")],
                value,
                "{name} {metric}"
            );
        }
        for (metric, value) in want
            .get("stderr_clt")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            assert_eq!(
                &results["results"][task][format!("{metric}_stderr_clt,none")],
                value,
                "{name} {metric} stderr_clt"
            );
        }
        let details = &results["vlm"]["tasks"][task]["details"];
        if let Some(compat) = want.get("lmms_eval_0_4_mmmu_acc") {
            assert_eq!(
                &details["mmmu_acc_lmms_eval_0_4_open_scoring"], compat,
                "{name}: lmms-eval 0.4's open-question scoring"
            );
        }
        // MMMU's printed per-subject/domain dict, MME's logged category scores.
        let ours = if task == "mme" {
            &details["categories"]
        } else {
            &details["breakdown"]
        };
        let breakdown = want["breakdown"].as_object().unwrap();
        assert_eq!(
            ours.as_object().unwrap().len(),
            breakdown.len(),
            "{name}: {ours}"
        );
        for (key, value) in breakdown {
            assert_eq!(&ours[key], value, "{name} {key}");
        }
        let samples = lines(&out.join(format!("samples_{task}.jsonl")));
        let want_samples = want["samples"].as_array().unwrap();
        assert_eq!(samples.len(), want_samples.len());
        for (i, (got, exp)) in samples.iter().zip(want_samples).enumerate() {
            assert_eq!(
                normalize_parsed(&got["parsed"]),
                normalize_parsed(&exp["parsed"]),
                "{name} doc {i}: {}",
                got["response"]
            );
            assert_eq!(got["score"], exp["score"], "{name} doc {i}");
        }
    }
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
    ok(run(&url, &empty, &["--limit", "1"]));
    let samples = lines(&empty.join("samples_mme.jsonl"));
    assert_eq!(samples.len(), 2);
    for s in &samples {
        assert!(s.get("error").is_none(), "{s}");
        assert_eq!(s["response"], "");
        assert_eq!(s["parsed"], "other");
    }
}

const TASK_FILES: &str = "pope,scienceqa_img,ai2d,chartqa,textvqa_val,docvqa_val";

#[test]
fn shipped_task_files_run_in_process_and_served_with_identical_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let local = tmp.path().join("local");
    let stdout = in_process(&local, &hf, &["--tasks", TASK_FILES]);
    assert!(
        stdout.contains("|ai2d         |flexible-extract|"),
        "{stdout}"
    );

    let server = Server::start("llava-tiny-hub", &[]);
    let served = tmp.path().join("served");
    let v1 = server.v1();
    ok(vlm_eval(
        &[
            "--model",
            "tiny",
            "--base-url",
            &v1,
            "--concurrency",
            "4",
            "--tasks",
            TASK_FILES,
            "--output-dir",
            served.to_str().unwrap(),
        ],
        &hf,
    ));
    let results = json(&local.join("results.json"));
    for (task, rows) in [
        ("pope", 9),
        ("scienceqa_img", 10),
        ("ai2d", 10),
        ("chartqa", 10),
        ("textvqa_val", 9),
        ("docvqa_val", 8),
    ] {
        let file = format!("samples_{task}.jsonl");
        assert_eq!(
            read(&local.join(&file)),
            read(&served.join(&file)),
            "{file} differs between in-process and /v1"
        );
        assert_eq!(lines(&local.join(&file)).len(), rows, "{task}");
        assert_eq!(results["n-samples"][task]["effective"], rows);
        assert_eq!(results["versions"][task], "Yaml");
    }
    let r = &results["results"];
    assert!(r["ai2d"]["exact_match,flexible-extract"].is_f64(), "{r}");
    assert!(r["ai2d"]["exact_match_stderr,flexible-extract"].is_f64());
    assert!(r["docvqa_val"]["anls,none"].is_f64());
    assert_eq!(r["pope"]["pope_f1_score_stderr,none"], "N/A");
    assert!(r["chartqa"]["relaxed_human_split,none"].is_f64());
    let configs = &results["configs"];
    assert_eq!(configs["scienceqa_img"]["dataset_name"], "ScienceQA-IMG");
    assert_eq!(
        configs["textvqa_val"]["generation_kwargs"]["until"][0],
        "ASSISTANT:"
    );
    let details = &results["vlm"]["tasks"]["pope"]["details"]["by"]["category"];
    assert_eq!(details["adversarial"]["n"], 3, "{details}");

    // The prompts are lmms-eval's: hint as context and lettered choices, a capitalized
    // question, POPE's short-answer instruction.
    let sqa = lines(&local.join("samples_scienceqa_img.jsonl"));
    let input = sqa
        .iter()
        .map(|s| s["input"].as_str().unwrap())
        .find(|i| i.starts_with("Context: "))
        .expect("a row with a hint");
    assert!(input.contains("\nA. "), "{input}");
    assert!(input.ends_with("\nAnswer with the option's letter from the given choices directly."));
    let textvqa = lines(&local.join("samples_textvqa_val.jsonl"));
    for sample in &textvqa {
        let input = sample["input"].as_str().unwrap();
        assert!(input.starts_with(char::is_uppercase), "{input}");
        // The ten human answers are the target.
        assert!(sample["target"].as_str().unwrap().starts_with('['));
    }
}

/// A new yes/no benchmark, written as a task file by a user: it reuses the MME sample's
/// parquet under a new repository id, with its own prompt, metrics and breakdown.
#[test]
fn a_user_written_task_file_runs_with_no_code_change() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let data = tmp.path().join("data/acme/shapes-yn/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        eval_datasets().join("lmms-lab/MME/data/test-00000-of-00001.parquet"),
        data.join("test-00000-of-00001.parquet"),
    )
    .unwrap();
    let task_file = tmp.path().join("shapes_yn.toml");
    std::fs::write(
        &task_file,
        r#"
task = "shapes_yn"
description = "Yes/no questions about drawn shapes"
version = "1"

[dataset]
repo = "acme/shapes-yn"
split = "test"
id = "question_id"

[prompt]
images = ["image"]
text = "{{ pre_prompt }}{{ question | replace(' Please answer yes or no.', '') }}{{ post_prompt }}"
pre_prompt = "Look closely. "
post_prompt = "\nReply with yes or no."

[generation]
max_new_tokens = 8

[scoring]
target = "{{ answer | lower }}"
scorer = { kind = "yes_no" }
primary = "f1"
breakdown = ["category"]

[[metrics]]
name = "accuracy"
aggregation = "mean"

[[metrics]]
name = "f1"
aggregation = "f1"

[[metrics]]
name = "count_accuracy"
aggregation = "mean"
when = { column = "category", equals = "count" }
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let model = fixtures().join("llava-tiny-hub");
    let evaluate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
            .args(["--model", model.to_str().unwrap(), "--kv-cache-gb", "0.05"])
            .args(["--tasks", task_file.to_str().unwrap()])
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .arg("--output-dir")
            .arg(&out)
            .args(extra)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_CACHE", &hf)
            .output()
            .unwrap()
    };
    // Half the rows, then --resume answers only the rest.
    ok(evaluate(&["--limit", "10"]));
    let half = read(&out.join("predictions_shapes_yn.jsonl"));
    assert_eq!(half.lines().count(), 10);
    let resumed = ok(evaluate(&["--resume"]));
    assert!(resumed.contains("20 samples (10 resumed)"), "{resumed}");
    let full = read(&out.join("predictions_shapes_yn.jsonl"));
    assert!(full.starts_with(&half));
    // Editing the task file makes its earlier answers stale: kept aside, not resumed.
    let edited = read(&task_file).replace("Look closely. ", "Look again. ");
    std::fs::write(&task_file, &edited).unwrap();
    let again = evaluate(&["--resume"]);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    let again = ok(again);
    assert!(again.contains("20 samples (0 resumed)"), "{again}");
    assert!(stderr.contains("the task file changed"), "{stderr}");
    let aside: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("earlier_predictions_shapes_yn.")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(read(&aside[0].path()), full);
    let samples = lines(&out.join("samples_shapes_yn.jsonl"));
    assert!(samples[0]["input"]
        .as_str()
        .unwrap()
        .starts_with("Look again. "));

    // A column the dataset lacks fails before anything is generated, naming the key.
    std::fs::write(&task_file, edited.replace("{{ question |", "{{ questoin |")).unwrap();
    let failed = evaluate(&[]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("`prompt.text` uses `questoin`, which is neither a column"),
        "{stderr}"
    );
    std::fs::write(&task_file, &edited).unwrap();
    let results = json(&out.join("results.json"));
    let ours = &results["results"]["shapes_yn"];
    for key in [
        "accuracy,none",
        "f1,none",
        "count_accuracy,none",
        "accuracy_stderr,none",
    ] {
        assert!(ours[key].is_f64(), "{key}: {ours}");
    }
    assert_eq!(ours["f1_stderr,none"], "N/A");
    assert_eq!(results["versions"]["shapes_yn"], "1");
    let samples = lines(&out.join("samples_shapes_yn.jsonl"));
    assert_eq!(samples.len(), 20);
    let input = samples[0]["input"].as_str().unwrap();
    assert!(
        input.starts_with("Look again. ") && input.ends_with("?\nReply with yes or no."),
        "{input}"
    );
    assert!(samples[0]["accuracy"]["ground_truth"].is_string());
    let counted = samples
        .iter()
        .filter(|s| s.get("count_accuracy").is_some())
        .count();
    assert!(counted > 0 && counted < 20);

    // `vlm-eval tasks` checks and lists the file; a broken one is one line naming the key.
    let tasks = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
            .arg("tasks")
            .arg(file)
            .output()
            .unwrap()
    };
    let listed = ok(tasks(&task_file));
    assert!(
        listed.contains("shapes_yn") && listed.contains("acme/shapes-yn"),
        "{listed}"
    );
    let bad = tmp.path().join("bad.toml");
    for (text, says) in [
        (
            std::fs::read_to_string(&task_file)
                .unwrap()
                .replace("aggregation = \"f1\"", "aggregation = \"f2\""),
            "unknown variant `f2`",
        ),
        (
            std::fs::read_to_string(&task_file)
                .unwrap()
                .replace("kind = \"yes_no\"", "kind = \"exact_match\""),
            "`metrics[1].aggregation`: `f1` counts yes/no answers",
        ),
        (
            std::fs::read_to_string(&task_file)
                .unwrap()
                .replace("max_new_tokens = 8", "max_new_tokens = \"8\""),
            "`max_new_tokens`: invalid type",
        ),
        (
            std::fs::read_to_string(&task_file)
                .unwrap()
                .replace("{{ answer | lower }}", "{{ answer | lower }"),
            "`scoring.target`",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = tasks(&bad);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("bad.toml"),
            "{stderr}"
        );
    }
    // A task file may not take a built-in task's name.
    std::fs::write(
        &bad,
        std::fs::read_to_string(&task_file)
            .unwrap()
            .replace("task = \"shapes_yn\"", "task = \"pope\""),
    )
    .unwrap();
    let out = tasks(&bad);
    assert!(String::from_utf8_lossy(&out.stderr).contains("built-in task"));
}

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
    ok(vlm_eval(
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(["--model", "m", "--tasks", "mme", "--deploy"])
        .arg("sleep 50{port} & echo waiting on {port}; wait")
        .arg("--data-dir")
        .arg(eval_datasets())
        .arg("--output-dir")
        .arg(&dir)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", &hf)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
    let port = port_in(&read(&log));
    // The shell has forked `sleep`, which may not have started yet.
    let needle = format!("sleep\x0050{port}");
    while processes_now(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
    let child = Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(["--model", "tiny", "--concurrency", "4", "--tasks", tasks])
        .args(["--base-url", &a.v1(), "--base-url", &b.v1()])
        .arg("--data-dir")
        .arg(eval_datasets())
        .arg("--output-dir")
        .arg(&out)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", &hf)
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

/// A scripted OpenAI-compatible judge: answers each chat request by looking its prompt up
/// in `table` (else `default`), after `delay`, and records every prompt it was asked.
fn judge_server(
    table: std::collections::HashMap<String, String>,
    default: &'static str,
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let table = std::sync::Arc::new(table);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, table) = (log.clone(), table.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let text = if head.starts_with("GET") {
                    r#"{"object":"list","data":[{"id":"judge","object":"model"}]}"#.to_string()
                } else {
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let content = &request["messages"][0]["content"];
                    let prompt = content[0]["text"]
                        .as_str()
                        .or(content.as_str())
                        .unwrap_or_default()
                        .to_string();
                    std::thread::sleep(delay);
                    let reply = table
                        .get(&prompt)
                        .cloned()
                        .unwrap_or_else(|| default.into());
                    log.lock().unwrap().push(prompt);
                    serde_json::json!({"choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": reply}}]})
                    .to_string()
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = reader.get_mut().write_all(reply.as_bytes());
            });
        }
    });
    (url, seen)
}

/// MathVista's fixed predictions scored through a scripted judge answering as lmms-eval's
/// (faked) judge did: the same extractions, predictions and accuracy, per-key breakdown.
fn check_mathvista_set(name: &str, task: &str, want: &Value, dir: &Path, out: &Path, hf: &Path) {
    let table: std::collections::HashMap<String, String> =
        serde_json::from_str(&read(&dir.join(format!("judge_{name}.json")))).unwrap();
    let (judge, seen) = judge_server(
        table.clone(),
        "unexpected prompt",
        std::time::Duration::ZERO,
    );
    let predictions = dir.join(format!("predictions_{name}.jsonl"));
    ok(vlm_eval(
        &[
            "score",
            "--tasks",
            task,
            "--predictions",
            predictions.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--judge-url",
            &judge,
            "--judge-model",
            "judge",
        ],
        hf,
    ));
    let results = json(&out.join("results.json"));
    let ours = &results["results"][task];
    for (key, value) in want["metrics"].as_object().unwrap() {
        assert!(
            same_number(&ours[key], value),
            "{name} {key}: {} != {value}",
            ours[key]
        );
    }
    let samples = lines(&out.join(format!("samples_{task}.jsonl")));
    for (i, (got, exp)) in samples
        .iter()
        .zip(want["samples"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(got["input"], exp["prompt"], "{name} doc {i} prompt");
        let item = &got["llm_as_judge_eval"];
        for key in ["extraction", "prediction", "true_false"] {
            assert_eq!(
                item[key], exp[key],
                "{name} doc {i} {key}: {}",
                got["response"]
            );
        }
    }
    // The judge was asked exactly the prompts lmms-eval sent it, once each.
    let mut asked = seen.lock().unwrap().clone();
    let mut wanted: Vec<String> = want["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["judge_prompt"].as_str().map(str::to_string))
        .collect();
    asked.sort();
    wanted.sort();
    assert_eq!(asked, wanted, "{name}: judge prompts");
    let details = &results["vlm"]["tasks"][task]["details"];
    assert!(
        same_json(&details["average"], &want["average"]),
        "{name}: {details}"
    );
    // The per-key breakdown, in lmms-eval's order (accuracy descending, ties as found).
    let ours: Vec<Value> = details["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| {
            let key = k[0].clone();
            k[1].as_array()
                .unwrap()
                .iter()
                .map(move |v| serde_json::json!([key, v[0], v[1]]))
        })
        .collect();
    let theirs = want["breakdown"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{name}: {ours:?}");
    for (o, t) in ours.iter().zip(theirs) {
        assert!(
            same_json(&o[2], &t[2]) && o[0] == t[0] && o[1] == t[1],
            "{name}: {o} != {t}"
        );
    }
    assert_eq!(results["vlm"]["tasks"][task]["judge"]["model"], "judge");
}

#[test]
fn the_judge_sees_each_answer_once_across_a_kill_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    // A slow judge, one request at a time, so a run can be killed while it judges.
    let (judge, seen) = judge_server(
        std::collections::HashMap::new(),
        "A",
        std::time::Duration::from_millis(300),
    );
    let judge_flags = |c: &mut Command| {
        c.args(["--judge-url", &judge, "--judge-model", "judge"])
            .args(["--judge-concurrency", "1"])
            .arg("--data-dir")
            .arg(eval_datasets())
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_CACHE", &hf);
    };
    // Scoring fixed answers, killed after the judge's first verdicts, then run again.
    let fixtures_dir = fixtures().join("eval-crosscheck");
    let predictions = fixtures_dir.join("predictions_mathvista_testmini_cot_1.jsonl");
    let needed = json(&fixtures_dir.join("expected.json"))["mathvista_testmini_cot_1"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["judge_prompt"].is_string())
        .count();
    assert!(needed >= 3, "the fixture needs several judged answers");
    let scored = tmp.path().join("scored");
    let score = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vlm-eval"));
        c.args([
            "score",
            "--tasks",
            "mathvista_testmini_cot",
            "--predictions",
        ])
        .arg(&predictions)
        .arg("--output-dir")
        .arg(&scored);
        judge_flags(&mut c);
        c
    };
    let mut first = score()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = scored.join("judgments_mathvista_testmini_cot.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count()) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the judge was never asked"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let judged_before = read(&journal).lines().count();
    assert!(judged_before < needed, "killed too late to matter");
    ok(score().output().unwrap());
    // Each prompt reached the judge once (one may have been in flight at the kill).
    let asked = seen.lock().unwrap().clone();
    let mut unique = asked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), needed, "{asked:?}");
    assert!(
        asked.len() <= needed + 1,
        "asked {} times for {needed}",
        asked.len()
    );
    let results = json(&scored.join("results.json"));
    let judge_info = &results["vlm"]["tasks"]["mathvista_testmini_cot"]["judge"];
    assert_eq!(judge_info["model"], "judge");
    assert_eq!(judge_info["reused"], judged_before, "{judge_info}");
    assert!(judge_info["prompt_version"]
        .as_str()
        .unwrap()
        .starts_with("lmms-eval-0.7.3-mathvista:"));

    // An evaluation, then --resume of it: the judge is asked nothing the second time.
    let out = tmp.path().join("evaluated");
    let model = fixtures().join("llava-tiny-hub");
    let evaluate = |resume: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vlm-eval"));
        c.args(["--model", model.to_str().unwrap(), "--kv-cache-gb", "0.05"])
            .args([
                "--max-new-tokens",
                "48",
                "--tasks",
                "mathvista_testmini_cot",
            ])
            .arg("--output-dir")
            .arg(&out);
        judge_flags(&mut c);
        if resume {
            c.arg("--resume");
        }
        c.output().unwrap()
    };
    ok(evaluate(false));
    let before = seen.lock().unwrap().len();
    let resumed = ok(evaluate(true));
    assert!(resumed.contains("10 resumed"), "{resumed}");
    assert_eq!(seen.lock().unwrap().len(), before);

    // Without a judge, the answers it needs are one clear error.
    let no_judge = vlm_eval(
        &[
            "score",
            "--tasks",
            "mathvista_testmini_cot",
            "--predictions",
            predictions.to_str().unwrap(),
            "--output-dir",
            tmp.path().join("nojudge").to_str().unwrap(),
        ],
        &hf,
    );
    assert!(!no_judge.status.success());
    assert!(String::from_utf8_lossy(&no_judge.stderr).contains("need a judge model"));
}

#[test]
fn a_real_vlm_serve_can_be_the_judge() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let judge = Server::start("llava-tiny-hub", &[]);
    let dir = fixtures().join("eval-crosscheck");
    let out = tmp.path().join("out");
    ok(vlm_eval(
        &[
            "score",
            "--tasks",
            "mathvista_testmini_cot",
            "--predictions",
            dir.join("predictions_mathvista_testmini_cot_1.jsonl")
                .to_str()
                .unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--judge-url",
            &judge.v1(),
            "--judge-model",
            "tiny",
        ],
        &hf,
    ));
    let judged = read(&out.join("judgments_mathvista_testmini_cot.jsonl"));
    assert!(judged.lines().count() > 0);
    assert!(!judged.contains("\"error\""), "{judged}");
    let results = json(&out.join("results.json"));
    assert_eq!(
        results["vlm"]["tasks"]["mathvista_testmini_cot"]["judge"]["model"],
        "tiny"
    );
}

/// A task file whose answers a judge model scores: its prompt template, the exact-answer
/// shortcut, and the yes/no verdict; each answer judged once.
#[test]
fn a_task_file_can_score_through_a_judge() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let data = tmp.path().join("data/acme/judged-yn/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        eval_datasets().join("lmms-lab/MME/data/test-00000-of-00001.parquet"),
        data.join("test-00000-of-00001.parquet"),
    )
    .unwrap();
    let task_file = tmp.path().join("judged.toml");
    std::fs::write(
        &task_file,
        r#"
task = "judged_yn"
[dataset]
repo = "acme/judged-yn"
split = "test"
id = "question_id"
[prompt]
images = ["image"]
text = "{{ question }}"
[generation]
max_new_tokens = 8
[scoring]
target = "{{ answer }}"
scorer = { kind = "judge", verdict = "yes_no", skip_exact = true, prompt = "Question: {{ question }}\nReference: {{ target }}\nAnswer: {{ response }}\nIs the answer correct? Reply yes or no." }
[[metrics]]
name = "judge_accuracy"
aggregation = "mean"
"#,
    )
    .unwrap();
    // The judge accepts answers that start with the reference's word.
    let predictions = fixtures().join("eval-crosscheck/predictions_mme_1.jsonl");
    let responses: Vec<String> = read(&predictions)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["response"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let (judge, seen) = judge_server(
        std::collections::HashMap::new(),
        "No.",
        std::time::Duration::ZERO,
    );
    let out = tmp.path().join("out");
    let score = || {
        Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
            .args([
                "score",
                "--tasks",
                task_file.to_str().unwrap(),
                "--predictions",
            ])
            .arg(&predictions)
            .args(["--judge-url", &judge, "--judge-model", "judge"])
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .arg("--output-dir")
            .arg(&out)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_CACHE", &hf)
            .output()
            .unwrap()
    };
    ok(score());
    let samples = lines(&out.join("samples_judged_yn.jsonl"));
    let exact = samples
        .iter()
        .filter(|s| s["parsed"]["exact"] == true)
        .count();
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len() + exact, responses.len());
    assert!(
        exact > 0 && !asked.is_empty(),
        "{exact} exact, {} judged",
        asked.len()
    );
    assert!(asked[0].starts_with("Question: ") && asked[0].ends_with("Reply yes or no."));
    assert!(
        asked.iter().all(|p| p.contains("\nReference: ")),
        "{asked:?}"
    );
    let results = json(&out.join("results.json"));
    let value = results["results"]["judged_yn"]["judge_accuracy,none"]
        .as_f64()
        .unwrap();
    assert_eq!(value, exact as f64 / responses.len() as f64);
    let judge_info = &results["vlm"]["tasks"]["judged_yn"]["judge"];
    assert!(judge_info["prompt_version"]
        .as_str()
        .unwrap()
        .starts_with("judged_yn:YesNo:"));
    // Rescoring asks the judge nothing more.
    ok(score());
    assert_eq!(seen.lock().unwrap().len(), asked.len());

    // A prompt shared by several answers is asked once.
    let text = read(&task_file).replace(
        "prompt = \"Question: {{ question }}\\nReference: {{ target }}\\nAnswer: {{ response }}\\nIs the answer correct? Reply yes or no.\"",
        "prompt = \"Answer: {{ response }}. Correct? Reply yes or no.\"",
    );
    assert!(text.contains("Answer: {{ response }}. Correct?"), "{text}");
    std::fs::write(&task_file, text).unwrap();
    let before = seen.lock().unwrap().len();
    std::fs::remove_dir_all(&out).unwrap();
    ok(score());
    let samples = lines(&out.join("samples_judged_yn.jsonl"));
    let mut distinct: Vec<&str> = samples
        .iter()
        .filter(|s| s["parsed"]["exact"] != true)
        .map(|s| s["filtered_resps"].as_str().unwrap())
        .collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(seen.lock().unwrap().len() - before, distinct.len());
}

/// MMMU with a judge: its open questions also go to the judge, reported beside the exact
/// rule's `mmmu_acc`, which does not change.
#[test]
fn mmmu_open_questions_judged_beside_the_exact_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let predictions = fixtures().join("eval-crosscheck/predictions_mmmu_val_1.jsonl");
    let plain = tmp.path().join("plain");
    score("mmmu_val", &predictions, &plain, &hf);
    let (judge, seen) = judge_server(
        std::collections::HashMap::new(),
        "1",
        std::time::Duration::ZERO,
    );
    let judged = tmp.path().join("judged");
    ok(vlm_eval(
        &[
            "score",
            "--tasks",
            "mmmu_val",
            "--predictions",
            predictions.to_str().unwrap(),
            "--output-dir",
            judged.to_str().unwrap(),
            "--judge-url",
            &judge,
            "--judge-model",
            "judge",
        ],
        &hf,
    ));
    let a = json(&plain.join("results.json"));
    let b = json(&judged.join("results.json"));
    assert_eq!(a["results"]["mmmu_val"], b["results"]["mmmu_val"]);
    let extra = &b["vlm"]["tasks"]["mmmu_val"]["details"]["judged_open"];
    let open = extra["open_questions"].as_u64().unwrap();
    assert!(
        open > 0 && open as usize == seen.lock().unwrap().len(),
        "{extra}"
    );
    assert_eq!(extra["judged_correct"], open);
    assert!(seen.lock().unwrap()[0].starts_with("You are a strict evaluator"));
    assert!(a["vlm"]["tasks"]["mmmu_val"]["details"]
        .get("judged_open")
        .is_none());
}

/// `kill -9` of vlm-eval still stops the deployed server: the kernel tells its supervising
/// shell, which stops the group.
#[test]
fn a_killed_vlm_eval_leaves_no_deployed_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(["--model", "m", "--tasks", "mme", "--deploy"])
        .arg("echo waiting on {port}; sleep 60{port}")
        .arg("--data-dir")
        .arg(eval_datasets())
        .arg("--output-dir")
        .arg(&dir)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", tmp.path().join("hf"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
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
    let port = port_in(&read(&log));
    let needle = format!("sleep\x0060{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while processes_now(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        processes_with(&needle).is_empty(),
        "{:?}",
        processes_now(&needle)
    );
}
