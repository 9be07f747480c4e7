//! Why an image processor config, an image or a pixel budget cannot be preprocessed.

/// Each message says what is wrong in the user's terms (the caller adds which file or
/// which image).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// The image processor's config cannot be used.
    #[error("{0}")]
    Config(String),
    /// This image cannot be processed under this pixel budget.
    #[error("{0}")]
    Image(String),
}
