use std::path::PathBuf;

use crate::preprocess::DecodeError;

/// Everything that can go wrong turning a checkpoint and a request into logits. Each message
/// says what is wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {0} does not exist; pass a local snapshot directory or a known alias ({aliases})", aliases = crate::loader::known_aliases())]
    NoSuchModel(PathBuf),
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
    #[error("image {index}: {message}")]
    ImageProcessing { index: usize, message: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the prompt has {placeholders} image placeholder(s) after templating but {images} image(s) were given; the chat template must emit one image token per image")]
    ImageCountMismatch { placeholders: usize, images: usize },
    #[error("invalid forward step: {0}")]
    InvalidStep(String),
    #[error("tensor computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::InvalidFile {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
