//! The runs store's error type.

use crate::records::RunStatus;

/// Everything that can go wrong opening or using a [`crate::RunStore`]. URLs in messages have
/// any password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported runs store URL `{url}`: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl { url: String },

    #[error("runs store URL `{url}` names no database file")]
    MissingPath { url: String },

    #[error("cannot open runs store `{url}`: directory `{dir}` does not exist")]
    MissingDirectory { url: String, dir: String },

    #[error("cannot open runs store `{url}`: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot create or upgrade the schema of runs store `{url}`: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error("runs store query failed: {0}")]
    Database(#[from] sqlx::Error),

    #[error("no run with id `{0}`")]
    RunNotFound(String),

    #[error("a run with identity {identity_key} is already queued")]
    AlreadyQueued { identity_key: String },

    #[error("run `{id}` is {status}, not {expected}")]
    WrongStatus {
        id: String,
        status: RunStatus,
        expected: &'static str,
    },

    #[error("invalid {what}: {detail}")]
    InvalidInput { what: &'static str, detail: String },

    #[error("runs store holds a bad value in {column} of `{key}`: {detail}")]
    Corrupt {
        key: String,
        column: &'static str,
        detail: String,
    },
}
