//! Why a task file was refused: one line naming the file, the key and the problem.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TaskFileError {
    #[error("cannot read task file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// TOML syntax, an unknown or missing key, or a value of the wrong type.
    #[error("task file {}, line {line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A well-formed file whose values do not make a task.
    #[error("task file {}: `{key}`: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error("unknown task `{name}`; known: {known} (or a path to a task file ending in .toml)")]
    Unknown { name: String, known: String },
    #[error(
        "task file {} names its task `{name}`, which is a built-in task; give it another name",
        path.display()
    )]
    ShadowsBuiltin { path: PathBuf, name: String },
}

impl TaskFileError {
    /// A TOML error as one line: the line it points at and the message's first line.
    pub(super) fn parse(path: &std::path::Path, text: &str, error: &toml::de::Error) -> Self {
        let line = error.span().map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        let mut message = error
            .message()
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        // Type errors do not say which key; the line does.
        let key = text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !message.contains(&format!("`{k}`")));
        if let Some(key) = key {
            message = format!("`{key}`: {message}");
        }
        TaskFileError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        }
    }
}
