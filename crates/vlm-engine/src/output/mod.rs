//! The engine's output side: every string a caller needs, made once on the engine thread
//! (vLLM v1's output processor): text deltas held back around stop strings, and the token
//! texts logprobs show. Callers only format what arrives.

mod logprob_text;
mod text_stream;

pub(crate) use logprob_text::LogprobText;
pub(crate) use text_stream::TextStream;
