//! Any OpenAI-compatible `/v1` server, sent what lmms-eval's `openai` chat model sends: one
//! user message with text and `data:image/png;base64,` image parts in prompt order,
//! `max_tokens`, `temperature: 0`. Transport errors, timeouts, 408/429 and 5xx are retried
//! with backoff; whatever still fails becomes a recorded per-sample failure.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::{Backend, Job};
use crate::journal::Prediction;
use crate::tasks::PromptPart;

#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// Up to `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// The `model` field; `None` asks `/v1/models` for the first one.
    pub model: Option<String>,
    pub concurrency: usize,
    /// Attempts per request, the first included.
    pub attempts: usize,
    pub timeout: Duration,
    /// Wait before the first retry; doubled each time, at most 30 s.
    pub backoff: Duration,
}

pub struct OpenAiBackend {
    options: OpenAiOptions,
    model: String,
    agent: ureq::Agent,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenAiError(String);

enum Failure {
    Retryable(String),
    Final(String),
}

impl OpenAiBackend {
    /// Checks the server answers (and finds the model name when none was given).
    pub fn connect(mut options: OpenAiOptions) -> Result<Self, OpenAiError> {
        options.base_url = options.base_url.trim_end_matches('/').to_string();
        options.concurrency = options.concurrency.max(1);
        options.attempts = options.attempts.max(1);
        let agent = ureq::AgentBuilder::new()
            .timeout(options.timeout)
            .max_idle_connections_per_host(options.concurrency)
            .build();
        let mut backend = Self {
            model: options.model.clone().unwrap_or_default(),
            options,
            agent,
        };
        if backend.options.model.is_none() {
            backend.model = backend.first_model()?;
        }
        Ok(backend)
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.options.api_key {
            Some(key) => request.set("Authorization", &format!("Bearer {key}")),
            None => request,
        }
    }

    fn first_model(&self) -> Result<String, OpenAiError> {
        let url = format!("{}/models", self.options.base_url);
        let body: Value = self
            .authorized(self.agent.get(&url))
            .call()
            .map_err(|e| OpenAiError(format!("GET {url}: {e}; pass --model NAME to skip this")))?
            .into_json()
            .map_err(|e| OpenAiError(format!("GET {url}: {e}")))?;
        body["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| OpenAiError(format!("GET {url} listed no model; pass --model NAME")))
    }

    fn body(&self, job: &Job) -> Value {
        let content: Vec<Value> = job
            .parts
            .iter()
            .map(|p| match p {
                PromptPart::Text(t) => json!({"type": "text", "text": t}),
                PromptPart::Image { bytes, .. } => json!({
                    "type": "image_url",
                    "image_url": {"url": format!(
                        "data:image/png;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(bytes)
                    )},
                }),
            })
            .collect();
        json!({
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": job.max_tokens,
            "temperature": 0,
        })
    }

    fn attempt(&self, body: &str) -> Result<Prediction, Failure> {
        let url = format!("{}/chat/completions", self.options.base_url);
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
                return Err(if code >= 500 || code == 408 || code == 429 {
                    Failure::Retryable(msg)
                } else {
                    Failure::Final(msg)
                });
            }
            Err(e) => return Err(Failure::Retryable(e.to_string())),
        };
        let reply: Value = response
            .into_json()
            .map_err(|e| Failure::Retryable(format!("unreadable response: {e}")))?;
        let choice = &reply["choices"][0];
        let text = choice["message"]["content"]
            .as_str()
            .ok_or_else(|| Failure::Final(format!("no choices[0].message.content in {reply}")))?;
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
        let body = self.body(job).to_string();
        let mut wait = self.options.backoff;
        let mut last = String::new();
        for attempt in 1..=self.options.attempts {
            match self.attempt(&body) {
                Ok(mut p) => {
                    p.doc_id = job.doc_id;
                    return p;
                }
                Err(Failure::Final(msg)) => {
                    last = msg;
                    break;
                }
                Err(Failure::Retryable(msg)) => {
                    tracing::warn!(doc_id = job.doc_id, attempt, "request failed: {msg}");
                    last = msg;
                    if attempt < self.options.attempts {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        Prediction {
            doc_id: job.doc_id,
            response: String::new(),
            error: Some(last),
            prompt_tokens: None,
            completion_tokens: None,
            finish_reason: None,
        }
    }
}

impl Backend for OpenAiBackend {
    fn describe(&self) -> Value {
        json!({
            "backend": "openai",
            "base_url": self.options.base_url,
            "model": self.model,
            "concurrency": self.options.concurrency,
        })
    }

    fn prepare_image(&self, bytes: &Arc<[u8]>) -> Result<Arc<[u8]>, String> {
        crate::images::rgb_png(bytes)
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
                    let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = next else { break };
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
