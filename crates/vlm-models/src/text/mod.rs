//! Text side of a prompt: the checkpoint's chat template and its tokenizer.

mod chat_template;
mod token_spelling;
mod tokenizer;

pub use chat_template::{ChatTemplate, TemplateMessage, TemplatePart};
pub use token_spelling::{SpellingError, TokenSpelling};
pub use tokenizer::TextTokenizer;
