//! Starting the real `vlm-serve` binary on a free loopback port for a test, and the
//! offline `vlm-eval` command line the eval, runs and dashboard tests share.

#![allow(dead_code)]

pub mod dashboard;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn image_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("images").join(name)).unwrap()
}

/// Waits (up to 30 s) for the engine to hold no KV blocks and run nothing: the response
/// reaches the client a moment before the engine's bookkeeping of the finished step.
pub async fn assert_blocks_return(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let used = metric(&server.base, "vlm:kv_cache_blocks_used").await;
        let running = metric(&server.base, "vlm:num_requests_running").await;
        if used == 0.0 && running == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "blocks still held: {used}, running {running}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A chat `image_url` content part.
pub fn image_part(url: &str) -> serde_json::Value {
    serde_json::json!({"type": "image_url", "image_url": {"url": url}})
}

pub fn data_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A running `vlm-serve`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
}

impl Server {
    /// `--port 0` and the address read back from the start-up line.
    pub fn start(model: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vlm-serve"))
            .args(["--model", fixtures().join(model).to_str().unwrap()])
            .args([
                "--served-model-name",
                "tiny",
                "--port",
                "0",
                "--kv-cache-gb",
                "0.02",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vlm-serve");
        let stdout = child.stdout.take().unwrap();
        // Owned from here on, so a failed start still kills the process.
        let mut server = Server {
            child: Some(child),
            base: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("vlm-serve printed no start-up line");
            if let Some(i) = line.find("http://") {
                let url = line[i..].split_whitespace().next().unwrap();
                server.base = url.trim_end_matches("/v1").to_string();
                return server;
            }
        }
    }

    pub fn v1(&self) -> String {
        format!("{}/v1", self.base)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Waits for the process to exit by itself (after a signal) and returns its status.
    pub fn wait(mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("vlm-serve did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One Prometheus sample, e.g. `vlm:kv_cache_blocks_used`.
/// POSTs `body` as JSON; the status and the parsed response (which must be JSON).
pub async fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
    (status, value)
}

/// POSTs `body` as JSON and returns the raw response text (an SSE stream, read to its end).
pub async fn post_text(url: &str, body: &serde_json::Value) -> String {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The repository's root (fixtures, eval-datasets, examples).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `vlm-eval` offline (no hub, the given HF cache), quiet, with no store or key from the
/// environment.
pub fn vlm_eval_command(args: &[&str], hf_cache: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vlm-eval"));
    command
        .args(args)
        .env("RUST_LOG", "error")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", hf_cache)
        .env_remove("VLM_EVAL_DB")
        .env_remove("VLM_DASHBOARD_API_KEY");
    command
}

/// The stdout of a `vlm-eval` run that must have succeeded (else its stderr and stdout).
pub fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vlm-eval failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
