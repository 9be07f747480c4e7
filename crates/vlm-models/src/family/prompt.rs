//! A prompt ready for the network: token ids with every image expanded, the images'
//! preprocessed pixels, and the positions; and how each family's pixel type travels in the
//! one [`ImagePixels`] form callers carry.

use candle_core::Tensor;

use crate::decoder::{MropePositions, SeqStep};
use crate::preprocess::{PatchValues, PixelValues};

/// An image's preprocessed pixels, in the form its model family takes them.
#[derive(Debug, Clone)]
pub enum ImagePixels {
    /// A fixed-size `[3, H, W]` image (LLaVA's CLIP tower).
    Fixed(PixelValues),
    /// Flattened patches and their grid (Qwen2-VL's dynamic resolution).
    Patches(PatchValues),
}

/// A family's own pixel type: how it travels as [`ImagePixels`] and is read back, so a
/// family only ever sees its own form.
pub(crate) trait FamilyPixels: Sized + Send + Sync + 'static {
    /// What the family takes, for the error when it is handed something else.
    const FORM: &'static str;
    fn into_pixels(self) -> ImagePixels;
    fn from_pixels(pixels: &ImagePixels) -> Option<&Self>;
}

impl FamilyPixels for PixelValues {
    const FORM: &'static str = "whole fixed-size images";

    fn into_pixels(self) -> ImagePixels {
        ImagePixels::Fixed(self)
    }

    fn from_pixels(pixels: &ImagePixels) -> Option<&Self> {
        match pixels {
            ImagePixels::Fixed(p) => Some(p),
            ImagePixels::Patches(_) => None,
        }
    }
}

impl FamilyPixels for PatchValues {
    const FORM: &'static str = "flattened patches";

    fn into_pixels(self) -> ImagePixels {
        ImagePixels::Patches(self)
    }

    fn from_pixels(pixels: &ImagePixels) -> Option<&Self> {
        match pixels {
            ImagePixels::Patches(p) => Some(p),
            ImagePixels::Fixed(_) => None,
        }
    }
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
