//! `vlm-eval` end to end: the shipped sample sets through the tiny fixture model, in-process
//! and against a running `vlm-serve`; resume, failures, rescoring, scoring against
//! lmms-eval's own functions on fixed predictions, task files, deployments and judges.
//! One test binary (a file per subject below), so the crate is linked once for them all.

#[path = "../common/mod.rs"]
mod common;

mod deploy;
mod judge;
mod runs;
mod scoring;
mod scripted_servers;
mod task_files;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures, Server};
use serde_json::Value;

fn eval_datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval-datasets")
}

/// Runs vlm-eval offline (no hub, an empty HF cache) with the shipped data.
fn vlm_eval(args: &[&str], hf_cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlm-eval"))
        .args(args)
        .arg("--data-dir")
        .arg(eval_datasets())
        .env("RUST_LOG", "error")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", hf_cache)
        .output()
        .expect("run vlm-eval")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vlm-eval failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `vlm-eval score` on one predictions file, which must succeed.
fn score(task: &str, predictions: &Path, out: &Path, hf: &Path) -> String {
    ok(vlm_eval(
        &[
            "score",
            "--tasks",
            task,
            "--predictions",
            predictions.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
        hf,
    ))
}

fn in_process(dir: &Path, hf: &Path, extra: &[&str]) -> String {
    let model = fixtures().join("llava-tiny-hub");
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--kv-cache-gb",
        "0.05",
        "--output-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(vlm_eval(&args, hf))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    read(path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
