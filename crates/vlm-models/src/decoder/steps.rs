//! One batched forward step as the models see it: each sequence's new tokens, image
//! features and positions ([`SeqStep`]), which rows want logits ([`LogitRows`]), and
//! running such a step through the decoder.

use candle_core::Tensor;

use super::attention::{DecoderInput, SeqSlice};
use super::kv::KvCache;
use super::stack::Decoder;
use crate::error::{ModelError, Result};

/// One sequence's share of a batched forward step.
pub struct SeqStep<'a> {
    /// The sequence's id in the KV cache.
    pub seq: usize,
    /// Tokens already in the KV cache for this sequence.
    pub past: usize,
    /// The new tokens.
    pub tokens: &'a [u32],
    /// Features for the image tokens among `tokens`, in order (`[n, hidden]`). `None`
    /// embeds every token as text (generated tokens).
    pub image_features: Option<Tensor>,
    /// 3D rotary positions of `tokens` (a Qwen2-VL prompt chunk). `None`: token `i` is at
    /// position `past + i + position_offset` on every axis.
    pub mrope_positions: Option<&'a [[u32; 3]]>,
    /// Shift of generated tokens' positions (Qwen2-VL's rope delta; 0 otherwise).
    pub position_offset: i64,
}

impl SeqStep<'_> {
    /// The step's positions on each of the three M-RoPE axes (all equal for plain text).
    pub(crate) fn positions_3d(&self) -> Result<[Vec<u32>; 3]> {
        if let Some(p) = self.mrope_positions {
            if p.len() != self.tokens.len() {
                return Err(ModelError::InvalidStep(format!(
                    "{} positions for {} tokens",
                    p.len(),
                    self.tokens.len()
                )));
            }
            return Ok(std::array::from_fn(|axis| {
                p.iter().map(|t| t[axis]).collect()
            }));
        }
        let flat = self.positions_1d()?;
        Ok([flat.clone(), flat.clone(), flat])
    }

    /// `past + i + position_offset` for each new token.
    pub(crate) fn positions_1d(&self) -> Result<Vec<u32>> {
        (0..self.tokens.len())
            .map(|i| {
                let p = (self.past + i) as i64 + self.position_offset;
                u32::try_from(p)
                    .map_err(|_| ModelError::InvalidStep(format!("position {p} is out of range")))
            })
            .collect()
    }
}

/// Which rows of a step to compute logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitRows {
    /// The last new token of each sequence: what generation needs.
    LastPerSeq,
    /// Every new token (for scoring prompts and for tests).
    All,
}

/// Row index of each sequence's last new token in a stacked step.
fn last_rows(steps: &[SeqStep<'_>]) -> Vec<u32> {
    let mut end = 0u32;
    steps
        .iter()
        .map(|s| {
            end += s.tokens.len() as u32;
            end - 1
        })
        .collect()
}

impl Decoder {
    /// Token embeddings of one step, with its image features written over the image tokens.
    /// Without features every token is embedded as text: generated tokens that happen to be
    /// the image token are just tokens, as in transformers.
    fn embed_step(&self, step: &SeqStep<'_>, image_token: u32) -> Result<Tensor> {
        let text = self.embed(step.tokens)?;
        let Some(features) = &step.image_features else {
            return Ok(text);
        };
        let n_image = step.tokens.iter().filter(|&&t| t == image_token).count();
        if n_image != features.dim(0)? {
            return Err(ModelError::InvalidStep(format!(
                "step has {n_image} image tokens but {} image feature rows",
                features.dim(0)?
            )));
        }
        let mut pieces = Vec::new();
        let (mut i, mut used) = (0, 0);
        while i < step.tokens.len() {
            let is_image = step.tokens[i] == image_token;
            let run = step.tokens[i..]
                .iter()
                .take_while(|&&t| (t == image_token) == is_image)
                .count();
            if is_image {
                pieces.push(features.narrow(0, used, run)?.to_dtype(text.dtype())?);
                used += run;
            } else {
                pieces.push(text.narrow(0, i, run)?);
            }
            i += run;
        }
        Ok(Tensor::cat(&pieces, 0)?)
    }

    /// One batched step: embeds every sequence's new tokens, runs the layers with the
    /// rotary tables `cos` / `sin` (one row per new token, in step order) and returns the
    /// logits of the rows asked for.
    pub(crate) fn run_steps(
        &self,
        steps: &[SeqStep<'_>],
        image_token: u32,
        (cos, sin): (Tensor, Tensor),
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        let embeddings = steps
            .iter()
            .map(|s| self.embed_step(s, image_token))
            .collect::<Result<Vec<_>>>()?;
        let seqs: Vec<SeqSlice> = steps
            .iter()
            .map(|s| SeqSlice {
                seq: s.seq,
                past: s.past,
                len: s.tokens.len(),
            })
            .collect();
        let input = DecoderInput {
            embeddings: Tensor::cat(&embeddings, 0)?,
            cos,
            sin,
            seqs: &seqs,
        };
        let hidden = self.forward(&input, kv)?;
        let hidden = match rows {
            LogitRows::All => hidden,
            LogitRows::LastPerSeq => {
                let last = Tensor::new(last_rows(steps), hidden.device())?;
                hidden.index_select(&last, 0)?
            }
        };
        self.logits(&hidden)
    }
}
