//! Task files: the shipped ones in-process and served, and one a user writes.

use super::*;

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
    succeeded(&vlm_eval(
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
        vlm_eval_command(
            &["--model", model.to_str().unwrap(), "--kv-cache-gb", "0.05"],
            &hf,
        )
        .args(["--tasks", task_file.to_str().unwrap()])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--output-dir")
        .arg(&out)
        .args(extra)
        // The stale-answers warning below is read from stderr.
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
    };
    // Half the rows, then --resume answers only the rest.
    succeeded(&evaluate(&["--limit", "10"]));
    let half = read(&out.join("predictions_shapes_yn.jsonl"));
    assert_eq!(half.lines().count(), 10);
    let resumed = succeeded(&evaluate(&["--resume"]));
    assert!(resumed.contains("20 samples (10 resumed)"), "{resumed}");
    let full = read(&out.join("predictions_shapes_yn.jsonl"));
    assert!(full.starts_with(&half));
    // Editing the task file makes its earlier answers stale: kept aside, not resumed.
    let edited = read(&task_file).replace("Look closely. ", "Look again. ");
    std::fs::write(&task_file, &edited).unwrap();
    let again = evaluate(&["--resume"]);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    let again = succeeded(&again);
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
    // Rescoring checks the file against the rows too.
    let rescored = vlm_eval_command(
        &[
            "score",
            "--tasks",
            task_file.to_str().unwrap(),
            "--predictions",
        ],
        &hf,
    )
    .arg(out.join("predictions_shapes_yn.jsonl"))
    .arg("--data-dir")
    .arg(tmp.path().join("data"))
    .arg("--output-dir")
    .arg(tmp.path().join("rescored"))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&rescored.stderr);
    assert!(
        !rescored.status.success() && stderr.contains("uses `questoin`"),
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
        vlm_eval_command(&["tasks"], &hf)
            .arg(file)
            .output()
            .unwrap()
    };
    let listed = succeeded(&tasks(&task_file));
    assert!(
        listed.contains("shapes_yn")
            && listed.contains("acme/shapes-yn")
            && listed.contains("Yes/no questions about drawn shapes"),
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
