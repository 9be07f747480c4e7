use candle_core::Tensor;

use crate::error::{ModelError, Result};
use crate::preprocess::{PatchValues, PixelValues};
use crate::qwen2_vl::MropePositions;

/// An image's preprocessed pixels, in the form its model family takes them.
#[derive(Debug, Clone)]
pub enum ImagePixels {
    /// A fixed-size `[3, H, W]` image (LLaVA's CLIP tower).
    Fixed(PixelValues),
    /// Flattened patches and their grid (Qwen2-VL's dynamic resolution).
    Patches(PatchValues),
}

/// One image of a prompt, preprocessed, with the number of prompt tokens it fills.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub pixels: ImagePixels,
    pub num_tokens: usize,
    /// Identifies the image's content and preprocessing: equal keys, equal features.
    pub key: [u8; 32],
}

/// A prompt ready for the network: token ids with every image placeholder already expanded
/// to as many image tokens as the image has features.
#[derive(Debug, Clone)]
pub struct PreparedPrompt {
    /// The templated prompt text (one placeholder per image).
    pub text: String,
    pub token_ids: Vec<u32>,
    pub images: Vec<PreparedImage>,
    /// Qwen2-VL's 3D rotary positions of the prompt tokens; `None` for 1D-position models.
    pub mrope: Option<MropePositions>,
}

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

impl PreparedPrompt {
    /// Prompt tokens `range` as one prefill step; `image_features` must cover exactly the
    /// image tokens in the range.
    pub fn prefill_step(
        &self,
        seq: usize,
        range: std::ops::Range<usize>,
        image_features: Option<Tensor>,
    ) -> SeqStep<'_> {
        SeqStep {
            seq,
            past: range.start,
            tokens: &self.token_ids[range.clone()],
            image_features,
            mrope_positions: self.mrope.as_ref().map(|m| &m.positions[range]),
            position_offset: 0,
        }
    }

    /// Generated `tokens` following `past` tokens of this prompt's sequence.
    pub fn decode_step<'a>(&self, seq: usize, past: usize, tokens: &'a [u32]) -> SeqStep<'a> {
        SeqStep {
            seq,
            past,
            tokens,
            image_features: None,
            mrope_positions: None,
            position_offset: self.mrope.as_ref().map_or(0, |m| m.offset),
        }
    }
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
pub(crate) fn last_rows(steps: &[SeqStep<'_>]) -> Vec<u32> {
    let mut end = 0u32;
    steps
        .iter()
        .map(|s| {
            end += s.tokens.len() as u32;
            end - 1
        })
        .collect()
}
