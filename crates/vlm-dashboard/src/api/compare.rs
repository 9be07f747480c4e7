//! `GET /compare?a=ID&b=ID`: two runs of one task side by side: metric deltas, the samples
//! they disagree on, and McNemar's exact test on those disagreements (is the difference in
//! accuracy more than chance?).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::files::{read_samples, run_of};
use super::query::ApiQuery;
use crate::error::ApiError;
use crate::state::DashboardState;

#[derive(Deserialize)]
pub struct CompareQuery {
    a: String,
    b: String,
}

/// McNemar's exact two-sided p-value for `only_a` samples right in A only and `only_b` in
/// B only: twice the binomial(n, 1/2) tail at the smaller count, at most 1.
pub fn mcnemar_exact(only_a: u64, only_b: u64) -> f64 {
    let n = only_a + only_b;
    if n == 0 {
        return 1.0;
    }
    let k = only_a.min(only_b);
    // log C(n, i) - n log 2, summed in log space for large n.
    let ln2 = std::f64::consts::LN_2;
    let mut log_choose = 0.0f64; // log C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (log_choose - n as f64 * ln2).exp();
    }
    (2.0 * tail).min(1.0)
}

fn correct(sample: &Value) -> bool {
    sample["score"].as_f64().is_some_and(|s| s > 0.0)
}

pub async fn compare(
    State(state): State<Arc<DashboardState>>,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> Result<Json<Value>, ApiError> {
    let a = run_of(&state, &q.a).await?;
    let b = run_of(&state, &q.b).await?;
    if a.task != b.task {
        return Err(ApiError::bad_request(format!(
            "runs of different tasks ({} and {}) cannot be compared",
            a.task, b.task
        )));
    }
    let metrics_a = a.metrics.clone().unwrap_or_default();
    let metrics_b = b.metrics.clone().unwrap_or_default();
    let mut deltas = Map::new();
    for (name, va) in vlm_runs::plain_metrics(&metrics_a) {
        if let (Some(x), Some(y)) = (
            va.as_f64(),
            vlm_runs::plain_metrics(&metrics_b)
                .get(&name)
                .and_then(Value::as_f64),
        ) {
            deltas.insert(name, json!({"a": x, "b": y, "delta": y - x}));
        }
    }
    let by_doc = |samples: Vec<Value>| -> BTreeMap<i64, Value> {
        samples
            .into_iter()
            .filter_map(|s| s["doc_id"].as_i64().map(|d| (d, s)))
            .collect()
    };
    let samples_a = by_doc(read_samples(&state, &a)?);
    let samples_b = by_doc(read_samples(&state, &b)?);
    let (mut both, mut neither, mut only_a, mut only_b) = (0u64, 0u64, 0u64, 0u64);
    let mut disagreements = Vec::new();
    for (doc, sa) in &samples_a {
        let Some(sb) = samples_b.get(doc) else {
            continue;
        };
        match (correct(sa), correct(sb)) {
            (true, true) => both += 1,
            (false, false) => neither += 1,
            (ra, rb) => {
                if ra {
                    only_a += 1;
                } else {
                    only_b += 1;
                }
                disagreements.push(json!({
                    "doc_id": doc, "id": sa["id"], "input": sa["input"], "target": sa["target"],
                    "a": {"response": sa["response"], "parsed": sa["parsed"], "correct": ra},
                    "b": {"response": sb["response"], "parsed": sb["parsed"], "correct": rb},
                }));
            }
        }
    }
    Ok(Json(json!({
        "task": a.task,
        "a": a.view(),
        "b": b.view(),
        "metrics": deltas,
        "paired": {
            "samples": both + neither + only_a + only_b,
            "both_right": both,
            "both_wrong": neither,
            "only_a_right": only_a,
            "only_b_right": only_b,
            "mcnemar_exact_p": mcnemar_exact(only_a, only_b),
        },
        "disagreements": disagreements,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_exact_integer_arithmetic() {
        // Exact binomial tails, as Python computes them with integers:
        // min(1, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n).
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert!((mcnemar_exact(1, 1) - 1.0).abs() < 1e-12);
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        assert!((mcnemar_exact(2, 10) - 0.03857421875).abs() < 1e-12);
        assert!((mcnemar_exact(40, 60) - 0.05688793364098078).abs() < 1e-9);
        // Symmetric, and tiny but finite for large counts.
        assert_eq!(mcnemar_exact(10, 2), mcnemar_exact(2, 10));
        let p = mcnemar_exact(1000, 1300);
        assert!(p > 0.0 && p < 1e-9, "{p}");
    }
}
