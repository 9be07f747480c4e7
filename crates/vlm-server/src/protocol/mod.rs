//! OpenAI's request and response bodies (plus vLLM's extra sampling fields). Requests
//! ignore fields they do not know; responses carry every field the spec marks required.

pub mod chat;
pub mod common;
pub mod completion;
