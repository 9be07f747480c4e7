//! A run's life in the store: enqueue or start, claim, heartbeat, complete or fail, requeue,
//! and the queries over runs (lookups, listings, the leaderboard, idempotent backfill).

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::any::AnyArguments;
use sqlx::Any;

use crate::clock::{duration_ms, now_ms};
use crate::error::StoreError;
use crate::leaderboard::rank_best_runs;
use crate::records::{
    Backend, LeaderboardRow, NewRun, Run, RunFilter, RunId, RunResult, RunSource, RunStatus,
};
use crate::rows::{json_text, run_from_row, RUN_COLUMNS};
use crate::store::{require_name, RunStore};

type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Placeholders for every `runs` column, in [`RUN_COLUMNS`] order.
const RUN_PLACEHOLDERS: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
     $15, $16, $17, $18, $19, $20, $21, $22, $23";

/// The placeholder [`bind_run`] gives `identity_key`.
const IDENTITY_KEY_PLACEHOLDER: &str = "$5";

impl RunStore {
    /// Adds a run for a worker to claim; [`StoreError::AlreadyQueued`] when a run with the
    /// same identity is queued already (however many clients race to queue it).
    pub async fn enqueue(&self, new: &NewRun) -> Result<RunId, StoreError> {
        let run = run_from_new(new, RunStatus::Queued, RunSource::Run, now_ms())?;
        match self.insert(&run).await {
            Err(StoreError::Database(e))
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(StoreError::AlreadyQueued {
                    identity_key: new.identity_key.clone(),
                })
            }
            other => other.map(|()| run.id.clone()),
        }
    }

    /// Records a run that is starting now in this process (a CLI run recording itself).
    pub async fn start(&self, new: &NewRun, worker: &str, host: &str) -> Result<RunId, StoreError> {
        let now = now_ms();
        let mut run = run_from_new(new, RunStatus::Running, RunSource::Run, now)?;
        run.started_at = Some(now);
        run.heartbeat_at = Some(now);
        run.worker = Some(worker.to_owned());
        run.host = Some(host.to_owned());
        self.insert(&run).await?;
        Ok(run.id.clone())
    }

    /// Takes the oldest queued run and marks it running for `worker` on `host`; `None` when
    /// nothing is queued. Each queued run goes to exactly one claimer, however many race.
    pub async fn claim(&self, worker: &str, host: &str) -> Result<Option<Run>, StoreError> {
        // SQLite runs a writing statement under its single write lock, so one UPDATE is atomic;
        // PostgreSQL needs the row lock, skipping rows other claimers hold.
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE runs SET status = 'running', worker = $1, host = $2, started_at = $3, \
             heartbeat_at = $3, progress_done = NULL, progress_total = NULL \
             WHERE id = (SELECT id FROM runs WHERE status = 'queued' \
             ORDER BY created_at, id LIMIT 1{lock}) AND status = 'queued' \
             RETURNING {RUN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(host)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Says the running run `id` is alive, with its progress when given (else kept).
    pub async fn heartbeat(
        &self,
        id: &str,
        progress: Option<(u64, u64)>,
    ) -> Result<(), StoreError> {
        let (done, total) = match progress {
            Some((done, total)) => (Some(count_value(done)?), Some(count_value(total)?)),
            None => (None, None),
        };
        let updated = sqlx::query(
            "UPDATE runs SET heartbeat_at = $2, progress_done = COALESCE($3, progress_done), \
             progress_total = COALESCE($4, progress_total) \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(now_ms())
        .bind(done)
        .bind(total)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(self.status_error(id, "running").await);
        }
        Ok(())
    }

    /// Marks a queued or running run completed with its results. The primary value is the
    /// run's primary metric looked up in `result.metrics` (`None` when absent or not a number).
    pub async fn complete(&self, id: &str, result: &RunResult) -> Result<(), StoreError> {
        let run = self
            .get(id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(id.to_owned()))?;
        if run.status.is_finished() {
            return Err(wrong_status(&run, UNFINISHED));
        }
        // Not a cached statement: the Any driver declares a NULL double as float4, and a
        // statement prepared with that on one call rejects an 8-byte value on the next.
        let updated = sqlx::query(
            "UPDATE runs SET status = 'completed', metrics = $2, primary_value = $3, \
             details = $4, finished_at = $5, duration_s = $6, samples_per_s = $7, \
             output_dir = COALESCE($8, output_dir), error = NULL \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .persistent(false)
        .bind(id)
        .bind(json_text("run metrics", &result.metrics)?)
        .bind(primary_value(&result.metrics, &run.primary_metric))
        .bind(optional_json_text("run details", result.details.as_ref())?)
        .bind(result.finished_at.unwrap_or_else(now_ms))
        .bind(result.duration_s)
        .bind(result.samples_per_s)
        .bind(result.output_dir.as_deref())
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(self.status_error(id, UNFINISHED).await);
        }
        Ok(())
    }

    /// Marks a queued or running run failed with `error`.
    pub async fn fail(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE runs SET status = 'failed', finished_at = $2, error = $3 \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now_ms())
        .bind(error)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(self.status_error(id, UNFINISHED).await);
        }
        Ok(())
    }

    /// Puts running runs whose last heartbeat is older than `timeout` back in the queue, their
    /// worker, host, start, heartbeat and progress cleared. Returns how many. Runs recorded by
    /// [`RunStore::start`] are included: their config lets a worker run them again.
    pub async fn requeue_stale(&self, timeout: Duration) -> Result<u64, StoreError> {
        let now = now_ms();
        let cutoff = now.saturating_sub(duration_ms(timeout));
        // At most one queued run per identity (a unique index): a stale run whose identity
        // is already queued, or that a newer stale run of the same identity will stand for,
        // is failed as superseded instead of queued twice.
        sqlx::query(
            "UPDATE runs SET status = 'failed', finished_at = $2, \
             error = 'superseded: its worker stopped and the same run is queued again' \
             WHERE status = 'running' AND heartbeat_at < $1 AND (\
               EXISTS (SELECT 1 FROM runs q WHERE q.identity_key = runs.identity_key \
                       AND q.status = 'queued') \
               OR EXISTS (SELECT 1 FROM runs o WHERE o.identity_key = runs.identity_key \
                       AND o.status = 'running' AND o.heartbeat_at < $1 \
                       AND (o.created_at > runs.created_at \
                            OR (o.created_at = runs.created_at AND o.id > runs.id))))",
        )
        .bind(cutoff)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let updated = sqlx::query(
            "UPDATE runs SET status = 'queued', worker = NULL, host = NULL, started_at = NULL, \
             heartbeat_at = NULL, progress_done = NULL, progress_total = NULL \
             WHERE status = 'running' AND heartbeat_at < $1",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected())
    }

    /// The most recently finished completed run with this identity key.
    pub async fn find_completed(&self, identity_key: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE identity_key = $1 AND status = 'completed' \
             ORDER BY finished_at DESC, created_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(identity_key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The runs matching `filter`, newest first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        let wanted = [
            ("task", filter.task.as_deref()),
            ("model", filter.model.as_deref()),
            ("status", filter.status.map(RunStatus::as_str)),
        ];
        for (column, value) in wanted {
            if let Some(value) = value {
                values.push(value);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs{where_clause} ORDER BY created_at DESC, id DESC"
        );
        let query = values
            .into_iter()
            .fold(sqlx::query(&sql), |query, value| query.bind(value));
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }

    pub async fn get(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Each model's best completed run on `task` (higher is better; among equal values the
    /// most recently finished), ranked highest first; equal values share a rank ("1, 2, 2, 4").
    /// The metric is the task's registered primary metric, else the primary metric of its most
    /// recent completed run.
    pub async fn leaderboard(&self, task: &str) -> Result<Vec<LeaderboardRow>, StoreError> {
        let completed = self
            .runs(&RunFilter {
                task: Some(task.to_owned()),
                model: None,
                status: Some(RunStatus::Completed),
            })
            .await?;
        let metric = match self.task(task).await? {
            Some(record) => record.primary_metric,
            None => match completed.first() {
                Some(run) => run.primary_metric.clone(),
                None => return Ok(Vec::new()),
            },
        };
        Ok(rank_best_runs(&metric, &completed))
    }

    /// Backfills a finished run found elsewhere (e.g. results on disk) as completed, source
    /// `sync`. Does nothing and returns `None` when a synced run or any completed run with the
    /// same identity key is already stored.
    pub async fn record_synced(
        &self,
        new: &NewRun,
        result: &RunResult,
    ) -> Result<Option<RunId>, StoreError> {
        let now = now_ms();
        let mut run = run_from_new(new, RunStatus::Completed, RunSource::Sync, now)?;
        run.primary_value = primary_value(&result.metrics, &run.primary_metric);
        run.metrics = Some(result.metrics.clone());
        run.details = result.details.clone();
        run.finished_at = Some(result.finished_at.unwrap_or(now));
        run.duration_s = Some(result.duration_s);
        run.samples_per_s = Some(result.samples_per_s);
        if result.output_dir.is_some() {
            run.output_dir = result.output_dir.clone();
        }
        let encoded = EncodedRun::new(&run)?;
        // The unique index on synced identity keys settles two backfills racing past the check.
        let sql = format!(
            "INSERT INTO runs ({RUN_COLUMNS}) SELECT {RUN_PLACEHOLDERS} \
             WHERE NOT EXISTS (SELECT 1 FROM runs WHERE identity_key = {IDENTITY_KEY_PLACEHOLDER} \
             AND (source = 'sync' OR status = 'completed')) ON CONFLICT DO NOTHING"
        );
        let inserted = bind_run(sqlx::query(&sql), &encoded)
            .execute(&self.pool)
            .await?;
        Ok((inserted.rows_affected() > 0).then(|| run.id.clone()))
    }

    async fn insert(&self, run: &Run) -> Result<(), StoreError> {
        let encoded = EncodedRun::new(run)?;
        let sql = format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES ({RUN_PLACEHOLDERS})");
        bind_run(sqlx::query(&sql), &encoded)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Why an update of `id` that expected `expected` matched no row.
    async fn status_error(&self, id: &str, expected: &'static str) -> StoreError {
        match self.get(id).await {
            Ok(Some(run)) => wrong_status(&run, expected),
            Ok(None) => StoreError::RunNotFound(id.to_owned()),
            Err(error) => error,
        }
    }
}

const UNFINISHED: &str = "queued or running";

fn wrong_status(run: &Run, expected: &'static str) -> StoreError {
    StoreError::WrongStatus {
        id: run.id.to_string(),
        status: run.status,
        expected,
    }
}

/// A fresh run record from what the caller supplied.
fn run_from_new(
    new: &NewRun,
    status: RunStatus,
    source: RunSource,
    now: i64,
) -> Result<Run, StoreError> {
    require_name("run model", &new.model)?;
    require_name("run task", &new.task)?;
    require_name("run identity key", &new.identity_key)?;
    require_name("run primary metric", &new.primary_metric)?;
    Ok(Run {
        id: RunId::random(),
        model: new.model.clone(),
        task: new.task.clone(),
        status,
        identity_key: new.identity_key.clone(),
        config: new.config.clone(),
        metrics: None,
        primary_metric: new.primary_metric.clone(),
        primary_value: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        duration_s: None,
        samples_per_s: None,
        host: None,
        worker: None,
        heartbeat_at: None,
        progress_done: None,
        progress_total: None,
        error: None,
        output_dir: new.output_dir.clone(),
        source,
        details: None,
    })
}

/// The metric's value when it is a finite number.
fn primary_value(metrics: &Map<String, Value>, metric: &str) -> Option<f64> {
    metrics
        .get(metric)
        .and_then(Value::as_f64)
        .filter(|value| value.is_finite())
}

/// Progress counts are BIGINT columns.
fn count_value(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError::InvalidInput {
        what: "progress count",
        detail: format!("{count} is too large"),
    })
}

fn optional_json_text(
    what: &'static str,
    value: Option<&Value>,
) -> Result<Option<String>, StoreError> {
    value.map(|value| json_text(what, value)).transpose()
}

/// A run with its JSON fields already turned into column text.
struct EncodedRun<'a> {
    run: &'a Run,
    config: String,
    metrics: Option<String>,
    details: Option<String>,
}

impl<'a> EncodedRun<'a> {
    fn new(run: &'a Run) -> Result<EncodedRun<'a>, StoreError> {
        Ok(EncodedRun {
            run,
            config: json_text("run config", &run.config)?,
            metrics: run
                .metrics
                .as_ref()
                .map(|metrics| json_text("run metrics", metrics))
                .transpose()?,
            details: optional_json_text("run details", run.details.as_ref())?,
        })
    }
}

/// Binds every column in [`RUN_COLUMNS`] order (`$1` to `$23`).
fn bind_run<'q>(query: AnyQuery<'q>, encoded: &'q EncodedRun<'q>) -> AnyQuery<'q> {
    let run = encoded.run;
    // Not cached, as in `complete`: its doubles are NULL on some calls and not on others.
    query
        .persistent(false)
        .bind(run.id.as_str())
        .bind(run.model.as_str())
        .bind(run.task.as_str())
        .bind(run.status.as_str())
        .bind(run.identity_key.as_str())
        .bind(encoded.config.as_str())
        .bind(encoded.metrics.as_deref())
        .bind(run.primary_metric.as_str())
        .bind(run.primary_value)
        .bind(run.created_at)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.duration_s)
        .bind(run.samples_per_s)
        .bind(run.host.as_deref())
        .bind(run.worker.as_deref())
        .bind(run.heartbeat_at)
        .bind(run.progress_done)
        .bind(run.progress_total)
        .bind(run.error.as_deref())
        .bind(run.output_dir.as_deref())
        .bind(run.source.as_str())
        .bind(encoded.details.as_deref())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn placeholders_match_columns() {
        assert_eq!(
            RUN_PLACEHOLDERS.split(',').count(),
            RUN_COLUMNS.split(',').count()
        );
        let position = RUN_COLUMNS
            .split(',')
            .map(str::trim)
            .position(|column| column == "identity_key")
            .unwrap();
        assert_eq!(IDENTITY_KEY_PLACEHOLDER, format!("${}", position + 1));
    }

    #[test]
    fn primary_value_needs_a_finite_number() {
        let metrics = json!({"acc": 0.5, "name": "x", "count": 3})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(primary_value(&metrics, "acc"), Some(0.5));
        assert_eq!(primary_value(&metrics, "count"), Some(3.0));
        assert_eq!(primary_value(&metrics, "name"), None);
        assert_eq!(primary_value(&metrics, "missing"), None);
    }

    #[test]
    fn huge_progress_is_refused() {
        assert_eq!(count_value(7).unwrap(), 7);
        assert!(matches!(
            count_value(u64::MAX),
            Err(StoreError::InvalidInput { .. })
        ));
    }

    #[test]
    fn new_runs_need_names() {
        let mut new = NewRun {
            model: "m".into(),
            task: "t".into(),
            identity_key: "k".into(),
            config: json!({}),
            primary_metric: "acc".into(),
            output_dir: None,
        };
        assert!(run_from_new(&new, RunStatus::Queued, RunSource::Run, 1).is_ok());
        new.model = " ".into();
        assert!(matches!(
            run_from_new(&new, RunStatus::Queued, RunSource::Run, 1),
            Err(StoreError::InvalidInput {
                what: "run model",
                ..
            })
        ));
    }
}
