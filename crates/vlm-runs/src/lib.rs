//! Store of evaluation runs on SQLite or PostgreSQL, behind `vlm-eval`'s sweeps, workers and
//! leaderboards.
//!
//! One code path serves both databases through sqlx's `Any` driver: `sqlite://PATH` (embedded,
//! the file created if missing, shared between processes through WAL) or `postgres://...`. The
//! schema is created and upgraded by versioned, portable migrations when a store is opened.
//! Ids are random hex text, times BIGINT unix milliseconds and JSON TEXT, since the `Any`
//! driver decodes only integers, floats and text.
//!
//! A run is enqueued (or started directly by a CLI run), claimed by exactly one worker,
//! heartbeated while it runs, and then completed or failed; runs whose heartbeat stops are
//! requeued by [`RunStore::requeue_stale`].

mod clock;
mod error;
mod leaderboard;
mod location;
mod migrations;
mod records;
mod rows;
mod runs;
mod store;
mod view;

pub use error::StoreError;
pub use records::{
    Backend, LeaderboardRow, ModelRecord, NewRun, Run, RunFilter, RunId, RunResult, RunSource,
    RunStatus, TaskRecord,
};
pub use store::RunStore;
pub use view::plain_metrics;

#[cfg(test)]
mod send_tests {
    //! Every store future must be `Send` when awaited inside a spawned task, so callers can run
    //! them on a multi-threaded runtime (sqlx's higher-ranked bounds can quietly break this).

    use std::future::Future;
    use std::time::Duration;

    use super::*;

    fn spawnable<F: Future + Send + 'static>(_: F) {}

    #[test]
    fn every_method_can_run_in_a_spawned_task() {
        spawnable(async {
            let store = RunStore::open("sqlite://x.db").await?;
            let new = NewRun {
                model: "m".into(),
                task: "t".into(),
                identity_key: "k".into(),
                config: serde_json::Value::Null,
                primary_metric: "acc".into(),
                output_dir: None,
            };
            let result = RunResult::default();
            store.upsert_model(&ModelRecord::default()).await?;
            store.upsert_task(&TaskRecord::default()).await?;
            store.model("m").await?;
            store.models().await?;
            store.task("t").await?;
            store.tasks().await?;
            let id = store.enqueue(&new).await?;
            store.start(&new, "w", "h").await?;
            store.claim("w", "h").await?;
            store.heartbeat(&id, None).await?;
            store.complete(&id, &result).await?;
            store.fail(&id, "e").await?;
            store.requeue_stale(Duration::from_secs(1)).await?;
            store.find_completed("k").await?;
            store.runs(&RunFilter::default()).await?;
            store.get(&id).await?;
            store.leaderboard("t").await?;
            store.record_synced(&new, &result).await?;
            store.close().await;
            Ok::<(), StoreError>(())
        });
    }
}
