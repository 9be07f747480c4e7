//! Compiling output formats against one model's vocabulary: the token trie built once from
//! the tokenizer's spellings, and llguidance's parser factory over it.

use std::sync::Arc;

use llguidance::api::ParserLimits;
use llguidance::toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};
use vlm_models::text::TokenSpelling;

use super::format::OutputFormat;
use super::grammar::Grammar;
use super::message::one_line;

/// Compiles formats for one vocabulary. Built once per model (a trie over every token's
/// bytes); compiling is done on the caller's thread, never the engine's.
pub struct GrammarCompiler {
    factory: ParserFactory,
}

impl GrammarCompiler {
    /// `spellings` covers every id the model can produce; `eos` are the ids that end a
    /// sequence (allowed once the output is complete).
    pub fn new(spellings: &[TokenSpelling], eos: &[u32]) -> Result<Self, String> {
        let words: Vec<Vec<u8>> = spellings
            .iter()
            .enumerate()
            .map(|(id, spelling)| match spelling {
                TokenSpelling::Bytes(bytes) if !bytes.is_empty() => bytes.clone(),
                TokenSpelling::Special(name) => special(name),
                // Unused ids and empty tokens can never be part of constrained text.
                _ => special(&format!("<[{id}]>")),
            })
            .collect();
        let first_eos = *eos
            .first()
            .ok_or("the model has no end-of-sequence token to end a constrained output")?;
        let info = TokRxInfo::new(words.len() as u32, first_eos);
        let mut trie = TokTrie::from(&info, &words);
        if eos.len() > 1 {
            trie = trie.with_eos_tokens(eos);
        }
        // Greedy tokenization over the trie: the engine never forces tokens, so only the
        // masks matter, and those are exact whatever the tokenizer's own merges would be.
        let env: llguidance::toktrie::TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        *factory.limits_mut() = ParserLimits::default();
        Ok(Self { factory })
    }

    /// Compiles a format; an error names what is wrong with it (a 400 for the client).
    /// Checks that the vocabulary can start an output, so a format the model cannot spell
    /// fails here rather than mid-generation.
    pub fn compile(&self, format: &OutputFormat) -> Result<Grammar, String> {
        let grammar = format.grammar()?;
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| one_line(&e.to_string()))?;
        let mut matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(one_line(&error));
        }
        match matcher.compute_mask() {
            Ok(mask) if !mask.is_zero() => Ok(Grammar::new(matcher)),
            _ => {
                Err("no token of the model's vocabulary can start an output in this format".into())
            }
        }
    }
}

/// A special token's entry in the trie: the marker byte, then its name.
fn special(name: &str) -> Vec<u8> {
    let mut bytes = vec![TokTrie::SPECIAL_TOKEN_MARKER];
    bytes.extend_from_slice(name.as_bytes());
    bytes
}
