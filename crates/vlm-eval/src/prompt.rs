//! What one dataset row asks the model: the text lmms-eval logs, and the user message's
//! content parts (text and images, in the order the model sees them). Tasks build prompts;
//! backends send them.

use std::sync::Arc;

/// One piece of a prompt, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptPart {
    Text(String),
    /// Encoded image bytes as the dataset holds them, and the column they came from.
    Image {
        column: String,
        bytes: Arc<[u8]>,
    },
}

/// What one row asks the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The text as lmms-eval logs it (`input` in its samples files).
    pub input: String,
    /// The user message's content, as lmms-eval's chat path builds it.
    pub parts: Vec<PromptPart>,
}
