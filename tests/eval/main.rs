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

use common::{fixtures, root, succeeded, vlm_eval_command, Server};
use serde_json::Value;

fn eval_datasets() -> PathBuf {
    root().join("eval-datasets")
}

/// `vlm-eval` offline (`common::vlm_eval_command`) with the shipped data.
fn vlm_eval_with_data(args: &[&str], hf_cache: &Path) -> Command {
    let mut command = vlm_eval_command(args, hf_cache);
    command.arg("--data-dir").arg(eval_datasets());
    command
}

/// Runs `vlm-eval` offline with the shipped data.
fn vlm_eval(args: &[&str], hf_cache: &Path) -> Output {
    vlm_eval_with_data(args, hf_cache)
        .output()
        .expect("run vlm-eval")
}

/// `vlm-eval score` on one predictions file, which must succeed.
fn score(task: &str, predictions: &Path, out: &Path, hf: &Path) -> String {
    succeeded(&vlm_eval(
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
    succeeded(&vlm_eval(&args, hf))
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
