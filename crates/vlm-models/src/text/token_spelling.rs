//! The bytes each token of the vocabulary stands for, as a grammar engine needs them to
//! know which tokens may continue an output.
//!
//! Read from the tokenizer's vocabulary and its decoder: byte-level BPE (GPT-2's byte to
//! character map, Qwen2), SentencePiece with byte fallback (`<0x0A>` tokens and `▁` for a
//! space, Llama) and Metaspace decoders. Written here rather than taken from llguidance's
//! `tokenizer_json` helper because that one refuses Metaspace decoders and panics on a
//! malformed `<0x..>` token, and a tokenizer file must not panic the server.

use std::collections::HashMap;

use serde_json::Value;

use super::TextTokenizer;

/// What one token id spells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSpelling {
    /// Ordinary text: these bytes (possibly part of a UTF-8 character).
    Bytes(Vec<u8>),
    /// A special token (`</s>`, `<|im_end|>`, `<image>`): never part of constrained text.
    Special(String),
    /// An id the tokenizer does not define (the embedding table is padded past it).
    Unused,
}

/// How the decoder turns token strings into text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scheme {
    /// Every character stands for one byte (GPT-2's map).
    ByteLevel,
    /// Token strings are text, with `space` for a space and `<0xNN>` tokens for raw bytes.
    Pieces { space: char },
}

/// Why a tokenizer's spelling cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpellingError(String);

impl TextTokenizer {
    /// The spelling of ids `0..vocab_size` (the model's embedding rows, which may be more
    /// than the tokenizer defines).
    pub fn token_spellings(&self, vocab_size: usize) -> Result<Vec<TokenSpelling>, SpellingError> {
        let decoder = self
            .inner()
            .get_decoder()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| SpellingError(format!("cannot read the tokenizer's decoder: {e}")))?;
        let scheme = decoder.as_ref().and_then(scheme_of).ok_or_else(|| {
            SpellingError(format!(
                "the tokenizer's decoder ({}) is not byte-level, byte-fallback or metaspace, so its tokens' bytes are unknown",
                decoder
                    .as_ref()
                    .and_then(|d| d["type"].as_str())
                    .unwrap_or("none")
            ))
        })?;
        let byte_of_char = byte_level_map();
        let added = self.inner().get_added_tokens_decoder();
        let mut spellings = Vec::with_capacity(vocab_size);
        for id in 0..vocab_size as u32 {
            let spelling = match (added.get(&id), self.id_to_token(id)) {
                (Some(token), _) if token.special => TokenSpelling::Special(token.content.clone()),
                (Some(token), _) => TokenSpelling::Bytes(token.content.clone().into_bytes()),
                (None, Some(piece)) => TokenSpelling::Bytes(spell(&piece, scheme, &byte_of_char)),
                (None, None) => TokenSpelling::Unused,
            };
            spellings.push(spelling);
        }
        Ok(spellings)
    }
}

/// The decoding scheme a decoder (as tokenizer.json writes it) implies, if it is one we read.
fn scheme_of(decoder: &Value) -> Option<Scheme> {
    match decoder["type"].as_str()? {
        "ByteLevel" => Some(Scheme::ByteLevel),
        "Metaspace" => Some(Scheme::Pieces {
            space: single_char(&decoder["replacement"]).unwrap_or('▁'),
        }),
        "Sequence" => {
            let parts = decoder["decoders"].as_array()?;
            if parts.iter().any(|d| d["type"] == "ByteLevel") {
                return Some(Scheme::ByteLevel);
            }
            let byte_fallback = parts.iter().any(|d| d["type"] == "ByteFallback");
            let metaspace = parts.iter().find(|d| d["type"] == "Metaspace");
            let replace = parts
                .iter()
                .find(|d| d["type"] == "Replace" && d["content"] == " ");
            let space = metaspace
                .and_then(|m| single_char(&m["replacement"]))
                .or_else(|| replace.and_then(|r| single_char(&r["pattern"]["String"])));
            (byte_fallback || metaspace.is_some()).then_some(Scheme::Pieces {
                space: space.unwrap_or('▁'),
            })
        }
        _ => None,
    }
}

fn single_char(value: &Value) -> Option<char> {
    let mut chars = value.as_str()?.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn spell(piece: &str, scheme: Scheme, byte_of_char: &HashMap<char, u8>) -> Vec<u8> {
    match scheme {
        Scheme::ByteLevel => piece
            .chars()
            .map(|c| byte_of_char.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            // A character outside the map: the piece as UTF-8 text.
            .unwrap_or_else(|| piece.as_bytes().to_vec()),
        Scheme::Pieces { space } => match fallback_byte(piece) {
            Some(byte) => vec![byte],
            None => piece.replace(space, " ").into_bytes(),
        },
    }
}

/// The byte of a SentencePiece byte-fallback token such as `<0x0A>`.
fn fallback_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// GPT-2's byte-level alphabet, reversed: the printable Latin-1 bytes stand for
/// themselves, the other 68 are shifted to U+0100 onwards in byte order.
fn byte_level_map() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut shifted = 0x100u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(byte)
        } else {
            let c = char::from_u32(shifted).expect("below the surrogates");
            shifted += 1;
            c
        };
        map.insert(c, byte);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> TextTokenizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name)
            .join("tokenizer.json");
        TextTokenizer::from_file(&path).unwrap()
    }

    /// Every ordinary token's spelling is what the tokenizer decodes it to, when that is
    /// whole UTF-8 (a lone token at the start loses Metaspace's leading space, so it is
    /// compared after a preceding token).
    fn check_against_decode(tokenizer: &TextTokenizer, vocab: usize, anchor: u32) {
        let spellings = tokenizer.token_spellings(vocab).unwrap();
        assert_eq!(spellings.len(), vocab);
        let anchor_text = tokenizer.decode(&[anchor], false).unwrap();
        let mut checked = 0;
        for (id, spelling) in spellings.iter().enumerate() {
            let TokenSpelling::Bytes(bytes) = spelling else {
                continue;
            };
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            let decoded = tokenizer.decode(&[anchor, id as u32], false).unwrap();
            assert_eq!(
                decoded.strip_prefix(&anchor_text),
                Some(text),
                "token {id} spelled {text:?}"
            );
            checked += 1;
        }
        assert!(checked > vocab / 2, "only {checked} tokens checked");
    }

    #[test]
    fn byte_level_tokens_spell_what_they_decode_to() {
        let tokenizer = fixture("qwen2-vl-tiny");
        check_against_decode(&tokenizer, 368, tokenizer.token_to_id("a").unwrap());
        let spellings = tokenizer.token_spellings(370).unwrap();
        assert_eq!(
            spellings[362],
            TokenSpelling::Special("<|im_end|>".to_string())
        );
        // Ids past the tokenizer (a padded embedding table) spell nothing.
        assert_eq!(spellings[369], TokenSpelling::Unused);
        // All 256 bytes are spellable one by one.
        let mut bytes: Vec<u8> = spellings
            .iter()
            .filter_map(|s| match s {
                TokenSpelling::Bytes(b) if b.len() == 1 => Some(b[0]),
                _ => None,
            })
            .collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }

    #[test]
    fn metaspace_tokens_spell_what_they_decode_to() {
        let tokenizer = fixture("llava-tiny");
        check_against_decode(&tokenizer, 322, tokenizer.token_to_id("a").unwrap());
        let spellings = tokenizer.token_spellings(322).unwrap();
        assert_eq!(spellings[2], TokenSpelling::Special("</s>".to_string()));
        assert_eq!(
            spellings[320],
            TokenSpelling::Special("<image>".to_string())
        );
    }

    #[test]
    fn byte_fallback_pieces_and_decoders() {
        let llama = serde_json::json!({"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]});
        let scheme = scheme_of(&llama).unwrap();
        assert_eq!(scheme, Scheme::Pieces { space: '▁' });
        let map = byte_level_map();
        assert_eq!(spell("<0x0A>", scheme, &map), b"\n");
        assert_eq!(spell("▁hello", scheme, &map), b" hello");
        // Malformed byte tokens are text, not a panic.
        assert_eq!(spell("<0xZZ>", scheme, &map), b"<0xZZ>");
        assert_eq!(spell("<0x1>", scheme, &map), b"<0x1>");
        assert_eq!(spell("Ġ{", Scheme::ByteLevel, &map), b" {");
        assert_eq!(spell("Ċ", Scheme::ByteLevel, &map), b"\n");
        assert_eq!(scheme_of(&serde_json::json!({"type": "WordPiece"})), None);
    }
}
