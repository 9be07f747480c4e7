//! The dashboard's API end to end: `vlm-eval dashboard` on a runs store filled by real
//! tiny-model runs, every route with its 400 / 401 / 404 / 409 cases, and path tricks
//! against the routes that read a run's files.

mod common;

use common::dashboard::{
    assert_error, get, post, run_of_model, start_dashboard, store_of_two_models,
};
use common::{fixtures, root};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_with_its_errors() {
    let work = tempfile::tempdir().unwrap();
    let (cache, db) = store_of_two_models(work.path());
    // A file outside every run folder, and a symlink to it from inside one.
    std::fs::write(work.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(
        work.path().join("secret.txt"),
        work.path().join("a/leak.txt"),
    )
    .unwrap();
    let dash = start_dashboard(&db, &cache, &["--api-key", "sesame"]);
    let api = format!("{}/api/evals", dash.base);

    // Tasks.
    let (s, tasks) = get(&format!("{api}/tasks")).await;
    assert_eq!(s, 200);
    assert_eq!(tasks.as_array().unwrap().len(), 2);
    let (s, mme) = get(&format!("{api}/tasks/mme")).await;
    assert_eq!(
        (s, mme["primary_metric"].as_str()),
        (200, Some("mme_perception_score"))
    );
    let (s, b) = get(&format!("{api}/tasks/pope")).await;
    assert_error(s, &b, 404);
    let new_task =
        r#"{"name": "mme", "display_name": "MME", "primary_metric": "mme_cognition_score"}"#;
    let (s, b) = post(&format!("{api}/tasks"), new_task, None).await;
    assert_error(s, &b, 401);
    let (s, b) = post(&format!("{api}/tasks"), new_task, Some("wrong")).await;
    assert_error(s, &b, 401);
    let (s, b) = post(
        &format!("{api}/tasks"),
        r#"{"name": "pope2"}"#,
        Some("sesame"),
    )
    .await;
    assert_error(s, &b, 400);
    let (s, b) = post(
        &format!("{api}/tasks"),
        r#"{"name": "mme", "primary_metric": "f1"}"#,
        Some("sesame"),
    )
    .await;
    assert_error(s, &b, 400);
    let (s, b) = post(&format!("{api}/tasks"), "{not json", Some("sesame")).await;
    assert_error(s, &b, 400);
    let (s, b) = post(&format!("{api}/tasks"), new_task, Some("sesame")).await;
    assert_eq!((s, b["display_name"].as_str()), (200, Some("MME")), "{b}");
    let restore =
        r#"{"name": "mme", "display_name": "MME", "primary_metric": "mme_perception_score"}"#;
    assert_eq!(
        post(&format!("{api}/tasks"), restore, Some("sesame"))
            .await
            .0,
        200
    );

    // Models.
    let (s, models) = get(&format!("{api}/models")).await;
    assert_eq!((s, models.as_array().unwrap().len()), (200, 2));
    let (s, m) = get(&format!("{api}/models/llava-tiny")).await;
    assert_eq!((s, m["name"].as_str()), (200, Some("llava-tiny")));
    let (s, b) = get(&format!("{api}/models/nobody")).await;
    assert_error(s, &b, 404);
    let (s, b) = post(&format!("{api}/models"), r#"{"name": "x"}"#, Some("sesame")).await;
    assert_error(s, &b, 400);
    let (s, b) = post(
        &format!("{api}/models"),
        r#"{"name": "x", "model": "m", "base_url": "http://h/v1"}"#,
        Some("sesame"),
    )
    .await;
    assert_error(s, &b, 400);
    let (s, b) = post(
        &format!("{api}/models"),
        r#"{"name": "x", "model": "m", "settings": {"dtyp": "f32"}}"#,
        Some("sesame"),
    )
    .await;
    assert_error(s, &b, 400);
    let new_model = json!({"name": "llava-plain", "display_name": "LLaVA tiny (plain layout)",
        "model": fixtures().join("llava-tiny").to_str().unwrap(),
        "settings": {"kv_cache_gb": 0.25}, "params_b": 0.001});
    let (s, b) = post(
        &format!("{api}/models"),
        &new_model.to_string(),
        Some("sesame"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["params_b"], 0.001);

    // Runs, leaderboards, queueing.
    let (s, runs) = get(&format!("{api}/tasks/mme/runs")).await;
    assert_eq!((s, runs.as_array().unwrap().len()), (200, 2));
    let (s, b) = get(&format!("{api}/tasks/nope/runs")).await;
    assert_error(s, &b, 404);
    let (s, b) = get(&format!("{api}/runs?status=done")).await;
    assert_error(s, &b, 400);
    let (s, board) = get(&format!("{api}/tasks/mmmu_val/leaderboard")).await;
    assert_eq!(s, 200);
    let board = board.as_array().unwrap();
    assert_eq!(board.len(), 2);
    assert_eq!(board[0]["rank"], 1);
    assert_eq!(board[0]["metric"], "mmmu_acc");
    assert!(board[0]["value"].as_f64() >= board[1]["value"].as_f64());
    let (s, b) = get(&format!("{api}/tasks/nope/leaderboard")).await;
    assert_error(s, &b, 404);
    let queue = format!("{api}/tasks/mme/runs");
    let (s, b) = post(&queue, r#"{"model_name": "llava-plain"}"#, None).await;
    assert_error(s, &b, 401);
    let (s, b) = post(&queue, r#"{"model_name": "nobody"}"#, Some("sesame")).await;
    assert_error(s, &b, 404);
    let (s, b) = post(
        &format!("{api}/tasks/not_a_task/runs"),
        r#"{"model_name": "llava-plain"}"#,
        Some("sesame"),
    )
    .await;
    assert_error(s, &b, 404);
    let (s, b) = post(&queue, r#"{"model": "llava-plain"}"#, Some("sesame")).await;
    assert_error(s, &b, 400);
    let body = json!({"model_name": "llava-plain", "limit": 4,
        "data_dir": root().join("eval-datasets").to_str().unwrap()})
    .to_string();
    let (s, queued) = post(&queue, &body, Some("sesame")).await;
    assert_eq!(s, 200, "{queued}");
    assert_eq!(queued["status"], "queued");
    let (s, b) = post(&queue, &body, Some("sesame")).await;
    assert_error(s, &b, 409);
    // A model recorded by a plain `--db` evaluation can be queued again as it ran, and
    // ten clients queueing the same run at once get one run.
    let again = json!({"model_name": "llava-tiny", "limit": 2,
        "data_dir": root().join("eval-datasets").to_str().unwrap()})
    .to_string();
    let races = (0..10).map(|_| post(&queue, &again, Some("sesame")));
    let outcomes = futures_util::future::join_all(races).await;
    let accepted = outcomes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|(s, _)| *s == 200 || *s == 409),
        "{outcomes:?}"
    );
    // Writing takes JSON only (no cross-site form or text/plain posts); wrong methods are
    // 405 in the same error shape; engine settings are checked as a sweep checks them.
    let text_plain = reqwest::Client::new()
        .post(format!("{api}/models"))
        .header("content-type", "text/plain")
        .bearer_auth("sesame")
        .body(r#"{"name": "csrf", "model": "m"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text_plain.status().as_u16(), 415);
    let wrong_method = reqwest::Client::new()
        .put(format!("{api}/runs"))
        .header("content-type", "application/json")
        .bearer_auth("sesame")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = wrong_method.status().as_u16();
    let body: Value = wrong_method.json().await.unwrap();
    assert_error(status, &body, 405);
    for bad in [
        r#"{"name": "neg", "model": "m", "settings": {"kv_cache_gb": -1}}"#,
        r#"{"name": "zero", "model": "m", "settings": {"devices": 0}}"#,
        r#"{"name": "ftp", "base_url": "ftp://x"}"#,
        r#"{"name": "p", "model": "m", "params_b": -5}"#,
    ] {
        let (s, b) = post(&format!("{api}/models"), bad, Some("sesame")).await;
        assert_error(s, &b, 400);
    }
    let (s, b) = get(&format!("{api}/runs/%FF")).await;
    assert_error(s, &b, 400);

    // One run in detail, its files and samples.
    let run_id = board[0]["run_id"].as_str().unwrap().to_string();
    let (s, run) = get(&format!("{api}/runs/{run_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(run["status"], "completed");
    assert!(
        run["details"]["domains"].is_object() || run["details"].is_object(),
        "{run}"
    );
    let (s, b) = get(&format!("{api}/runs/0000000000000000")).await;
    assert_error(s, &b, 404);
    let llava_mme = run_of_model(&runs, "llava-tiny");
    let (s, files) = get(&format!("{api}/runs/{llava_mme}/artifacts")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"results.json") && names.contains(&"samples_mme.jsonl"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"leak.txt"),
        "a symlink out of the folder is listed: {names:?}"
    );
    let results = reqwest::get(format!("{api}/runs/{llava_mme}/artifacts/results.json"))
        .await
        .unwrap();
    assert_eq!(results.status().as_u16(), 200);
    let results: Value = results.json().await.unwrap();
    assert!(results["results"]["mme"].is_object());
    for attack in [
        "..%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "..",
        "leak.txt",
        "a%2F..%2F..%2Fsecret.txt",
    ] {
        let r = reqwest::get(format!("{api}/runs/{llava_mme}/artifacts/{attack}"))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(status == 400 || status == 404, "{attack}: {status} {text}");
        assert!(
            !text.contains("secret") || text.contains("error"),
            "{attack}: {text}"
        );
        assert!(!text.contains("root:"), "{attack}: {text}");
    }
    let (s, b) = get(&format!("{api}/runs/{llava_mme}/artifacts/missing.json")).await;
    assert_error(s, &b, 404);
    // Files the routes read themselves are held to the folder too: a samples file or log
    // that is a symlink out of it is refused, never read.
    let other = work.path().join("b");
    std::fs::write(
        work.path().join("outside.jsonl"),
        "{\"doc_id\": 0, \"score\": 1.0, \"input\": \"LEAKED\"}\n",
    )
    .unwrap();
    let samples_file = other.join("samples_mmmu_val.jsonl");
    std::fs::remove_file(&samples_file).unwrap();
    std::os::unix::fs::symlink(work.path().join("outside.jsonl"), &samples_file).unwrap();
    std::os::unix::fs::symlink(work.path().join("secret.txt"), other.join("vlm-eval.log")).unwrap();
    let qwen_mmmu = get(&format!("{api}/runs?model=qwen2-vl-tiny&task=mmmu_val"))
        .await
        .1[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = get(&format!("{api}/runs/{qwen_mmmu}/samples")).await;
    assert_error(s, &b, 400);
    assert!(!b.to_string().contains("LEAKED"));
    let events = reqwest::get(format!("{api}/runs/{qwen_mmmu}/events"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !events.contains("secret") && events.contains("event: final"),
        "{events}"
    );
    let (s, page) = get(&format!("{api}/runs/{llava_mme}/samples?limit=2")).await;
    assert_eq!(s, 200);
    assert_eq!(page["samples"].as_array().unwrap().len(), 2);
    let total = page["total"].as_u64().unwrap();
    assert!(total >= 4, "{page}");
    let (_, wrong) = get(&format!(
        "{api}/runs/{llava_mme}/samples?correct=false&limit=1000"
    ))
    .await;
    let (_, right) = get(&format!(
        "{api}/runs/{llava_mme}/samples?correct=true&limit=1000"
    ))
    .await;
    assert_eq!(
        wrong["total"].as_u64().unwrap() + right["total"].as_u64().unwrap(),
        total
    );
    assert!(wrong["samples"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["correct"] == false));
    // Thumbnails: the sample's images from the task's dataset.
    let doc = page["samples"][0]["doc_id"].as_u64().unwrap();
    let image = reqwest::get(format!("{api}/runs/{llava_mme}/samples/{doc}/images/0"))
        .await
        .unwrap();
    assert_eq!(image.status().as_u16(), 200);
    let kind = image.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("image/"), "{kind}");
    assert!(!image.bytes().await.unwrap().is_empty());
    let (s, b) = get(&format!("{api}/runs/{llava_mme}/samples/{doc}/images/9")).await;
    assert_error(s, &b, 404);
    let (s, b) = get(&format!("{api}/runs/{llava_mme}/samples/x/images/0")).await;
    assert_error(s, &b, 400);
    let (s, b) = get(&format!("{api}/runs/{llava_mme}/samples?limit=0")).await;
    assert_error(s, &b, 400);
    let (s, b) = get(&format!("{api}/runs/{llava_mme}/samples?offset=-1")).await;
    assert_error(s, &b, 400);

    // Compare two runs of one task; runs of different tasks cannot be.
    let qwen_mme = run_of_model(&runs, "qwen2-vl-tiny");
    let (s, c) = get(&format!("{api}/compare?a={llava_mme}&b={qwen_mme}")).await;
    assert_eq!(s, 200, "{c}");
    let p = &c["paired"];
    assert_eq!(p["samples"].as_u64(), Some(total));
    let p_value = p["mcnemar_exact_p"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p_value));
    assert_eq!(
        c["disagreements"].as_array().unwrap().len() as u64,
        p["only_a_right"].as_u64().unwrap() + p["only_b_right"].as_u64().unwrap()
    );
    let (s, b) = get(&format!("{api}/compare?a={llava_mme}&b={run_id}")).await;
    assert_error(s, &b, 400);
    let (s, b) = get(&format!("{api}/compare?a={llava_mme}")).await;
    assert_error(s, &b, 400);

    // A finished run's events: its state, then the stream closes.
    let text = reqwest::get(format!("{api}/runs/{llava_mme}/events"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("event: status") && text.contains("event: final"),
        "{text}"
    );
    let (s, b) = get(&format!("{api}/runs/nope/events")).await;
    assert_error(s, &b, 404);
    let (s, b) = get(&format!("{api}/no/such/route")).await;
    assert_error(s, &b, 404);

    // The page and its assets are served from the binary.
    let page = reqwest::get(format!("{}/", dash.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script src=\"/app.js\">"));
    let script = reqwest::get(format!("{}/app.js", dash.base)).await.unwrap();
    assert_eq!(script.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_can_be_protected_too() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf");
    let db = format!("sqlite://{}/runs.db", work.path().display());
    let dash = start_dashboard(&db, &cache, &["--api-key", "k", "--protect-reads"]);
    let (s, b) = get(&format!("{}/api/evals/tasks", dash.base)).await;
    assert_error(s, &b, 401);
    let r = reqwest::Client::new()
        .get(format!("{}/api/evals/tasks", dash.base))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
