//! The judgments journal (`judgments_<task>.jsonl` beside the predictions): one line per
//! judge answer, keyed by a hash of the judge model and the exact prompt, appended and
//! flushed as each arrives, so a rerun, `--resume` or rescoring never asks the judge twice
//! for the same answer.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::journal::drop_torn_tail;

/// One judge answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    /// blake3 of the judge model, a newline, and the prompt.
    pub key: String,
    pub doc_id: usize,
    /// The judge's reply as sent (the verdict is read from it by the task).
    pub reply: String,
    /// Set when the judge could not answer; such lines are asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn judgment_key(model: &str, prompt: &str) -> String {
    blake3::hash(format!("{model}\n{prompt}").as_bytes())
        .to_hex()
        .to_string()
}

pub fn journal_path(output_dir: &Path, task: &str) -> PathBuf {
    output_dir.join(format!("judgments_{task}.jsonl"))
}

/// The answered judgments in `path` by key (failed ones and unreadable lines left out).
pub fn read_judgments(path: &Path) -> HashMap<String, Judgment> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Judgment>(l).ok())
        .filter(|j| j.error.is_none())
        .map(|j| (j.key.clone(), j))
        .collect()
}

/// Appends judgments, one flushed line each.
pub struct JudgmentWriter {
    file: std::fs::File,
}

impl JudgmentWriter {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        // A line cut short by a kill goes, as in the predictions journal.
        match drop_torn_tail(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self { file })
    }

    pub fn record(&mut self, judgment: &Judgment) -> std::io::Result<()> {
        let line = serde_json::to_string(judgment).map_err(std::io::Error::other)?;
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_judgments_are_read_back_and_failed_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), "t");
        let mut w = JudgmentWriter::open(&path).unwrap();
        let ok = Judgment {
            key: judgment_key("m", "p1"),
            doc_id: 0,
            reply: "12".into(),
            error: None,
        };
        let failed = Judgment {
            key: judgment_key("m", "p2"),
            doc_id: 1,
            reply: String::new(),
            error: Some("HTTP 503".into()),
        };
        w.record(&ok).unwrap();
        w.record(&failed).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{truncated")
            .unwrap();
        let read = read_judgments(&path);
        assert_eq!(read.len(), 1);
        assert_eq!(read[&ok.key], ok);
        // Reopened after the kill: the torn line goes, and the next judgment reads back.
        let again = Judgment {
            key: judgment_key("m", "p3"),
            doc_id: 2,
            reply: "7".into(),
            error: None,
        };
        JudgmentWriter::open(&path).unwrap().record(&again).unwrap();
        let read = read_judgments(&path);
        assert_eq!(read.len(), 2);
        assert_eq!(read[&again.key], again);
        assert!(!std::fs::read_to_string(&path)
            .unwrap()
            .contains("truncated"));
        assert_ne!(judgment_key("m", "p1"), judgment_key("n", "p1"));
    }
}
