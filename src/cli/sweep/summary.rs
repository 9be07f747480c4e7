//! The table a sweep ends with: model x task, the primary metric, how each run ended, and
//! how long it took.

use vlm_eval::sweep::Sweep;
use vlm_eval::tasks;
use vlm_runs::Run;

/// How one model's task ended in this sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pending,
    /// Run now: the primary metric and seconds.
    Completed(Option<f64>, f64),
    /// Found finished in the store: not recomputed.
    Reused(Option<f64>),
    Failed(String),
}

impl Outcome {
    pub fn completed(run: &Run) -> Self {
        Outcome::Completed(run.primary_value, run.duration_s.unwrap_or(0.0))
    }

    pub fn reused(run: &Run) -> Self {
        Outcome::Reused(run.primary_value)
    }
}

pub struct Summary {
    tasks: Vec<String>,
    rows: Vec<(String, Vec<Outcome>)>,
}

impl Summary {
    pub fn new(sweep: &Sweep) -> Self {
        Self {
            tasks: sweep.tasks.clone(),
            rows: sweep
                .models
                .iter()
                .map(|m| (m.name.clone(), vec![Outcome::Pending; sweep.tasks.len()]))
                .collect(),
        }
    }

    pub fn set(&mut self, model: &str, task: &str, outcome: Outcome) {
        let Some(t) = self.tasks.iter().position(|x| x == task) else {
            return;
        };
        if let Some((_, row)) = self.rows.iter_mut().find(|(m, _)| m == model) {
            row[t] = outcome;
        }
    }

    pub fn fail_model(&mut self, model: &str, error: &str) {
        for task in self.tasks.clone() {
            self.set(model, &task, Outcome::Failed(error.into()));
        }
    }

    /// Why the sweep failed, if a run did.
    pub fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .rows
            .iter()
            .flat_map(|(m, row)| {
                row.iter()
                    .zip(&self.tasks)
                    .filter_map(move |(o, t)| match o {
                        Outcome::Failed(e) => Some(format!(
                            "{m} / {t}: {}",
                            e.lines().next().unwrap_or_default()
                        )),
                        _ => None,
                    })
            })
            .collect();
        (!failed.is_empty())
            .then(|| format!("{} run(s) failed: {}", failed.len(), failed.join("; ")))
    }

    pub fn table(&self) -> String {
        let mut lines = vec![format!(
            "{:<20} {:<10} {:<24} {:>10} {:<10} {:>8}",
            "model", "task", "metric", "value", "status", "time"
        )];
        for (model, row) in &self.rows {
            for (task, outcome) in self.tasks.iter().zip(row) {
                let (task, metric) = match tasks::resolve(task) {
                    Ok(t) => (t.name().to_string(), t.primary_key()),
                    Err(_) => (task.clone(), String::new()),
                };
                let value = |v: &Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
                let (value, status, time) = match outcome {
                    Outcome::Pending => ("-".into(), "pending".to_string(), "-".into()),
                    Outcome::Completed(v, s) => (value(v), "completed".into(), format!("{s:.1}s")),
                    Outcome::Reused(v) => (value(v), "reused".into(), "-".into()),
                    Outcome::Failed(_) => ("-".into(), "failed".into(), "-".into()),
                };
                lines.push(format!(
                    "{model:<20} {task:<10} {metric:<24} {value:>10} {status:<10} {time:>8}"
                ));
            }
        }
        lines.join("\n")
    }
}
