//! The dashboard in a real browser: headless Chromium over WebDriver sees the leaderboards,
//! a comparison, and a run executing during the test advance to completion without a reload.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dashboard::{free_port, get, start_dashboard, store_of_two_models, vlm_eval};
use common::root;
use serde_json::json;

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
