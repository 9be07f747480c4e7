//! Everything that can go wrong turning a checkpoint and a request into logits, as typed
//! errors whose messages say what is wrong and what to do about it.

use std::path::PathBuf;

use crate::preprocess::{DecodeError, PreprocessError};

/// Everything that can go wrong turning a checkpoint and a request into logits. Each message
/// says what is wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {} does not exist; pass a local snapshot directory or a known alias ({aliases})", path.display())]
    NoSuchModel { path: PathBuf, aliases: String },
    #[error("{file} is missing from {dir}; the model directory must be a complete Hugging Face snapshot ({hint})")]
    MissingFile {
        dir: PathBuf,
        file: String,
        hint: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    InvalidFile { path: PathBuf, message: String },
    #[error("unsupported architecture {found:?} in {path}; supported: {supported}")]
    UnknownArchitecture {
        path: PathBuf,
        found: String,
        supported: &'static str,
    },
    #[error("unsupported setting in {path}: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error(
        "weight {name} is missing from the checkpoint in {dir}; the files do not match config.json"
    )]
    MissingWeight { dir: PathBuf, name: String },
    #[error("weight {name} has shape {actual:?} but config.json implies {expected:?}; the weights do not match config.json")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{alias} ({repo}) is not in the Hugging Face cache and the hub is unreachable ({reason}); download it where there is network (`hf download {repo}`) and copy the cache, or pass a local snapshot directory")]
    HubUnreachable {
        alias: String,
        repo: String,
        reason: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("image {index}: {source}")]
    Image { index: usize, source: DecodeError },
    #[error("image {index}: {error}")]
    ImageProcessing {
        index: usize,
        error: PreprocessError,
    },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the prompt has {placeholders} image placeholder(s) after templating but {images} image(s) were given; the chat template must emit one image token per image")]
    ImageCountMismatch { placeholders: usize, images: usize },
    #[error("invalid forward step: {0}")]
    InvalidStep(String),
    #[error("{0}")]
    BadOption(String),
    #[error("tensor computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// A `config.json` setting this crate cannot run; the message names the setting. The
/// loader turns it into [`ModelError::Unsupported`] with the file's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedConfig(pub String);

impl From<String> for UnsupportedConfig {
    fn from(message: String) -> Self {
        Self(message)
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsupported(path: impl Into<PathBuf>, reason: UnsupportedConfig) -> Self {
        Self::Unsupported {
            path: path.into(),
            message: reason.0,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::InvalidFile {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
