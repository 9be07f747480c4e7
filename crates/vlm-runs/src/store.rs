//! Opening a runs store (connection, SQLite settings, migrations) and its models and tasks.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::MigrateError;
use sqlx::{AnyConnection, AnyPool, Connection};

use crate::clock::now_ms;
use crate::error::StoreError;
use crate::location::StoreLocation;
use crate::migrations;
use crate::records::{Backend, ModelRecord, TaskRecord};
use crate::rows::{json_text, model_from_row, task_from_row, MODEL_COLUMNS, TASK_COLUMNS};

/// Run on every SQLite connection: wait up to 10 s for another writer rather than fail, and
/// use the write-ahead log so readers and one writer in several processes share the file.
const SQLITE_CONNECTION_PRAGMAS: [&str; 3] = [
    "PRAGMA busy_timeout = 10000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
];

/// How often opening a SQLite store tries again after a race with another process opening it.
const SQLITE_SETUP_ATTEMPTS: u32 = 20;

/// A store of evaluation runs on SQLite or PostgreSQL. Cheap to clone: clones share one pool.
#[derive(Debug, Clone)]
pub struct RunStore {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

impl RunStore {
    /// Connects to `sqlite://PATH` (the file is created if missing; its directory must exist)
    /// or `postgres://...`, and creates or upgrades the schema.
    pub async fn open(url: &str) -> Result<RunStore, StoreError> {
        let location = StoreLocation::parse(url)?;
        sqlx::any::install_default_drivers();
        let mut attempt = 1;
        while let Err(error) = prepare_database(&location).await {
            if location.backend != Backend::Sqlite
                || attempt >= SQLITE_SETUP_ATTEMPTS
                || !is_sqlite_setup_race(&error)
            {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            attempt += 1;
        }
        let pool = pool_options(location.backend)
            .connect(&location.connect_url)
            .await
            .map_err(|source| location.connect_error(source))?;
        Ok(RunStore {
            pool,
            backend: location.backend,
        })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every pooled connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts the model or replaces its fields (keeping its first `created_at`).
    pub async fn upsert_model(&self, model: &ModelRecord) -> Result<(), StoreError> {
        require_name("model name", &model.name)?;
        let sql = format!(
            "INSERT INTO models ({MODEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
             reference = excluded.reference, base_url = excluded.base_url, \
             settings = excluded.settings, params_b = excluded.params_b"
        );
        // Not cached: `params_b` is a double that may be NULL (see `RunStore::complete`).
        sqlx::query(&sql)
            .persistent(false)
            .bind(model.name.as_str())
            .bind(model.display_name.as_str())
            .bind(model.reference.as_deref())
            .bind(model.base_url.as_deref())
            .bind(json_text("model settings", &model.settings)?)
            .bind(model.params_b)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Inserts the task or replaces its fields (keeping its first `created_at`).
    pub async fn upsert_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        require_name("task name", &task.name)?;
        require_name("task primary metric", &task.primary_metric)?;
        let sql = format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
             primary_metric = excluded.primary_metric"
        );
        sqlx::query(&sql)
            .bind(task.name.as_str())
            .bind(task.display_name.as_str())
            .bind(task.primary_metric.as_str())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(model_from_row).transpose()
    }

    /// Every model, by name.
    pub async fn models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(model_from_row).collect()
    }

    pub async fn task(&self, name: &str) -> Result<Option<TaskRecord>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Every task, by name.
    pub async fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(task_from_row).collect()
    }
}

pub(crate) fn require_name(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            what,
            detail: "must not be empty".to_owned(),
        });
    }
    Ok(())
}

fn pool_options(backend: Backend) -> AnyPoolOptions {
    let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
    match backend {
        // SQLite has one writer at a time anyway; a few connections serve concurrent readers.
        Backend::Sqlite => options.max_connections(4).after_connect(|connection, _| {
            Box::pin(async move { prepare_sqlite_connection(connection).await })
        }),
        Backend::Postgres => options.max_connections(8),
    }
}

async fn prepare_sqlite_connection(connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in SQLITE_CONNECTION_PRAGMAS {
        sqlx::query(pragma).execute(&mut *connection).await?;
    }
    Ok(())
}

/// Connects once, sets SQLite up, and applies the migrations. One connection rather than the
/// pool: a refused server or an unopenable file fails at once with its own message, where the
/// pool would retry until its timeout.
async fn prepare_database(location: &StoreLocation) -> Result<(), StoreError> {
    let mut connection = AnyConnection::connect(&location.connect_url)
        .await
        .map_err(|source| location.connect_error(source))?;
    if location.backend == Backend::Sqlite {
        prepare_sqlite_connection(&mut connection)
            .await
            .map_err(|source| location.connect_error(source))?;
    }
    let migrator = migrations::migrator()
        .await
        .map_err(|source| location.migrate_error(source))?;
    // `run_direct`, not `run`: `run`'s higher-ranked `Acquire` bound makes this future not `Send`.
    migrator
        .run_direct(&mut connection)
        .await
        .map_err(|source| location.migrate_error(source))?;
    // The migrations are committed; a failure to say goodbye cleanly changes nothing.
    let _ = connection.close().await;
    Ok(())
}

/// Errors that processes opening one fresh SQLite file at once can meet and that go away on a
/// second try: a lock SQLite reports at once rather than waiting for (as while another process
/// switches the file to WAL), or the same migration applied by two processes (SQLite has no
/// advisory lock; the loser sees it applied when it tries again).
fn is_sqlite_setup_race(error: &StoreError) -> bool {
    match error {
        StoreError::Connect { source, .. } => is_sqlite_busy(source),
        StoreError::Migrate { source, .. } => matches!(
            source,
            MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)
        ),
        _ => false,
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), extended codes included.
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database_error) = error else {
        return false;
    };
    let code = database_error
        .code()
        .and_then(|code| code.parse::<i64>().ok());
    matches!(code.map(|code| code & 0xff), Some(5 | 6))
}
