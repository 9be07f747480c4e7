//! Load test of `vlm-serve` over loopback, reported the way `vllm bench serve` reports:
//! request and token throughput, TTFT, TPOT and ITL percentiles. N concurrent streaming
//! clients send a fixed number of chat requests (one image + a question each, greedy,
//! `ignore_eos`, a fixed `max_tokens`).
//!
//! `cargo bench --bench serve_load -- --model DIR [--clients 8] [--requests 64]
//!  [--max-tokens 32] [--image FILE] [--threads N] [--no-logprobs]` starts the release `vlm-serve` on a
//! free loopback port; `--base-url http://127.0.0.1:PORT/v1` targets a running server
//! instead (loopback addresses only: this is a bounded local test, not a load generator).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

struct Options {
    model: Option<String>,
    base_url: Option<String>,
    clients: usize,
    requests: usize,
    max_tokens: usize,
    image: String,
    threads: Option<String>,
    logprobs: bool,
}

fn options() -> Options {
    let mut o = Options {
        model: None,
        base_url: None,
        clients: 8,
        requests: 64,
        max_tokens: 32,
        image: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/images/square.png"
        )
        .into(),
        threads: None,
        logprobs: true,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => o.model = Some(value()),
            "--base-url" => o.base_url = Some(value()),
            "--clients" => o.clients = value().parse().expect("--clients N"),
            "--requests" => o.requests = value().parse().expect("--requests N"),
            "--max-tokens" => o.max_tokens = value().parse().expect("--max-tokens N"),
            "--image" => o.image = value(),
            "--threads" => o.threads = Some(value()),
            "--no-logprobs" => o.logprobs = false,
            other => panic!("unknown flag {other}"),
        }
    }
    o
}

/// The server this run started; killed at the end.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(model: &str, threads: Option<&str>) -> (Spawned, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vlm-serve"));
    cmd.args([
        "--model",
        model,
        "--served-model-name",
        "bench",
        "--port",
        "0",
    ])
    .args(["--kv-cache-gb", "1"])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped());
    if let Some(t) = threads {
        cmd.args(["--threads", t]);
    }
    let mut child = cmd.spawn().expect("start vlm-serve");
    let stdout = child.stdout.take().expect("stdout");
    let spawned = Spawned(child);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        eprintln!("{line}");
        if let Some(i) = line.find("http://") {
            let url = line[i..]
                .split_whitespace()
                .next()
                .expect("url")
                .to_string();
            return (spawned, url);
        }
    }
    panic!("vlm-serve exited before printing its address");
}

#[derive(Default)]
struct Sample {
    ttft: f64,
    latency: f64,
    itls: Vec<f64>,
    output_tokens: usize,
    ok: bool,
}

async fn one_request(client: &reqwest::Client, url: &str, body: &Value) -> Sample {
    let logprobs = body["logprobs"].as_bool().unwrap_or(false);
    let start = Instant::now();
    let mut sample = Sample::default();
    let Ok(response) = client.post(url).json(body).send().await else {
        return sample;
    };
    if !response.status().is_success() {
        eprintln!("request failed: {}", response.status());
        return sample;
    }
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut last: Option<Instant> = None;
    while let Some(Ok(chunk)) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                sample.ok = true;
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if let Some(u) = v.get("usage").and_then(|u| u.get("completion_tokens")) {
                sample.output_tokens = u.as_u64().unwrap_or(0) as usize;
            }
            // A token arrived: text, or (for tokens that complete no character yet) its
            // logprob entry, which every token chunk carries when the request asks for it.
            // Without logprobs, any chunk with a choice counts, as `vllm bench serve`
            // stamps its TTFT.
            let has_token = v["choices"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["delta"]["content"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty() || !logprobs)
                        || c["logprobs"]["content"]
                            .as_array()
                            .is_some_and(|l| !l.is_empty())
                        || (!logprobs && c["delta"].get("role").is_some())
                })
            });
            if has_token {
                let now = Instant::now();
                match last {
                    None => sample.ttft = (now - start).as_secs_f64(),
                    Some(prev) => sample.itls.push((now - prev).as_secs_f64()),
                }
                last = Some(now);
            }
        }
    }
    sample.latency = start.elapsed().as_secs_f64();
    sample
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    println!(
        "{:<28} mean {:>8.2}  median {:>8.2}  p90 {:>8.2}  p99 {:>8.2}",
        format!("{name} (ms)"),
        mean * 1e3,
        percentile(&values, 50.0) * 1e3,
        percentile(&values, 90.0) * 1e3,
        percentile(&values, 99.0) * 1e3,
    );
}

fn main() {
    let o = options();
    let (_server, base) = match (&o.base_url, &o.model) {
        (Some(url), _) => {
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or("")
                .split(['/', ':'])
                .next()
                .unwrap_or("");
            assert!(
                ["127.0.0.1", "localhost", "[::1]"].contains(&host),
                "--base-url must be a loopback address, got {url}"
            );
            (None, url.trim_end_matches('/').to_string())
        }
        (None, Some(model)) => {
            let (s, url) = start_server(model, o.threads.as_deref());
            (Some(s), url)
        }
        (None, None) => panic!("give --model DIR (starts vlm-serve) or --base-url URL"),
    };
    let image = std::fs::read(&o.image).expect("read --image");
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&image)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("{base}/chat/completions");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let samples: Vec<Sample> = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client");
        let workers: Vec<_> = (0..o.clients)
            .map(|_| {
                let (client, url, next) = (client.clone(), url.clone(), next.clone());
                let (requests, max_tokens, data_url) = (o.requests, o.max_tokens, data_url.clone());
                let logprobs = o.logprobs;
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            break out;
                        }
                        let body = json!({
                            "model": "bench",
                            "stream": true,
                            "stream_options": {"include_usage": true},
                            "max_tokens": max_tokens,
                            "ignore_eos": true,
                            "temperature": 0,
                            "logprobs": logprobs,
                            "messages": [{"role": "user", "content": [
                                {"type": "image_url", "image_url": {"url": data_url}},
                                {"type": "text", "text": format!("Question {i}: describe the picture.")},
                            ]}],
                        });
                        out.push(one_request(&client, &url, &body).await);
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("worker"));
        }
        all
    });
    let duration = started.elapsed().as_secs_f64();
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
    let output: usize = ok.iter().map(|s| s.output_tokens).sum();
    println!("============ Serving Benchmark Result ============");
    println!("{:<40} {}", "Concurrent clients:", o.clients);
    println!("{:<40} {}", "Successful requests:", ok.len());
    println!("{:<40} {}", "Failed requests:", samples.len() - ok.len());
    println!("{:<40} {:.2}", "Benchmark duration (s):", duration);
    println!("{:<40} {}", "Total generated tokens:", output);
    println!(
        "{:<40} {:.2}",
        "Request throughput (req/s):",
        ok.len() as f64 / duration
    );
    println!(
        "{:<40} {:.2}",
        "Output token throughput (tok/s):",
        output as f64 / duration
    );
    report("TTFT", ok.iter().map(|s| s.ttft).collect());
    report(
        "TPOT",
        ok.iter()
            .filter(|s| s.output_tokens > 1)
            .map(|s| (s.latency - s.ttft) / (s.output_tokens - 1) as f64)
            .collect(),
    );
    report(
        "ITL",
        ok.iter().flat_map(|s| s.itls.iter().copied()).collect(),
    );
    report("E2E latency", ok.iter().map(|s| s.latency).collect());
}
