//! Sweeps and the runs store end to end: the real `vlm-eval` binary sweeping the two tiny
//! fixture models over the shipped sample sets on two CPU "devices", reuse and resume after
//! a kill, a failing model, bad configurations, reading the store back, backfilling it from
//! output folders, and two workers sharing a real PostgreSQL queue. One test binary, a file
//! per subject below.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../crates/vlm-runs/tests/postgres_server/mod.rs"]
#[allow(dead_code)]
mod postgres_server;

mod sweeps;
mod sync;
mod workers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, root, succeeded, vlm_eval_command};
use serde_json::Value;

fn vlm_eval(args: &[&str], hf_cache: &Path) -> Command {
    vlm_eval_command(args, hf_cache)
}

fn run(args: &[&str], hf_cache: &Path) -> Output {
    vlm_eval(args, hf_cache).output().expect("run vlm-eval")
}

/// Two CPU devices of one core each (the first two this process may use).
fn two_cpu_devices() -> [String; 2] {
    let cores = vlm_engine::available_cores();
    assert!(
        cores.len() >= 2,
        "the sweep tests need two cores, have {cores:?}"
    );
    [format!("cpu:{}", cores[0]), format!("cpu:{}", cores[1])]
}

/// A sweep file over both tiny models (plus `extra` models), tasks mme and mmmu_val.
fn write_sweep(dir: &Path, extra: &str) -> PathBuf {
    let [a, b] = two_cpu_devices();
    let text = format!(
        r#"
tasks = ["mme", "mmmu_val"]
data_dir = "{data}"
devices = ["{a}", "{b}"]

[[models]]
name = "llava-tiny"
model = "{llava}"
kv_cache_gb = 0.25
max_num_seqs = 2

[[models]]
name = "qwen2-vl-tiny"
model = "{qwen}"
kv_cache_gb = 0.25
{extra}
"#,
        data = root().join("eval-datasets").display(),
        llava = fixtures().join("llava-tiny-hub").display(),
        qwen = fixtures().join("qwen2-vl-tiny-hub").display(),
    );
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn runs_json(db: &str, extra: &[&str], hf_cache: &Path) -> Vec<Value> {
    let mut args = vec!["runs", "--db", db, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&succeeded(&run(&args, hf_cache))).unwrap()
}

fn completed(runs: &[Value]) -> Vec<&Value> {
    runs.iter().filter(|r| r["status"] == "completed").collect()
}

/// The primary metrics results.json holds for each task of a folder.
fn results_metrics(dir: &Path) -> Value {
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    results["results"].clone()
}
