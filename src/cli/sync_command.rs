//! `vlm-eval sync`: records runs from existing output folders (ours and lmms-eval's) in the
//! runs store, once: syncing the same file again adds nothing.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;
use vlm_eval::{read_results, results_files};
use vlm_runs::{ModelRecord, NewRun, RunResult, TaskRecord};

use super::store::Store;

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// The runs store: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: String,
    /// Output folders (searched for results.json and lmms-eval's *_results.json) or files.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

pub fn sync_command(args: SyncArgs) -> Result<()> {
    let store = Store::open(&args.db)?;
    let (mut added, mut known, mut skipped) = (0usize, 0usize, 0usize);
    for dir in &args.dirs {
        let files = results_files(dir);
        if files.is_empty() {
            bail!(
                "{} holds no results.json or *_results.json; pass an output folder of vlm-eval or lmms-eval",
                dir.display()
            );
        }
        for file in files {
            let run = match read_results(&file) {
                Ok(run) => run,
                Err(e) => {
                    eprintln!("vlm-eval sync: skipped {e}");
                    skipped += 1;
                    continue;
                }
            };
            let model = ModelRecord {
                name: run.model.clone(),
                display_name: run.model.clone(),
                reference: Some(run.model.clone()),
                base_url: None,
                settings: json!({"synced_from": run.producer}),
                params_b: None,
                created_at: 0,
            };
            // A model the store knows keeps its settings (a sweep's runnable entry).
            if store.call(|s| s.model(&model.name))?.is_none() {
                store.call(|s| s.upsert_model(&model))?;
            }
            let folder = file
                .parent()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
            for task in &run.tasks {
                let record = TaskRecord {
                    name: task.task.clone(),
                    display_name: task.task.clone(),
                    primary_metric: task.primary_metric.clone(),
                    created_at: 0,
                };
                if store.call(|s| s.task(&task.task))?.is_none() {
                    store.call(|s| s.upsert_task(&record))?;
                }
                let new = NewRun {
                    model: run.model.clone(),
                    task: task.task.clone(),
                    // The file's bytes and the task: the same results synced twice are one run.
                    identity_key: format!("sync:{}:{}", run.content_hash, task.task),
                    config: json!({"synced_from": run.producer,
                        "file": std::path::absolute(&file).unwrap_or_else(|_| file.clone())}),
                    primary_metric: task.primary_metric.clone(),
                    output_dir: folder.as_ref().map(|p| p.display().to_string()),
                };
                let result = RunResult {
                    metrics: task.metrics.clone(),
                    details: task.details.clone(),
                    duration_s: 0.0,
                    samples_per_s: 0.0,
                    output_dir: None,
                    finished_at: run.finished_at,
                };
                let recorded = match store.call(|s| s.record_synced(&new, &result)) {
                    Ok(recorded) => recorded,
                    Err(e) => {
                        eprintln!(
                            "vlm-eval sync: skipped {} / {} from {}: {e:#}",
                            run.model,
                            task.task,
                            file.display()
                        );
                        skipped += 1;
                        continue;
                    }
                };
                match recorded {
                    Some(id) => {
                        println!(
                            "recorded {} / {} from {} as {}",
                            run.model,
                            task.task,
                            file.display(),
                            id.as_str()
                        );
                        added += 1;
                    }
                    None => known += 1,
                }
            }
        }
    }
    println!("sync: {added} run(s) recorded, {known} already in the store, {skipped} skipped");
    Ok(())
}
