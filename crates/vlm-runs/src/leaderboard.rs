//! Ranks models on a task from their completed runs.
//!
//! Each model is represented by its best run on the metric (higher is better); among runs with
//! the same value the most recently finished wins. Rows are ordered by value, highest first,
//! and equal values share a rank ("1, 2, 2, 4"), listed most recent first.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::records::{LeaderboardRow, Run, RunStatus};

/// The leaderboard over `runs` on `metric`. Runs that are not completed, or whose metrics lack
/// a number for `metric`, are left out.
pub(crate) fn rank_best_runs(metric: &str, runs: &[Run]) -> Vec<LeaderboardRow> {
    let mut best_by_model: HashMap<&str, Candidate<'_>> = HashMap::new();
    for run in runs.iter().filter(|run| run.status == RunStatus::Completed) {
        let Some(candidate) = Candidate::new(metric, run) else {
            continue;
        };
        match best_by_model.get(run.model.as_str()) {
            Some(current) if current.cmp_rank(&candidate) != Ordering::Greater => {}
            _ => {
                best_by_model.insert(run.model.as_str(), candidate);
            }
        }
    }
    let mut best: Vec<Candidate<'_>> = best_by_model.into_values().collect();
    best.sort_by(|a, b| a.cmp_rank(b).then_with(|| a.run.model.cmp(&b.run.model)));

    let mut rows: Vec<LeaderboardRow> = Vec::with_capacity(best.len());
    for (index, candidate) in best.into_iter().enumerate() {
        let rank = match rows.last() {
            Some(previous) if previous.value == candidate.value => previous.rank,
            _ => u32::try_from(index + 1).unwrap_or(u32::MAX),
        };
        let mut other_metrics = candidate.run.metrics.clone().unwrap_or_default();
        other_metrics.remove(metric);
        rows.push(LeaderboardRow {
            rank,
            model: candidate.run.model.clone(),
            run_id: candidate.run.id.clone(),
            metric: metric.to_owned(),
            value: candidate.value,
            other_metrics,
            finished_at: candidate.run.finished_at,
        });
    }
    rows
}

/// A run with its value on the ranked metric.
struct Candidate<'a> {
    run: &'a Run,
    value: f64,
}

impl<'a> Candidate<'a> {
    fn new(metric: &str, run: &'a Run) -> Option<Candidate<'a>> {
        let value = run.metrics.as_ref()?.get(metric)?.as_f64()?;
        value.is_finite().then_some(Candidate { run, value })
    }

    fn recency(&self) -> (i64, &str) {
        (
            self.run.finished_at.unwrap_or(self.run.created_at),
            self.run.id.as_str(),
        )
    }

    /// `Less` when `self` ranks above `other`: higher value, then more recent.
    fn cmp_rank(&self, other: &Candidate<'_>) -> Ordering {
        other
            .value
            .total_cmp(&self.value)
            .then_with(|| other.recency().cmp(&self.recency()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::records::{RunId, RunSource};

    fn run(id: &str, model: &str, status: RunStatus, metrics: Value, finished_at: i64) -> Run {
        Run {
            id: RunId::from(id),
            model: model.to_owned(),
            task: "t".to_owned(),
            status,
            identity_key: id.to_owned(),
            config: Value::Null,
            metrics: metrics.as_object().cloned(),
            primary_metric: "acc".to_owned(),
            primary_value: None,
            created_at: 0,
            started_at: None,
            finished_at: Some(finished_at),
            duration_s: None,
            samples_per_s: None,
            host: None,
            worker: None,
            heartbeat_at: None,
            progress_done: None,
            progress_total: None,
            error: None,
            output_dir: None,
            source: RunSource::Run,
            details: None,
        }
    }

    #[test]
    fn best_run_per_model_with_shared_ranks() {
        let runs = vec![
            run(
                "a1",
                "a",
                RunStatus::Completed,
                json!({"acc": 0.5, "f1": 0.1}),
                10,
            ),
            run(
                "a2",
                "a",
                RunStatus::Completed,
                json!({"acc": 0.7, "f1": 0.2}),
                5,
            ),
            run("b1", "b", RunStatus::Completed, json!({"acc": 0.7}), 20),
            run("c1", "c", RunStatus::Completed, json!({"acc": 0.9}), 1),
            run("d1", "d", RunStatus::Completed, json!({"acc": 0.2}), 1),
            run("e1", "e", RunStatus::Failed, json!({"acc": 1.0}), 1),
            run("f1", "f", RunStatus::Completed, json!({"f1": 1.0}), 1),
            run("g1", "g", RunStatus::Completed, json!({"acc": "high"}), 1),
        ];
        let rows = rank_best_runs("acc", &runs);
        let summary: Vec<(u32, &str, &str)> = rows
            .iter()
            .map(|row| (row.rank, row.model.as_str(), row.run_id.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, "c", "c1"),
                (2, "b", "b1"),
                (2, "a", "a2"),
                (4, "d", "d1")
            ]
        );
        let mut expected_other = Map::new();
        expected_other.insert("f1".to_owned(), json!(0.2));
        assert_eq!(rows[2].other_metrics, expected_other);
        assert_eq!(rows[2].metric, "acc");
        assert_eq!(rows[2].value, 0.7);
    }

    #[test]
    fn equal_values_pick_the_most_recent_run() {
        let runs = vec![
            run("old", "a", RunStatus::Completed, json!({"acc": 0.5}), 10),
            run("new", "a", RunStatus::Completed, json!({"acc": 0.5}), 30),
            run("mid", "a", RunStatus::Completed, json!({"acc": 0.5}), 20),
        ];
        let rows = rank_best_runs("acc", &runs);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].run_id.as_str(), "new");
        assert_eq!(rows[0].finished_at, Some(30));
    }

    #[test]
    fn no_runs_no_rows() {
        assert!(rank_best_runs("acc", &[]).is_empty());
    }
}
