//! Responses as they arrive: one JSON line per sample, appended and flushed at once, so a
//! killed run loses nothing and `--resume` starts where it stopped. The same file format
//! is what `vlm-eval score --predictions` reads.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One model answer (or the failure that stood in for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub doc_id: usize,
    pub response: String,
    /// Why no response came back after every retry; the sample is scored as an empty answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

impl Prediction {
    /// A sample with no response: scored as an empty answer, retried by `--resume`.
    pub fn failed(doc_id: usize, error: String) -> Self {
        Self {
            doc_id,
            response: String::new(),
            error: Some(error),
            prompt_tokens: None,
            completion_tokens: None,
            finish_reason: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read or write {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// A predictions line: ours, or an lmms-eval samples line (`filtered_resps` / `resps`).
#[derive(Deserialize)]
struct AnyLine {
    doc_id: usize,
    response: Option<String>,
    filtered_resps: Option<serde_json::Value>,
    resps: Option<serde_json::Value>,
    error: Option<String>,
    prompt_tokens: Option<usize>,
    completion_tokens: Option<usize>,
    finish_reason: Option<String>,
}

fn first_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => a.first().and_then(first_string),
        _ => None,
    }
}

/// Every prediction in a file, the last line for a doc winning. A final line without its
/// newline (cut short by a kill) is ignored; any other bad line is an error naming it.
pub fn read_predictions(path: &Path) -> Result<BTreeMap<usize, Prediction>, JournalError> {
    let bytes = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let complete = bytes.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let mut out = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let torn = i + 1 == lines.len() && !complete;
        if line.iter().all(u8::is_ascii_whitespace) || torn {
            continue;
        }
        let bad = |reason: String| JournalError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let parsed: AnyLine = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        let response = parsed
            .response
            .or_else(|| parsed.filtered_resps.as_ref().and_then(first_string))
            .or_else(|| parsed.resps.as_ref().and_then(first_string))
            .ok_or_else(|| bad("no `response` (or lmms-eval `filtered_resps`/`resps`)".into()))?;
        out.insert(
            parsed.doc_id,
            Prediction {
                doc_id: parsed.doc_id,
                response,
                error: parsed.error,
                prompt_tokens: parsed.prompt_tokens,
                completion_tokens: parsed.completion_tokens,
                finish_reason: parsed.finish_reason,
            },
        );
    }
    Ok(out)
}

/// An open predictions file.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Opens `path` for appending (`resume`) or starts it afresh.
    pub fn open(path: &Path, resume: bool) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true);
        if resume {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        // A line cut short by a kill is dropped, so the next answer starts a clean line.
        if resume && path.exists() {
            drop_torn_tail(path).map_err(io)?;
        }
        let file = options.open(path).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one line and flushes it to the OS.
    pub fn record(&mut self, prediction: &Prediction) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(prediction).map_err(|e| JournalError::Line {
            path: self.path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Cuts a last line a kill left without its newline (so the next append starts a line).
pub(crate) fn drop_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(keep as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(doc_id: usize, response: &str) -> Prediction {
        Prediction {
            doc_id,
            response: response.into(),
            error: None,
            prompt_tokens: Some(3),
            completion_tokens: Some(1),
            finish_reason: Some("stop".into()),
        }
    }

    #[test]
    fn resume_appends_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let mut j = Journal::open(&path, false).unwrap();
        j.record(&pred(0, "Yes")).unwrap();
        j.record(&pred(1, "No")).unwrap();
        drop(j);
        // A kill mid-write leaves half a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // ... here in the middle of a two-byte character.
        f.write_all(b"{\"doc_id\": 2, \"response\": \"No \xc3")
            .unwrap();
        drop(f);
        let got = read_predictions(&path).unwrap();
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [0, 1]);
        let mut j = Journal::open(&path, true).unwrap();
        j.record(&pred(2, "Yes")).unwrap();
        j.record(&pred(1, "Yes, retried")).unwrap();
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("No "), "the torn line is gone: {text}");
        assert_eq!(text.lines().count(), 4);
        let got = read_predictions(&path).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[&1].response, "Yes, retried");
        assert_eq!(got[&2], pred(2, "Yes"));
        // Starting afresh truncates.
        drop(Journal::open(&path, false).unwrap());
        assert!(read_predictions(&path).unwrap().is_empty());
    }

    #[test]
    fn reads_lmms_eval_samples_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(
            &path,
            "{\"doc_id\": 4, \"filtered_resps\": \"B\", \"resps\": [\"<think>x</think>B\"]}\n\
             {\"doc_id\": 5, \"resps\": [[\"No\"]]}\n",
        )
        .unwrap();
        let got = read_predictions(&path).unwrap();
        assert_eq!(got[&4].response, "B");
        assert_eq!(got[&5].response, "No");
        std::fs::write(
            &path,
            "{\"doc_id\": 1}\n{\"doc_id\": 2, \"response\": \"\"}\n",
        )
        .unwrap();
        let err = read_predictions(&path).unwrap_err().to_string();
        assert!(
            err.contains(":1:") && err.contains("no `response`"),
            "{err}"
        );
    }
}
