//! Prometheus text exposition of the engine's counters, named after vLLM's where one
//! exists (`vllm:` becomes `vlm:`), so dashboards carry over.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use vlm_engine::{EngineStats, Histogram};

use crate::state::AppState;

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let model = state
        .config
        .served_model_names
        .first()
        .map_or(String::new(), |m| m.replace('"', "'"));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state.engine.stats(), &model),
    )
}

fn render(s: &EngineStats, model: &str) -> String {
    let mut out = String::new();
    let label = format!("model_name=\"{model}\"");
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{{label}}} {value}");
    };
    gauge(
        "vlm:num_requests_running",
        "Sequences being generated.",
        "gauge",
        s.running as f64,
    );
    gauge(
        "vlm:num_requests_waiting",
        "Sequences waiting for KV blocks or a batch slot.",
        "gauge",
        s.waiting as f64,
    );
    gauge(
        "vlm:kv_cache_blocks_used",
        "KV cache blocks held by sequences.",
        "gauge",
        s.kv_blocks_used as f64,
    );
    gauge(
        "vlm:kv_cache_blocks_total",
        "KV cache blocks in the pool.",
        "gauge",
        s.kv_blocks_total as f64,
    );
    let usage = if s.kv_blocks_total == 0 {
        0.0
    } else {
        s.kv_blocks_used as f64 / s.kv_blocks_total as f64
    };
    gauge(
        "vlm:kv_cache_usage_perc",
        "Fraction of KV cache blocks in use.",
        "gauge",
        usage,
    );
    gauge(
        "vlm:num_preemptions_total",
        "Sequences preempted for lack of KV blocks.",
        "counter",
        s.preemptions as f64,
    );
    gauge(
        "vlm:prompt_tokens_total",
        "Prompt tokens prefilled (computed, not reused from the prefix cache).",
        "counter",
        s.prompt_tokens as f64,
    );
    gauge(
        "vlm:prefix_cache_queries_total",
        "Prompt tokens looked up in the prefix cache.",
        "counter",
        s.prefix_cache_queries as f64,
    );
    gauge(
        "vlm:prefix_cache_hits_total",
        "Prompt tokens whose keys and values came from the prefix cache.",
        "counter",
        s.prefix_cache_hits as f64,
    );
    gauge(
        "vlm:generation_tokens_total",
        "Tokens generated.",
        "counter",
        s.generation_tokens as f64,
    );
    gauge(
        "vlm:request_success_total",
        "Requests finished.",
        "counter",
        s.finished_requests as f64,
    );
    gauge(
        "vlm:request_aborted_total",
        "Requests aborted (cancelled or disconnected).",
        "counter",
        s.aborted_requests as f64,
    );
    gauge(
        "vlm:image_cache_hits_total",
        "Images whose vision features came from the cache.",
        "counter",
        s.image_cache_hits as f64,
    );
    gauge(
        "vlm:image_cache_misses_total",
        "Images encoded by the vision tower.",
        "counter",
        s.image_cache_misses as f64,
    );
    histogram(
        &mut out,
        "vlm:time_to_first_token_seconds",
        "Time to first token.",
        &label,
        &s.time_to_first_token,
    );
    histogram(
        &mut out,
        "vlm:inter_token_latency_seconds",
        "Time between tokens of a sequence.",
        &label,
        &s.inter_token_latency,
    );
    out
}

fn histogram(out: &mut String, name: &str, help: &str, label: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{label}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{label}}} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_once() {
        let s = EngineStats {
            kv_blocks_total: 8,
            kv_blocks_used: 2,
            ..EngineStats::default()
        };
        let text = render(&s, "m");
        assert!(text.contains("vlm:kv_cache_blocks_used{model_name=\"m\"} 2\n"));
        assert!(text.contains("vlm:kv_cache_usage_perc{model_name=\"m\"} 0.25\n"));
        assert!(
            text.contains("vlm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 0")
        );
        assert_eq!(
            text.matches("# TYPE vlm:generation_tokens_total counter")
                .count(),
            1
        );
    }
}
