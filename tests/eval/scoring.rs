//! Scoring fixed predictions as lmms-eval 0.7.3's own functions scored them (the
//! cross-check sets in `tests/fixtures/eval-crosscheck`).

use super::*;
use crate::scripted_servers::judge_server;

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
    succeeded(&vlm_eval(
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
    let want_samples = want["samples"].as_array().unwrap();
    assert_eq!(samples.len(), want_samples.len(), "{name}");
    for (i, (got, exp)) in samples.iter().zip(want_samples).enumerate() {
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
