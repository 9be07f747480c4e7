//! The text logprobs show for one token: its own text, special tokens included, with the
//! leading space it has mid-sentence. Decoders drop a first token's space (Metaspace), so
//! the token is decoded after a fixed one-letter prefix that is then cut off.

use vlm_core::TokenLogprob;
use vlm_models::text::TextTokenizer;

pub(crate) struct LogprobText {
    /// Ids and decoded text of the prefix.
    prefix: Vec<u32>,
    head: String,
}

impl LogprobText {
    pub fn new(tokenizer: &TextTokenizer) -> Self {
        let prefix = tokenizer.encode("a", false).unwrap_or_default();
        let head = tokenizer.decode(&prefix, false).unwrap_or_default();
        Self { prefix, head }
    }

    pub fn token(&self, tokenizer: &TextTokenizer, id: u32) -> String {
        let mut ids = self.prefix.clone();
        ids.push(id);
        match tokenizer.decode(&ids, false) {
            Ok(text) if !self.head.is_empty() && text.starts_with(self.head.as_str()) => {
                text[self.head.len()..].to_string()
            }
            _ => tokenizer.decode(&[id], false).unwrap_or_default(),
        }
    }

    /// Sampled `(id, logprob)` alternatives with their texts.
    pub fn alternatives(&self, tokenizer: &TextTokenizer, top: &[(u32, f32)]) -> Vec<TokenLogprob> {
        top.iter()
            .map(|&(token_id, logprob)| TokenLogprob {
                token_id,
                token: self.token(tokenizer, token_id),
                logprob,
            })
            .collect()
    }
}
