//! The dashboard end to end: `vlm-eval dashboard` on a runs store filled by real tiny-model
//! runs, every API route with its 400 / 401 / 404 / 409 cases and path tricks against the
//! artifact route, and live events of a run executing during the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, root, vlm_eval_command};
use serde_json::{json, Value};

fn vlm_eval(args: &[&str], hf_cache: &Path) -> Command {
    vlm_eval_command(args, hf_cache)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "vlm-eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Evaluates a tiny model on both tasks into `out`, recording in `db`.
fn evaluate(fixture: &str, name: &str, out: &Path, db: &str, cache: &Path, extra: &[&str]) {
    let mut args = vec![
        "--model",
        fixture,
        "--name",
        name,
        "--tasks",
        "mme,mmmu_val",
        "--limit",
        "4",
        "--output-dir",
        out.to_str().unwrap(),
        "--db",
        db,
        "--kv-cache-gb",
        "0.25",
    ];
    let data = root().join("eval-datasets");
    args.extend(["--data-dir", data.to_str().unwrap()]);
    args.extend_from_slice(extra);
    ok(vlm_eval(&args, cache).output().unwrap());
}

/// A runs store (in `dir`) holding both tiny models' runs of mme and mmmu_val, their
/// folders `dir/a` and `dir/b`; returns the HF cache and the store's URL.
fn store_of_two_models(dir: &Path) -> (PathBuf, String) {
    let cache = dir.join("hf");
    let db = format!("sqlite://{}/runs.db", dir.display());
    for (fixture, name, folder) in [
        ("llava-tiny-hub", "llava-tiny", "a"),
        ("qwen2-vl-tiny-hub", "qwen2-vl-tiny", "b"),
    ] {
        let model = fixtures().join(fixture);
        evaluate(
            model.to_str().unwrap(),
            name,
            &dir.join(folder),
            &db,
            &cache,
            &[],
        );
    }
    (cache, db)
}

struct Dashboard {
    child: Child,
    base: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_dashboard(db: &str, cache: &Path, extra: &[&str]) -> Dashboard {
    let port = free_port();
    let mut args = vec!["dashboard", "--db", db, "--port"];
    let port_text = port.to_string();
    args.push(&port_text);
    args.extend_from_slice(extra);
    let child = vlm_eval(&args, cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the dashboard never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Dashboard { child, base }
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(url: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

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
        &format!("{api}/tasks/pope/runs"),
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
    let llava_mme = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "llava-tiny")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
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
    let qwen_mme = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "qwen2-vl-tiny")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
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

/// A server answering like an OpenAI `/v1`, slowly (the live run's pace), with "A".
async fn slow_openai_server(delay: Duration) -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/v1/models",
            get(|| async {
                axum::Json(json!({"object": "list", "data": [{"id": "fake", "object": "model"}]}))
            }),
        )
        .route(
            "/v1/chat/completions",
            post(move || async move {
                tokio::time::sleep(delay).await;
                axum::Json(json!({
                    "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

/// chromedriver and Chromium, or a failure saying how to get them (never a silent skip).
fn browser_binaries() -> (PathBuf, PathBuf) {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .map(|dir| dir.join(n))
                .find(|p| p.is_file())
        })
    };
    let hint = "the dashboard's browser test needs Chromium and its WebDriver: \
                apt-get install chromium chromium-driver (.ci/run installs them)";
    let driver = find(&["chromedriver"]).expect(hint);
    let browser = find(&["chromium", "chromium-browser", "google-chrome"]).expect(hint);
    (driver, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_leaderboards_a_run_and_live_progress() {
    let (driver_bin, browser_bin) = browser_binaries();
    let work = tempfile::tempdir().unwrap();
    let (cache, db) = store_of_two_models(work.path());
    let dash = start_dashboard(&db, &cache, &[]);

    let driver_port = free_port();
    let mut driver = Command::new(&driver_bin)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": browser_bin, "args": ["--headless=new", "--no-sandbox",
            "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = fantoccini::ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("connect to chromedriver");
    let css = fantoccini::Locator::Css;
    let wait = Duration::from_secs(30);

    // The leaderboards: one row per model on each task.
    client.goto(&format!("{}/", dash.base)).await.unwrap();
    client
        .wait()
        .at_most(wait)
        .for_element(css("#lb-mme tbody tr"))
        .await
        .unwrap();
    let rows = client.find_all(css("#lb-mme tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2);
    let board = client
        .find(css("#lb-mme"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        board.contains("llava-tiny") && board.contains("qwen2-vl-tiny"),
        "{board}"
    );
    // Charts: the best run's breakdown bars and the metric over time.
    let charts = client.find_all(css("main svg")).await.unwrap();
    assert!(charts.len() >= 3, "{} charts", charts.len());
    let page = client.source().await.unwrap();
    assert!(page.contains("Science"), "MMMU's domains are drawn");

    // Two runs compared: deltas and McNemar's test.
    let (_, mme_runs) = get(&format!("{}/api/evals/tasks/mme/runs", dash.base)).await;
    let ids: Vec<&str> = mme_runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    client
        .goto(&format!(
            "{}/#/compare?a={}&b={}",
            dash.base, ids[0], ids[1]
        ))
        .await
        .unwrap();
    let out = client
        .wait()
        .at_most(wait)
        .for_element(css("#cmp-out h2"))
        .await
        .unwrap();
    assert_eq!(out.text().await.unwrap(), "Metrics (B − A)");
    let compared = client
        .find(css("#cmp-out"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(compared.contains("McNemar's exact test: p ="), "{compared}");

    // A run executing during the test, watched on its page without a reload.
    let server = slow_openai_server(Duration::from_millis(450)).await;
    let live_out = work.path().join("live");
    let mut live = vlm_eval(
        &[
            "--model",
            "fake",
            "--name",
            "live",
            "--base-url",
            &server,
            "--concurrency",
            "1",
            "--tasks",
            "mmmu_val",
            "--data-dir",
            root().join("eval-datasets").to_str().unwrap(),
            "--output-dir",
            live_out.to_str().unwrap(),
            "--db",
            &db,
        ],
        &cache,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let api = format!("{}/api/evals", dash.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    let live_id = loop {
        let (_, runs) = get(&format!("{api}/runs?model=live")).await;
        if let Some(id) = runs
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["id"].as_str())
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the live run never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client
        .goto(&format!("{}/#/run/{live_id}", dash.base))
        .await
        .unwrap();
    client
        .wait()
        .at_most(wait)
        .for_element(css("#progress-text"))
        .await
        .unwrap();
    client
        .execute("window.__sameLoad = 'yes'; return null;", vec![])
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = client
            .find(css("#progress-text"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if seen.last() != Some(&text) {
            seen.push(text);
        }
        let finished = client
            .find(css("#live"))
            .await
            .unwrap()
            .attr("data-final")
            .await
            .unwrap();
        if finished.is_some() {
            assert_eq!(finished.as_deref(), Some("completed"), "{seen:?}");
            let last = client
                .find(css("#progress-text"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if seen.last() != Some(&last) {
                seen.push(last);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished on the page: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(live.wait().unwrap().success());
    let same_load = client
        .execute("return window.__sameLoad || null;", vec![])
        .await
        .unwrap();
    assert_eq!(same_load, json!("yes"), "the page reloaded");
    // Progress advanced on the page: a partial count, then the whole.
    let counts: Vec<(u64, u64)> = seen
        .iter()
        .filter_map(|t| {
            let (done, rest) = t.split_once(" / ")?;
            let total = rest.split_whitespace().next()?;
            Some((done.parse().ok()?, total.parse().ok()?))
        })
        .collect();
    assert!(
        counts.iter().any(|(d, t)| d < t),
        "no partial progress seen: {seen:?}"
    );
    assert!(counts.last().is_some_and(|(d, t)| d == t), "{seen:?}");
    let status = client
        .find(css("h1 .status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "completed");
    let acc = client
        .find(css("[data-metric='mmmu_acc']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!acc.is_empty(), "the final metrics are shown");

    // The sample browser: thumbnails from the dataset, and "wrong only".
    client
        .wait()
        .at_most(wait)
        .for_element(css("#samples img.thumb"))
        .await
        .unwrap();
    let loaded = client
        .execute(
            "return [...document.querySelectorAll('#samples img.thumb')].filter(i => i.complete && i.naturalWidth > 0).length;",
            vec![],
        )
        .await
        .unwrap();
    assert!(loaded.as_u64() > Some(0), "no thumbnail loaded");
    client
        .find(css("#wrong-only"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let verdicts = client.find_all(css("#samples td.right")).await.unwrap();
    assert!(
        verdicts.is_empty(),
        "right answers shown under 'wrong only'"
    );
    client
        .find(css("#wrong-only"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The progress bar's last step is animated; the file list is fetched again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let files = client
        .find(css("#files"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(files.contains("results.json"), "{files}");
    let png = client.screenshot().await.unwrap();
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-live-run.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    eprintln!("screenshot: {}; progress seen: {seen:?}", shot.display());
    client.close().await.unwrap();
    let _ = driver.kill();
    let _ = driver.wait();
}
