//! A judge model behind an OpenAI-compatible server (`--judge-url`, `--judge-model`), for
//! tasks whose answers rules cannot always read (MathVista's answer extraction). Each
//! prompt is sent as one user message, greedy, at most 256 tokens, as lmms-eval's judge
//! requests; an empty reply is asked again (five times in all, as lmms-eval does). Every
//! answer is journaled ([`journal`]) and never asked for twice.

mod journal;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use journal::{journal_path, judgment_key, read_judgments, Judgment, JudgmentWriter};

use crate::backend::{Backend, Job, OpenAiBackend, OpenAiError, OpenAiOptions};
use crate::prompt::PromptPart;

/// Where the judge is and how hard to push it.
#[derive(Debug, Clone)]
pub struct JudgeOptions {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub concurrency: usize,
    pub attempts: usize,
    pub timeout: Duration,
}

/// A judge prompt's version for results.json: `label` and the prompt text's hash.
pub fn prompt_version(label: &str, prompt: &str) -> String {
    format!(
        "{label}:{}",
        &blake3::hash(prompt.as_bytes()).to_hex()[..12]
    )
}

/// lmms-eval's judge requests: `max_tokens` 256 at temperature 0.
const MAX_TOKENS: usize = 256;
/// lmms-eval asks again while the reply is empty, five times in all.
const EMPTY_REPLY_ROUNDS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(
        "{task}: {count} answer(s) need a judge model (rules could not read them); pass \
         --judge-url and --judge-model (answers are kept: rerun with --resume, or `vlm-eval \
         score`)"
    )]
    NoJudge { task: String, count: usize },
    #[error(
        "cannot reach the judge at {url}: {error}; is it running, and is --judge-url the \
         address up to /v1?"
    )]
    Unreachable { url: String, error: String },
    #[error(
        "the judge at {url} refused the API key (HTTP {code}); pass --judge-api-key-env with \
         the variable holding it"
    )]
    KeyRefused { url: String, code: u16 },
    #[error("the judge at {url}: {error}")]
    Failed { url: String, error: OpenAiError },
    #[error("cannot write {}: {error}", path.display())]
    Journal {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

/// What the judge did for one task, for results.json.
#[derive(Debug, Clone, Default)]
pub struct JudgeReport {
    pub asked: usize,
    pub reused: usize,
    pub failed: usize,
}

impl JudgeReport {
    pub fn to_json(&self, options: Option<&JudgeOptions>, prompt_version: Option<&str>) -> Value {
        json!({
            "model": options.map(|o| o.model.clone()),
            "base_url": options.map(|o| o.base_url.clone()),
            "prompt_version": prompt_version,
            "asked": self.asked,
            "reused": self.reused,
            "failed": self.failed,
        })
    }
}

/// A failure to reach the judge, told in the judge's own flags (the backend's messages name
/// the evaluated server's).
fn judge_error(url: &str, error: OpenAiError) -> JudgeError {
    let url = url.to_string();
    match error {
        OpenAiError::Unreachable { error, .. } => JudgeError::Unreachable {
            url,
            error: error.to_string(),
        },
        OpenAiError::KeyRefused { code, .. } => JudgeError::KeyRefused { url, code },
        error => JudgeError::Failed { url, error },
    }
}

/// The judge's reply to each prompt (`None` where a sample needs none), from the journal
/// where answered before, else asked now and journaled. A reply the judge never gave
/// (failures after every retry) is `Some("")`, as lmms-eval reads one, and counted.
pub fn judge_all(
    task: &str,
    prompts: &[Option<(usize, String)>],
    options: Option<&JudgeOptions>,
    output_dir: &Path,
) -> Result<(Vec<Option<String>>, JudgeReport), JudgeError> {
    let needed = prompts.iter().flatten().count();
    let mut report = JudgeReport::default();
    let mut replies: Vec<Option<String>> = vec![None; prompts.len()];
    if needed == 0 {
        return Ok((replies, report));
    }
    let Some(options) = options else {
        return Err(JudgeError::NoJudge {
            task: task.to_string(),
            count: needed,
        });
    };
    let path = journal_path(output_dir, task);
    let known = read_judgments(&path);
    let mut pending: BTreeMap<usize, (usize, String, String)> = BTreeMap::new();
    let mut copies: Vec<(usize, usize)> = Vec::new();
    let mut first_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let Some((doc_id, prompt)) = prompt else {
            continue;
        };
        let key = judgment_key(&options.model, prompt);
        match known.get(&key) {
            Some(j) => {
                replies[i] = Some(j.reply.clone());
                report.reused += 1;
            }
            // The same prompt twice (two samples alike) is asked once.
            None => match first_of.get(&key) {
                Some(&first) => copies.push((i, first)),
                None => {
                    first_of.insert(key.clone(), i);
                    pending.insert(i, (*doc_id, prompt.clone(), key));
                }
            },
        }
    }
    if pending.is_empty() {
        return Ok((replies, report));
    }
    let backend = OpenAiBackend::connect(OpenAiOptions {
        base_urls: vec![options.base_url.clone()],
        api_key: options.api_key.clone(),
        model: Some(options.model.clone()),
        concurrency: options.concurrency,
        attempts: options.attempts,
        timeout: options.timeout,
        backoff: Duration::from_secs(1),
        replica_cooldown: Duration::from_secs(5),
    })
    .map_err(|error| judge_error(&options.base_url, error))?;
    let journal_error = |error| JudgeError::Journal {
        path: path.clone(),
        error,
    };
    let mut writer = JudgmentWriter::open(&path).map_err(journal_error)?;
    for round in 1..=EMPTY_REPLY_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let mut again = BTreeMap::new();
        let mut failure = None;
        // Each answer is journaled as it arrives, so a kill loses none.
        ask(&backend, &pending, &mut |i, answer| {
            let Some((doc_id, prompt, key)) = pending.get(&i).cloned() else {
                return;
            };
            report.asked += 1;
            let judgment = match answer {
                Ok(reply) if reply.trim().is_empty() && round < EMPTY_REPLY_ROUNDS => {
                    again.insert(i, (doc_id, prompt, key));
                    return;
                }
                // Empty every time: read as "" (as lmms-eval does), but a failure, counted
                // and asked again on the next run.
                Ok(reply) if reply.trim().is_empty() => {
                    report.failed += 1;
                    replies[i] = Some(String::new());
                    Judgment {
                        key,
                        doc_id,
                        reply,
                        error: Some(format!("empty reply {EMPTY_REPLY_ROUNDS} times")),
                    }
                }
                Ok(reply) => {
                    replies[i] = Some(reply.clone());
                    Judgment {
                        key,
                        doc_id,
                        reply,
                        error: None,
                    }
                }
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(task, doc_id, "the judge did not answer: {error}");
                    replies[i] = Some(String::new());
                    Judgment {
                        key,
                        doc_id,
                        reply: String::new(),
                        error: Some(error),
                    }
                }
            };
            if let Err(e) = writer.record(&judgment) {
                failure.get_or_insert(e);
            }
        });
        if let Some(error) = failure {
            return Err(journal_error(error));
        }
        pending = again;
    }
    for (i, first) in copies {
        replies[i] = replies[first].clone();
        report.reused += 1;
    }
    Ok((replies, report))
}

/// Sends every pending prompt (at the judge's concurrency), handing each answer (by
/// prompt index) to `answered` as it arrives.
fn ask(
    backend: &OpenAiBackend,
    pending: &BTreeMap<usize, (usize, String, String)>,
    answered: &mut dyn FnMut(usize, Result<String, String>),
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Job>(backend.queue_depth().max(1));
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (&i, (_, prompt, _)) in pending {
                let job = Job {
                    doc_id: i,
                    parts: vec![PromptPart::Text(prompt.clone())],
                    max_tokens: MAX_TOKENS,
                    stop: Vec::new(),
                    temperature: 0.0,
                    prepared: None,
                };
                if tx.blocking_send(job).is_err() {
                    break;
                }
            }
        });
        backend.run(rx, &mut |p| {
            let answer = match p.error {
                Some(e) => Err(e),
                None => Ok(p.response),
            };
            answered(p.doc_id, answer);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(base_url: String) -> JudgeOptions {
        JudgeOptions {
            base_url,
            model: "judge".into(),
            api_key: None,
            concurrency: 1,
            attempts: 1,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn judge_failures_name_the_judge_flags() {
        let dir = tempfile::tempdir().unwrap();
        let prompts = [Some((0, "Is it right?".to_string())), None];
        let err = judge_all("t", &prompts, None, dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("pass --judge-url and --judge-model"),
            "{err}"
        );
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", closed.local_addr().unwrap());
        drop(closed);
        let err = judge_all("t", &prompts, Some(&options(url.clone())), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach the judge at {url}"))
                && text.contains("--judge-url")
                && !text.contains("--base-url"),
            "{text}"
        );
        // Nothing needed: no judge is asked, or required.
        let (replies, report) = judge_all("t", &[None], None, dir.path()).unwrap();
        assert_eq!(replies, vec![None]);
        assert_eq!(report.asked + report.reused + report.failed, 0);
    }
}
