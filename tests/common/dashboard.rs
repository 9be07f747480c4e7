//! The dashboard tests' shared setup: a runs store filled by real tiny-model runs, the
//! `vlm-eval dashboard` process on a free port, and JSON requests against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{fixtures, root, succeeded, vlm_eval_command};

pub fn vlm_eval(args: &[&str], hf_cache: &Path) -> Command {
    vlm_eval_command(args, hf_cache)
}

/// Evaluates a tiny model on both tasks into `out`, recording in `db`.
pub fn evaluate(fixture: &str, name: &str, out: &Path, db: &str, cache: &Path, extra: &[&str]) {
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
    succeeded(&vlm_eval(&args, cache).output().unwrap());
}

/// A runs store (in `dir`) holding both tiny models' runs of mme and mmmu_val, their
/// folders `dir/a` and `dir/b`; returns the HF cache and the store's URL.
pub fn store_of_two_models(dir: &Path) -> (PathBuf, String) {
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

pub struct Dashboard {
    child: Child,
    pub base: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `--port 0`, and the address read back from its start-up line (a port picked here and
/// released could be taken by another test's server meanwhile).
pub fn start_dashboard(db: &str, cache: &Path, extra: &[&str]) -> Dashboard {
    let mut args = vec!["dashboard", "--db", db, "--port", "0"];
    args.extend_from_slice(extra);
    let mut child = vlm_eval(&args, cache)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("the dashboard never listened");
        };
        if let Some(i) = line.find("dashboard: http://") {
            let url = line[i + "dashboard: ".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            break url.trim_end_matches('/').to_string();
        }
    };
    Dashboard { child, base }
}

pub async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn post(url: &str, body: &str, key: Option<&str>) -> (u16, Value) {
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

pub fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

/// The id of `model`'s run in a runs listing.
pub fn run_of_model(runs: &Value, model: &str) -> String {
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no run of {model} in {runs}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}
