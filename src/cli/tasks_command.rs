//! `vlm-eval tasks`: the tasks `--tasks` knows (name, dataset, metrics, and a task file's
//! description), and any task files given, checked as a run would check them.

use anyhow::Result;
use clap::Args;
use vlm_eval::tasks::{self, Task};

fn line(task: &dyn Task, origin: &str) -> String {
    let d = task.dataset();
    let dataset = match &d.config {
        Some(c) => format!("{} [{c}] {}", d.repo, d.split),
        None => format!("{} {}", d.repo, d.split),
    };
    let others: Vec<&str> = task
        .metric_names()
        .into_iter()
        .filter(|m| *m != task.primary_metric())
        .collect();
    let metrics = if others.is_empty() {
        task.primary_metric().to_string()
    } else {
        format!("{} (also {})", task.primary_metric(), others.join(", "))
    };
    let line = format!("{:<16} {dataset:<40} {metrics}  [{origin}]", task.name());
    match task.description() {
        Some(description) => format!("{line}\n{:<16} {description}", ""),
        None => line,
    }
}

#[derive(Args, Debug)]
pub struct TasksArgs {
    /// Task files (.toml) to check and list with the built-in tasks.
    files: Vec<String>,
}

/// Lists the built-in tasks, then checks and lists each task file given.
pub fn tasks_command(args: TasksArgs) -> Result<()> {
    let files = &args.files;
    // Every file is checked before anything is listed.
    let mut checked = Vec::new();
    for file in files {
        if !tasks::is_task_file(file) {
            anyhow::bail!("{file}: a task file's name ends in .toml");
        }
        checked.push((file, tasks::resolve(file)?));
    }
    println!("{:<16} {:<40} primary metric", "task", "dataset (split)");
    for name in tasks::names() {
        if let Some(task) = tasks::by_name(name) {
            let origin = if tasks::is_shipped_file(name) {
                "task file, built in"
            } else {
                "built in"
            };
            println!("{}", line(task.as_ref(), origin));
        }
    }
    for (file, task) in checked {
        println!("{}", line(task.as_ref(), file));
    }
    Ok(())
}
