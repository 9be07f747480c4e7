//! `vlm-eval sync`: our output folders and lmms-eval's results recorded in the store once.

use super::*;

#[test]
fn sync_records_our_folders_and_lmms_eval_results_once() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let ours = work.path().join("ours");
    succeeded(&run(
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
    let first = succeeded(&run(&["sync", "--db", &db, dirs[0], dirs[1]], &cache));
    assert!(first.contains("3 run(s) recorded"), "{first}");
    let again = succeeded(&run(&["sync", "--db", &db, dirs[0], dirs[1]], &cache));
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
    let board: Vec<Value> = serde_json::from_str(&succeeded(&run(
        &["leaderboard", "--db", &db, "--task", "mme", "--json"],
        &cache,
    )))
    .unwrap();
    assert_eq!(board[0]["model"], "llava-hf/llava-1.5-7b-hf");
    assert_eq!(board[0]["rank"], 1);
}
