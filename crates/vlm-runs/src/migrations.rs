//! The schema's versioned migrations, embedded in the binary and applied by sqlx's migrator.
//!
//! The SQL files in `migrations/` are portable (SQLite and PostgreSQL run the same text). They
//! are embedded with `include_str!` rather than `sqlx::migrate!`, which would need sqlx's
//! `macros` feature and so a proc-macro build of every driver, SQLite included.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// `(version, description, sql)`, oldest first. Never edit an applied one: add a new version.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "runs store",
        include_str!("../migrations/0001_runs_store.sql"),
    ),
    (
        2,
        "one queued run per identity",
        include_str!("../migrations/0002_one_queued_run_per_identity.sql"),
    ),
];

/// The embedded migrations as a sqlx [`MigrationSource`].
#[derive(Debug, Clone, Copy)]
struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async { Ok(embedded_migrations()) })
    }
}

fn embedded_migrations() -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect()
}

/// The migrator over the embedded migrations.
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(EmbeddedMigrations).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_sql_is_present() {
        let migrations = embedded_migrations();
        assert!(!migrations.is_empty());
        for pair in migrations.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for migration in &migrations {
            assert!(migration.version > 0);
            assert!(
                migration.sql.contains("CREATE"),
                "{}",
                migration.description
            );
        }
    }

    #[test]
    fn schema_avoids_backend_specific_types() {
        for (_, _, sql) in MIGRATIONS {
            let upper = sql.to_uppercase();
            for word in ["SERIAL", "AUTOINCREMENT", "TIMESTAMP", "JSONB", "REAL "] {
                assert!(!upper.contains(word), "migration uses {word}");
            }
        }
    }
}
