use candle_core::Tensor;

use super::types::{LogitRows, PreparedImage, SeqStep};
use crate::decoder::{DecoderConfig, KvCache};
use crate::error::Result;
use crate::preprocess::{Image8, PixelBudget};
use crate::qwen2_vl::MropePositions;

/// What differs between model families once the tokenizer and chat template are loaded:
/// how images are preprocessed and encoded, how positions are assigned, the network.
pub(crate) trait Family: Send + Sync {
    fn text_config(&self) -> &DecoderConfig;
    fn image_token_id(&self) -> u32;
    /// Whether per-request `min_pixels` / `max_pixels` mean anything to this family.
    fn takes_pixel_budget(&self) -> bool;
    fn prepare_image(
        &self,
        rgb: &Image8,
        budget: PixelBudget,
    ) -> std::result::Result<PreparedImage, String>;
    fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>>;
    /// Special positions of an expanded prompt, when the family has them.
    fn positions(
        &self,
        token_ids: &[u32],
        images: &[PreparedImage],
    ) -> std::result::Result<Option<MropePositions>, String>;
    fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor>;
}
