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

pub use error::StoreError;
pub use records::{
    Backend, LeaderboardRow, ModelRecord, NewRun, Run, RunFilter, RunId, RunResult, RunSource,
    RunStatus, TaskRecord,
};
pub use store::RunStore;
