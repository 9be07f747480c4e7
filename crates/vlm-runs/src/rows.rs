//! Turns database rows into records, and records' JSON fields into column text.
//!
//! sqlx's `Any` driver decodes only integers, floats, text and bytes, so JSON lives in TEXT
//! columns and times in BIGINT unix milliseconds; this is where they are parsed back.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::records::{ModelRecord, Run, RunId, RunSource, RunStatus, TaskRecord};

/// Every `runs` column, in the order [`run_from_row`] and the inserts use.
pub(crate) const RUN_COLUMNS: &str = "id, model, task, status, identity_key, config, metrics, \
     primary_metric, primary_value, created_at, started_at, finished_at, duration_s, \
     samples_per_s, host, worker, heartbeat_at, progress_done, progress_total, error, \
     output_dir, source, details";

pub(crate) const MODEL_COLUMNS: &str =
    "name, display_name, reference, base_url, settings, params_b, created_at";

pub(crate) const TASK_COLUMNS: &str = "name, display_name, primary_metric, created_at";

pub(crate) fn run_from_row(row: &AnyRow) -> Result<Run, StoreError> {
    let id: String = row.try_get("id")?;
    let status_text: String = row.try_get("status")?;
    let status = RunStatus::parse(&status_text)
        .ok_or_else(|| corrupt(&id, "status", format!("unknown status `{status_text}`")))?;
    let source_text: String = row.try_get("source")?;
    let source = RunSource::parse(&source_text)
        .ok_or_else(|| corrupt(&id, "source", format!("unknown source `{source_text}`")))?;
    let config = parse_json(&id, "config", &row.try_get::<String, _>("config")?)?;
    let metrics = match row.try_get::<Option<String>, _>("metrics")? {
        Some(text) => Some(parse_metrics(&id, &text)?),
        None => None,
    };
    let details = match row.try_get::<Option<String>, _>("details")? {
        Some(text) => Some(parse_json(&id, "details", &text)?),
        None => None,
    };
    Ok(Run {
        model: row.try_get("model")?,
        task: row.try_get("task")?,
        status,
        identity_key: row.try_get("identity_key")?,
        config,
        metrics,
        primary_metric: row.try_get("primary_metric")?,
        primary_value: row.try_get("primary_value")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        duration_s: row.try_get("duration_s")?,
        samples_per_s: row.try_get("samples_per_s")?,
        host: row.try_get("host")?,
        worker: row.try_get("worker")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        progress_done: row.try_get("progress_done")?,
        progress_total: row.try_get("progress_total")?,
        error: row.try_get("error")?,
        output_dir: row.try_get("output_dir")?,
        source,
        details,
        id: RunId(id),
    })
}

pub(crate) fn model_from_row(row: &AnyRow) -> Result<ModelRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let settings = parse_json(&name, "settings", &row.try_get::<String, _>("settings")?)?;
    Ok(ModelRecord {
        display_name: row.try_get("display_name")?,
        reference: row.try_get("reference")?,
        base_url: row.try_get("base_url")?,
        settings,
        params_b: row.try_get("params_b")?,
        created_at: row.try_get("created_at")?,
        name,
    })
}

pub(crate) fn task_from_row(row: &AnyRow) -> Result<TaskRecord, StoreError> {
    Ok(TaskRecord {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        primary_metric: row.try_get("primary_metric")?,
        created_at: row.try_get("created_at")?,
    })
}

/// JSON text for a column.
pub(crate) fn json_text(
    what: &'static str,
    value: &impl serde::Serialize,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::InvalidInput {
        what,
        detail: error.to_string(),
    })
}

fn parse_json(key: &str, column: &'static str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|error| corrupt(key, column, error.to_string()))
}

fn parse_metrics(key: &str, text: &str) -> Result<Map<String, Value>, StoreError> {
    match parse_json(key, "metrics", text)? {
        Value::Object(map) => Ok(map),
        other => Err(corrupt(
            key,
            "metrics",
            format!("expected an object, found {other}"),
        )),
    }
}

fn corrupt(key: &str, column: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        column,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_must_be_an_object() {
        assert!(parse_metrics("r", r#"{"acc": 0.5}"#).is_ok());
        let error = parse_metrics("r", "[1]").unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Corrupt {
                    column: "metrics",
                    ..
                }
            ),
            "{error}"
        );
        assert!(parse_metrics("r", "not json").is_err());
    }

    #[test]
    fn column_lists_have_no_duplicates() {
        for list in [RUN_COLUMNS, MODEL_COLUMNS, TASK_COLUMNS] {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(names.len(), unique.len(), "{list}");
        }
        assert_eq!(RUN_COLUMNS.split(',').count(), 23);
    }
}
