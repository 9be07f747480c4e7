//! Any OpenAI-compatible `/v1` server, sent what lmms-eval's `openai` chat model sends: one
//! user message with text and `data:image/png;base64,` image parts in prompt order,
//! `max_tokens`, `temperature: 0`. Several replicas share the requests ([`Replicas`]).
//! Transport errors, timeouts, 408/429 and 5xx are retried (on another replica first, then
//! with backoff); whatever still fails becomes a recorded per-sample failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;

use super::job::{Backend, ImagePartError, Job, PrepareError};
use super::replicas::Replicas;
use crate::images::rgb_png;
use crate::journal::Prediction;
use crate::prompt::PromptPart;

#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// Up to `/v1`, e.g. `http://127.0.0.1:8000/v1`; several: replicas of one model.
    pub base_urls: Vec<String>,
    pub api_key: Option<String>,
    /// The `model` field; `None` asks `/v1/models` for the first one.
    pub model: Option<String>,
    pub concurrency: usize,
    /// Attempts per request, the first included.
    pub attempts: usize,
    pub timeout: Duration,
    /// Wait before the first retry; doubled each time, at most 30 s.
    pub backoff: Duration,
    /// How long a failed replica is left out.
    pub replica_cooldown: Duration,
}

pub struct OpenAiBackend {
    options: OpenAiOptions,
    model: String,
    agent: ureq::Agent,
    replicas: Replicas,
    /// Samples in a row that failed after every retry; past [`GIVE_UP_AFTER`] the rest of
    /// the run is recorded as failed without being sent (a dead server would otherwise
    /// cost every sample its full retry schedule).
    consecutive_failures: AtomicUsize,
}

const GIVE_UP_AFTER: usize = 16;

/// Why the server cannot be used (checked once, before any sample is sent).
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    #[error("no --base-url given")]
    NoServer,
    #[error("{base_url}/models lists no model; pass --model NAME")]
    NoModelListed { base_url: String },
    #[error("{base_url}/models is not available to pick a model; pass --model NAME")]
    NoModelList { base_url: String },
    #[error("GET {url}: {error}")]
    UnreadableModelList { url: String, error: std::io::Error },
    #[error(
        "GET {url}: HTTP {code}, the server refused the API key; pass --api-key or set \
         OPENAI_API_KEY"
    )]
    KeyRefused { url: String, code: u16 },
    #[error(
        "cannot reach {url}: {error}; is the server running, and is --base-url the address up \
         to /v1?"
    )]
    Unreachable {
        url: String,
        error: Box<ureq::Error>,
    },
}

enum Failure {
    Retryable(String),
    /// 401, 403 or 404: this server does not take the key or serve the model (another
    /// replica may).
    Refused(String),
    Final(String),
}

/// The model ids a `/models` answer lists (`data[].id`); `None` where it has no list.
pub(super) fn model_ids(body: &Value) -> Option<Vec<String>> {
    body["data"].as_array().map(|a| {
        a.iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect()
    })
}

/// `request` with the bearer key, when there is one.
pub(super) fn with_bearer(request: ureq::Request, key: Option<&str>) -> ureq::Request {
    match key {
        Some(key) => request.set("Authorization", &format!("Bearer {key}")),
        None => request,
    }
}

impl OpenAiBackend {
    /// Checks the server answers `/models` (and takes the first model when none was given),
    /// so a wrong URL or key fails at once instead of sample by sample.
    pub fn connect(mut options: OpenAiOptions) -> Result<Self, OpenAiError> {
        let urls: Vec<String> = options
            .base_urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        if urls.is_empty() {
            return Err(OpenAiError::NoServer);
        }
        options.concurrency = options.concurrency.max(1);
        options.attempts = options.attempts.max(1);
        let agent = ureq::AgentBuilder::new()
            .timeout(options.timeout)
            .max_idle_connections_per_host(options.concurrency)
            .build();
        let mut backend = Self {
            model: options.model.clone().unwrap_or_default(),
            replicas: Replicas::new(urls.clone(), options.replica_cooldown),
            options,
            agent,
            consecutive_failures: AtomicUsize::new(0),
        };
        // Every replica is asked; one that cannot be reached starts out left out, as long
        // as another answers.
        let mut listed = None;
        let mut first_error = None;
        for (i, url) in urls.iter().enumerate() {
            match backend.list_models(url) {
                Ok(models) => {
                    let serves = |m: &Option<Vec<String>>| match (&backend.options.model, m) {
                        (Some(name), Some(models)) => models.contains(name),
                        _ => true,
                    };
                    if listed.is_some() && !serves(&models) {
                        tracing::warn!(
                            "replica {url} does not list the model; its refusals send \
                             requests to the others"
                        );
                    }
                    if listed.is_none() {
                        listed = Some(models);
                    }
                }
                Err(e @ OpenAiError::KeyRefused { .. }) => return Err(e),
                Err(e) => {
                    if urls.len() > 1 {
                        tracing::warn!("replica {url} left out for now: {e}");
                    }
                    backend.replicas.mark_down(i);
                    first_error.get_or_insert(e);
                }
            }
        }
        let listed = match (listed, first_error) {
            (Some(listed), _) => listed,
            (None, Some(e)) => return Err(e),
            (None, None) => None,
        };
        match (&backend.options.model, listed) {
            (None, Some(models)) => {
                backend.model =
                    models
                        .first()
                        .cloned()
                        .ok_or_else(|| OpenAiError::NoModelListed {
                            base_url: urls[0].clone(),
                        })?;
            }
            (None, None) => {
                return Err(OpenAiError::NoModelList {
                    base_url: urls[0].clone(),
                })
            }
            (Some(name), Some(models)) if !models.contains(name) => {
                tracing::warn!("the server lists {models:?}, not `{name}`; sending `{name}` anyway")
            }
            _ => {}
        }
        Ok(backend)
    }

    /// The served model names; `None` where the server has no `/models`.
    fn list_models(&self, base_url: &str) -> Result<Option<Vec<String>>, OpenAiError> {
        let url = format!("{base_url}/models");
        let body: Value = match self.authorized(self.agent.get(&url)).call() {
            Ok(r) => r
                .into_json()
                .map_err(|error| OpenAiError::UnreadableModelList {
                    url: url.clone(),
                    error,
                })?,
            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                return Err(OpenAiError::KeyRefused { url, code })
            }
            Err(ureq::Error::Status(code, _)) => {
                tracing::warn!("GET {url}: HTTP {code}; going on without the model list");
                return Ok(None);
            }
            Err(e) => {
                return Err(OpenAiError::Unreachable {
                    url,
                    error: Box::new(e),
                })
            }
        };
        Ok(Some(model_ids(&body).unwrap_or_default()))
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        with_bearer(request, self.options.api_key.as_deref())
    }

    /// The request body; images become PNG data URLs as lmms-eval sends them.
    fn body(&self, job: &Job) -> Result<Value, ImagePartError> {
        let mut content = Vec::with_capacity(job.parts.len());
        for part in &job.parts {
            content.push(match part {
                PromptPart::Text(t) => json!({"type": "text", "text": t}),
                PromptPart::Image { column, bytes } => {
                    let png = rgb_png(bytes).map_err(|error| ImagePartError {
                        column: column.clone(),
                        error,
                    })?;
                    json!({
                        "type": "image_url",
                        "image_url": {"url": format!(
                            "data:image/png;base64,{}",
                            base64::engine::general_purpose::STANDARD.encode(png)
                        )},
                    })
                }
            });
        }
        let mut body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": job.max_tokens,
            "temperature": 0,
        });
        if job.temperature > 0.0 {
            body["temperature"] = json!(job.temperature);
        }
        // Only when the task has some, so other tasks' requests are unchanged.
        if !job.stop.is_empty() {
            body["stop"] = json!(job.stop);
        }
        Ok(body)
    }

    fn attempt(&self, base_url: &str, body: &str) -> Result<Prediction, Failure> {
        let url = format!("{base_url}/chat/completions");
        let response = self
            .authorized(self.agent.post(&url))
            .set("Content-Type", "application/json")
            .send_string(body);
        let response = match response {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let msg = format!(
                    "HTTP {code}: {}",
                    text.chars().take(300).collect::<String>()
                );
                return Err(match code {
                    408 | 429 | 500.. => Failure::Retryable(msg),
                    401 | 403 | 404 => Failure::Refused(msg),
                    _ => Failure::Final(msg),
                });
            }
            Err(e) => return Err(Failure::Retryable(e.to_string())),
        };
        let reply: Value = response
            .into_json()
            .map_err(|e| Failure::Retryable(format!("unreadable response: {e}")))?;
        let choice = &reply["choices"][0];
        let text = match &choice["message"]["content"] {
            Value::String(t) => t.as_str(),
            // lmms-eval scores a null content as an empty answer.
            Value::Null if choice.is_object() => "",
            _ => {
                let shown: String = reply.to_string().chars().take(300).collect();
                return Err(Failure::Final(format!("no choices[0].message in {shown}")));
            }
        };
        let count = |k: &str| reply["usage"][k].as_u64().map(|v| v as usize);
        Ok(Prediction {
            doc_id: 0,
            response: text.to_string(),
            error: None,
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
            finish_reason: choice["finish_reason"].as_str().map(str::to_string),
        })
    }

    fn answer(&self, job: &Job) -> Prediction {
        let given_up = self.consecutive_failures.load(Ordering::Relaxed);
        if given_up >= GIVE_UP_AFTER {
            return Prediction::failed(
                job.doc_id,
                format!("not sent: the server failed {given_up} samples in a row"),
            );
        }
        let body = match self.body(job) {
            Ok(b) => b.to_string(),
            Err(e) => return Prediction::failed(job.doc_id, e.to_string()),
        };
        let mut wait = self.options.backoff;
        let mut last = String::new();
        let mut failed_on = None;
        // A failed replica's request goes to another at once; backoff only when none is up.
        let attempts = self.options.attempts + self.replicas.urls().len() - 1;
        for attempt in 1..=attempts {
            let (replica, up) = self.replicas.acquire(failed_on);
            // Back off before asking a replica that is down, or the one that just failed
            // (the only one there is, or the only one up).
            if attempt > 1 && (!up || failed_on == Some(replica)) {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            let url = &self.replicas.urls()[replica];
            match self.attempt(url, &body) {
                Ok(mut p) => {
                    self.replicas.release(replica, false);
                    self.consecutive_failures.store(0, Ordering::Relaxed);
                    p.doc_id = job.doc_id;
                    return p;
                }
                // One of several replicas refusing the model or the key is that replica's
                // fault (it serves something else): the others are asked.
                Err(Failure::Refused(msg)) if self.replicas.urls().len() > 1 => {
                    self.replicas.release(replica, true);
                    tracing::warn!(doc_id = job.doc_id, url, "replica refused: {msg}");
                    last = msg;
                    failed_on = Some(replica);
                }
                Err(Failure::Final(msg) | Failure::Refused(msg)) => {
                    self.replicas.release(replica, false);
                    last = msg;
                    break;
                }
                Err(Failure::Retryable(msg)) => {
                    self.replicas.release(replica, true);
                    tracing::warn!(doc_id = job.doc_id, attempt, url, "request failed: {msg}");
                    last = msg;
                    failed_on = Some(replica);
                }
            }
        }
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        Prediction::failed(job.doc_id, last)
    }
}

impl Backend for OpenAiBackend {
    fn describe(&self) -> Value {
        let urls = self.replicas.urls();
        let mut d = json!({
            "backend": "openai",
            "base_url": urls[0],
            "model": self.model,
            "concurrency": self.options.concurrency,
        });
        if urls.len() > 1 {
            d["base_urls"] = json!(urls);
            d["answered_per_replica"] = json!(self.replicas.answered());
        }
        d
    }

    fn prepare(&self, job: Job) -> Result<Job, PrepareError> {
        // PNG encoding happens in the request threads, in parallel.
        Ok(job)
    }

    fn queue_depth(&self) -> usize {
        self.options.concurrency * 2
    }

    fn run(&self, jobs: Receiver<Job>, done: &mut dyn FnMut(Prediction)) {
        let jobs = Mutex::new(jobs);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..self.options.concurrency {
                let tx = tx.clone();
                let jobs = &jobs;
                scope.spawn(move || loop {
                    let next = jobs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .blocking_recv();
                    let Some(job) = next else { break };
                    if tx.send(self.answer(&job)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for prediction in rx {
                done(prediction);
            }
        });
    }
}
