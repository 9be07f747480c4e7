//! The plain records the store reads and writes: models, tasks, runs and what callers pass in.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which database a [`crate::RunStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A run's id: 16 lowercase hex characters made by the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A fresh random id (64 random bits as 16 hex characters).
    pub(crate) fn random() -> RunId {
        RunId(format!("{:016x}", rand::random::<u64>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for RunId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for RunId {
    fn from(id: String) -> RunId {
        RunId(id)
    }
}

impl From<&str> for RunId {
    fn from(id: &str) -> RunId {
        RunId(id.to_owned())
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl RunStatus {
    /// The text stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }

    /// Parses the stored text; `None` for anything else.
    pub fn parse(text: &str) -> Option<RunStatus> {
        match text {
            "queued" => Some(RunStatus::Queued),
            "running" => Some(RunStatus::Running),
            "completed" => Some(RunStatus::Completed),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }

    /// Completed and failed runs are final: they take no more updates.
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run got into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunSource {
    /// Enqueued for a worker or recorded by a CLI run as it ran.
    Run,
    /// Backfilled from results found on disk ([`crate::RunStore::record_synced`]).
    Sync,
}

impl RunSource {
    /// The text stored in the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RunSource::Run => "run",
            RunSource::Sync => "sync",
        }
    }

    /// Parses the stored text; `None` for anything else.
    pub fn parse(text: &str) -> Option<RunSource> {
        match text {
            "run" => Some(RunSource::Run),
            "sync" => Some(RunSource::Sync),
            _ => None,
        }
    }
}

/// A model that runs can name. `created_at` is set by the store on first insert and ignored by
/// [`crate::RunStore::upsert_model`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub display_name: String,
    /// A model alias, directory or hub id; `None` when the model is only reached by `base_url`.
    pub reference: Option<String>,
    /// An OpenAI-compatible server's URL; `None` for a model loaded in process.
    pub base_url: Option<String>,
    /// Free-form settings (stored as JSON text).
    pub settings: Value,
    /// Parameter count in billions, when known.
    pub params_b: Option<f64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A task that runs can name. `created_at` is set by the store on first insert and ignored by
/// [`crate::RunStore::upsert_task`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub name: String,
    pub display_name: String,
    /// The metric a leaderboard ranks by (higher is better).
    pub primary_metric: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What a caller supplies to enqueue, start or backfill a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub model: String,
    pub task: String,
    /// A hash of what makes two runs the same (model, task, settings): finds earlier results.
    pub identity_key: String,
    /// What a worker needs to run it, e.g. the model spec and task settings.
    pub config: Value,
    pub primary_metric: String,
    pub output_dir: Option<String>,
}

/// What a finished run produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Metric name to number; the run's primary metric is looked up here.
    pub metrics: Map<String, Value>,
    /// Anything finer, e.g. a per-category breakdown.
    pub details: Option<Value>,
    pub duration_s: f64,
    pub samples_per_s: f64,
    /// Replaces the run's output directory when `Some`; kept when `None`.
    pub output_dir: Option<String>,
    /// When the run finished (unix ms); `None` means now. Backfills pass the original time.
    pub finished_at: Option<i64>,
}

/// One run with every stored column. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub model: String,
    pub task: String,
    pub status: RunStatus,
    pub identity_key: String,
    pub config: Value,
    /// `None` until the run completes.
    pub metrics: Option<Map<String, Value>>,
    pub primary_metric: String,
    pub primary_value: Option<f64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_s: Option<f64>,
    pub samples_per_s: Option<f64>,
    pub host: Option<String>,
    pub worker: Option<String>,
    pub heartbeat_at: Option<i64>,
    pub progress_done: Option<i64>,
    pub progress_total: Option<i64>,
    pub error: Option<String>,
    pub output_dir: Option<String>,
    pub source: RunSource,
    pub details: Option<Value>,
}

/// Which runs [`crate::RunStore::runs`] lists; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    pub task: Option<String>,
    pub model: Option<String>,
    pub status: Option<RunStatus>,
}

/// One model's best completed run on a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// 1-based; equal values share a rank ("1, 2, 2, 4").
    pub rank: u32,
    pub model: String,
    pub run_id: RunId,
    /// The metric ranked by.
    pub metric: String,
    pub value: f64,
    /// The run's other metrics.
    pub other_metrics: Map<String, Value>,
    pub finished_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_round_trips() {
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
        ] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                Value::String(status.as_str().to_owned())
            );
        }
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn source_text_round_trips() {
        for source in [RunSource::Run, RunSource::Sync] {
            assert_eq!(RunSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(RunSource::parse("import"), None);
    }

    #[test]
    fn random_ids_are_16_hex_and_differ() {
        let a = RunId::random();
        let b = RunId::random();
        assert_eq!(a.len(), 16);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            Value::String(a.0.clone())
        );
    }
}
