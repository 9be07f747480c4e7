//! What a model family provides behind one trait: its image preprocessing (in its own
//! pixel type), its prompt positions and its network. [`LoadedFamily`] is the same with
//! the pixel type erased, the form `VlmModel` holds; the one place that reads a family's
//! pixels back out of [`ImagePixels`] is here.

mod prompt;
mod source;

pub(crate) use prompt::FamilyPixels;
pub use prompt::{ImagePixels, PreparedImage, PreparedPrompt};
pub(crate) use source::FamilySource;

use candle_core::Tensor;

use crate::decoder::{DecoderConfig, KvCache, LogitRows, MropePositions, SeqStep};
use crate::error::{ModelError, Result};
use crate::preprocess::{Image8, PixelBudget, PreprocessError};

/// One model family (LLaVA, Qwen2-VL) once loaded.
pub(crate) trait Family: Send + Sync {
    /// The preprocessed form of one image this family's vision tower takes.
    type Pixels: FamilyPixels;

    fn text_config(&self) -> &DecoderConfig;
    /// Bytes of the weights one decode step reads (the decoder's linear layers and head).
    fn decode_weight_bytes(&self) -> usize;
    fn image_token_id(&self) -> u32;
    /// Whether per-request `min_pixels` / `max_pixels` mean anything to this family.
    fn takes_pixel_budget(&self) -> bool;
    /// One decoded image's pixels and how many prompt tokens it fills.
    fn prepare_image(
        &self,
        rgb: &Image8,
        budget: PixelBudget,
    ) -> std::result::Result<(Self::Pixels, usize), PreprocessError>;
    /// Vision features of each image, `[num_tokens, hidden]` each, in input order.
    fn encode_images(&self, images: &[&Self::Pixels]) -> Result<Vec<Tensor>>;
    /// Special positions of an expanded prompt, when the family has them.
    fn positions(
        &self,
        token_ids: &[u32],
        images: &[&Self::Pixels],
    ) -> Result<Option<MropePositions>>;
    /// One batched step; logits (`[rows, vocab]`, f32) for the rows asked for.
    fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor>;
}

/// A [`Family`] with its pixel type erased.
pub(crate) trait LoadedFamily: Send + Sync {
    fn text_config(&self) -> &DecoderConfig;
    fn decode_weight_bytes(&self) -> usize;
    fn image_token_id(&self) -> u32;
    fn takes_pixel_budget(&self) -> bool;
    fn prepare_image(
        &self,
        rgb: &Image8,
        budget: PixelBudget,
    ) -> std::result::Result<(ImagePixels, usize), PreprocessError>;
    fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>>;
    fn positions(
        &self,
        token_ids: &[u32],
        images: &[PreparedImage],
    ) -> Result<Option<MropePositions>>;
    fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor>;
}

impl<F: Family> LoadedFamily for F {
    fn text_config(&self) -> &DecoderConfig {
        Family::text_config(self)
    }

    fn decode_weight_bytes(&self) -> usize {
        Family::decode_weight_bytes(self)
    }

    fn image_token_id(&self) -> u32 {
        Family::image_token_id(self)
    }

    fn takes_pixel_budget(&self) -> bool {
        Family::takes_pixel_budget(self)
    }

    fn prepare_image(
        &self,
        rgb: &Image8,
        budget: PixelBudget,
    ) -> std::result::Result<(ImagePixels, usize), PreprocessError> {
        let (pixels, tokens) = Family::prepare_image(self, rgb, budget)?;
        Ok((pixels.into_pixels(), tokens))
    }

    fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>> {
        let own = own_pixels::<F::Pixels>(images.iter().copied())?;
        Family::encode_images(self, &own)
    }

    fn positions(
        &self,
        token_ids: &[u32],
        images: &[PreparedImage],
    ) -> Result<Option<MropePositions>> {
        let own = own_pixels::<F::Pixels>(images.iter())?;
        Family::positions(self, token_ids, &own)
    }

    fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        Family::forward(self, steps, kv, rows)
    }
}

/// Each image's pixels in the family's own form; an image prepared by another family
/// (which `VlmModel` never hands over) is an invalid step, not a panic.
fn own_pixels<'a, P: FamilyPixels>(
    images: impl Iterator<Item = &'a PreparedImage>,
) -> Result<Vec<&'a P>> {
    images
        .map(|image| {
            P::from_pixels(&image.pixels).ok_or_else(|| {
                ModelError::InvalidStep(format!(
                    "an image was preprocessed for another model family; this one takes {}",
                    P::FORM
                ))
            })
        })
        .collect()
}
