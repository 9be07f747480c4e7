//! Runs as the command line (`--json`) and the dashboard's API show them: metric names as
//! in results.json without lmms-eval's `,none` filter suffix, times in unix milliseconds.

use serde_json::{json, Map, Value};

use crate::records::{LeaderboardRow, Run};

/// Metric names without the `,none` filter suffix.
pub fn plain_metrics(metrics: &Map<String, Value>) -> Map<String, Value> {
    metrics
        .iter()
        .map(|(k, v)| (k.trim_end_matches(",none").to_string(), v.clone()))
        .collect()
}

impl Run {
    /// The run as JSON for people and tools.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id.as_str(),
            "model": self.model,
            "task": self.task,
            "status": self.status.as_str(),
            "metrics": self.metrics.as_ref().map(plain_metrics).unwrap_or_default(),
            "primary_metric": self.primary_metric,
            "primary_value": self.primary_value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "samples_per_s": self.samples_per_s,
            "host": self.host,
            "worker": self.worker,
            "heartbeat_at": self.heartbeat_at,
            "progress_done": self.progress_done,
            "progress_total": self.progress_total,
            "output_dir": self.output_dir,
            "error": self.error,
            "source": self.source.as_str(),
        })
    }
}

impl LeaderboardRow {
    /// The row as JSON for people and tools.
    pub fn view(&self) -> Value {
        json!({
            "rank": self.rank,
            "model": self.model,
            "run_id": self.run_id.as_str(),
            "metric": self.metric.trim_end_matches(",none"),
            "value": self.value,
            "metrics": plain_metrics(&self.other_metrics),
            "finished_at": self.finished_at,
        })
    }
}
