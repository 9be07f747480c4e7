//! `GET /runs/{id}/events`: a run's live state as Server-Sent Events, read from the runs
//! store (where the running child heartbeats its progress) and the run's log file: `status`
//! on a change, `progress` (done, total, samples/s, ETA), `log` (new lines), and `final`
//! (the finished run) before the stream closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;
use vlm_runs::Run;

use super::files::{file_in_folder, run_folder, run_of};
use super::query::ApiPath;
use crate::error::ApiError;
use crate::state::DashboardState;

/// How often the store is read.
const POLL: Duration = Duration::from_millis(500);
/// At most this many log lines per event.
const LOG_LINES: usize = 50;

struct Watch {
    state: Arc<DashboardState>,
    id: String,
    first: bool,
    done: bool,
    status: String,
    progress: Option<(i64, i64)>,
    /// (when, done) at the first progress seen, for the rate.
    rate_from: Option<(Instant, i64)>,
    log_offset: u64,
    queue: Vec<Event>,
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Watch {
    /// New log lines of the run's `vlm-eval.log` since the last read.
    fn new_log_lines(&mut self, run: &Run) -> Vec<String> {
        let Ok(folder) = run_folder(&self.state, run) else {
            return Vec::new();
        };
        let Ok(log) = file_in_folder(&folder, "vlm-eval.log") else {
            return Vec::new();
        };
        let Ok(bytes) = std::fs::read(log) else {
            return Vec::new();
        };
        let start = (self.log_offset as usize).min(bytes.len());
        // Only whole lines; the rest waits for the next read.
        let end = bytes[start..]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(start, |p| start + p + 1);
        self.log_offset = end as u64;
        let text = String::from_utf8_lossy(&bytes[start..end]);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        lines[lines.len().saturating_sub(LOG_LINES)..].to_vec()
    }

    async fn poll(&mut self) {
        let run = match self.state.store.get(&self.id).await {
            Ok(Some(run)) => run,
            _ => {
                self.queue.push(event(
                    "error",
                    json!({"message": "the run is no longer in the store"}),
                ));
                self.done = true;
                return;
            }
        };
        let status = run.status.as_str().to_string();
        if status != self.status || self.first {
            self.status = status.clone();
            self.queue.push(event("status", json!({"status": status})));
        }
        let progress = run.progress_done.zip(run.progress_total);
        if progress != self.progress || self.first {
            self.progress = progress;
            if let Some((done, total)) = progress {
                let now = Instant::now();
                let from = *self.rate_from.get_or_insert((now, done));
                let seconds = now.duration_since(from.0).as_secs_f64();
                let rate = (seconds > 0.5 && done > from.1)
                    .then(|| (done - from.1) as f64 / seconds)
                    .or(run.samples_per_s.filter(|r| *r > 0.0));
                let eta = rate.map(|r| (total - done).max(0) as f64 / r);
                self.queue.push(event(
                    "progress",
                    json!({"done": done, "total": total, "samples_per_s": rate, "eta_s": eta}),
                ));
            }
        }
        let lines = self.new_log_lines(&run);
        if !lines.is_empty() {
            self.queue.push(event("log", json!({"lines": lines})));
        }
        if run.status.is_finished() {
            let mut view = run.view();
            view["details"] = run.details.clone().unwrap_or(serde_json::Value::Null);
            self.queue.push(event("final", view));
            self.done = true;
        }
        self.first = false;
    }
}

pub async fn events(
    State(state): State<Arc<DashboardState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    run_of(&state, &id).await?;
    let watch = Watch {
        state,
        id,
        first: true,
        done: false,
        status: String::new(),
        progress: None,
        rate_from: None,
        log_offset: 0,
        queue: Vec::new(),
    };
    let stream = stream::unfold(watch, |mut w| async move {
        loop {
            if !w.queue.is_empty() {
                let next = w.queue.remove(0);
                return Some((Ok(next), w));
            }
            if w.done {
                return None;
            }
            if !w.first {
                tokio::time::sleep(POLL).await;
            }
            w.poll().await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
