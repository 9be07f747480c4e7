//! Judge models: a scripted judge and a real `vlm-serve` as judge, journaled judgments
//! across a kill, task files and MMMU's open questions scored through a judge.

use super::*;
use crate::scripted_servers::judge_server;

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
            .args(["--judge-concurrency", "1"]);
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
        let mut c = vlm_eval_with_data(
            &[
                "score",
                "--tasks",
                "mathvista_testmini_cot",
                "--predictions",
                predictions.to_str().unwrap(),
            ],
            &hf,
        );
        c.arg("--output-dir").arg(&scored);
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
    succeeded(&score().output().unwrap());
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
        let mut c = vlm_eval_with_data(
            &["--model", model.to_str().unwrap(), "--kv-cache-gb", "0.05"],
            &hf,
        );
        c.args([
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
    succeeded(&evaluate(false));
    let before = seen.lock().unwrap().len();
    let resumed = succeeded(&evaluate(true));
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
    succeeded(&vlm_eval(
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
        vlm_eval_command(
            &[
                "score",
                "--tasks",
                task_file.to_str().unwrap(),
                "--predictions",
            ],
            &hf,
        )
        .arg(&predictions)
        .args(["--judge-url", &judge, "--judge-model", "judge"])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap()
    };
    succeeded(&score());
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
    succeeded(&score());
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
    succeeded(&score());
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
    succeeded(&vlm_eval(
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
