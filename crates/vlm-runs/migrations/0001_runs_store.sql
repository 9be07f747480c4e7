-- The runs store's first schema. Portable: the same text runs on SQLite and PostgreSQL.
-- Ids are TEXT made in Rust, times are BIGINT unix milliseconds, JSON is TEXT.

CREATE TABLE models (
    name          TEXT NOT NULL PRIMARY KEY,
    display_name  TEXT NOT NULL,
    reference     TEXT,
    base_url      TEXT,
    settings      TEXT NOT NULL,
    params_b      DOUBLE PRECISION,
    created_at    BIGINT NOT NULL
);

CREATE TABLE tasks (
    name            TEXT NOT NULL PRIMARY KEY,
    display_name    TEXT NOT NULL,
    primary_metric  TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE runs (
    id              TEXT NOT NULL PRIMARY KEY,
    model           TEXT NOT NULL,
    task            TEXT NOT NULL,
    status          TEXT NOT NULL,
    identity_key    TEXT NOT NULL,
    config          TEXT NOT NULL,
    metrics         TEXT,
    primary_metric  TEXT NOT NULL,
    primary_value   DOUBLE PRECISION,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    duration_s      DOUBLE PRECISION,
    samples_per_s   DOUBLE PRECISION,
    host            TEXT,
    worker          TEXT,
    heartbeat_at    BIGINT,
    progress_done   BIGINT,
    progress_total  BIGINT,
    error           TEXT,
    output_dir      TEXT,
    source          TEXT NOT NULL,
    details         TEXT
);

CREATE INDEX runs_identity_key ON runs (identity_key);
CREATE INDEX runs_status_created ON runs (status, created_at);
CREATE INDEX runs_task_model ON runs (task, model);
-- At most one backfilled run per identity: makes record_synced idempotent under races.
CREATE UNIQUE INDEX runs_sync_identity ON runs (identity_key) WHERE source = 'sync';
