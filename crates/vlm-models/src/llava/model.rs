//! LLaVA-1.5 as one model family: CLIP preprocessing, the vision tower and projector, and
//! a Llama decoder with 1-D rotary positions.

use candle_core::{DType, Device, Tensor};

use super::clip::ClipVisionTower;
use super::config::LlavaConfig;
use super::projector::Projector;
use crate::decoder::{
    Decoder, DecoderConfig, Flavor, KvCache, LogitRows, MropePositions, RotaryEmbedding, SeqStep,
};
use crate::error::{ModelError, Result};
use crate::family::{Family, FamilySource};
use crate::loader::KeyLayout;
use crate::preprocess::{ClipImageProcessor, Image8, PixelBudget, PixelValues, PreprocessError};

/// llava-hf hub checkpoints predate transformers 5's `model.` nesting; transformers 5's own
/// `save_pretrained` writes those names too, except for the vision tower's `vision_model.`.
pub const KEY_LAYOUT: KeyLayout = KeyLayout {
    legacy_prefixes: &[
        ("model.language_model.", "language_model.model."),
        ("lm_head.", "language_model.lm_head."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.vision_tower.", "vision_tower."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ],
};

pub(crate) struct LlavaModel {
    config: LlavaConfig,
    processor: ClipImageProcessor,
    vision: ClipVisionTower,
    feature_layers: Vec<usize>,
    projector: Projector,
    decoder: Decoder,
    rotary: RotaryEmbedding,
    device: Device,
    dtype: DType,
}

impl LlavaModel {
    pub(crate) fn load(source: &FamilySource<'_>) -> Result<Self> {
        let config: LlavaConfig = serde_json::from_value(source.config().clone())
            .map_err(|e| source.invalid_config(e))?;
        config.validate().map_err(|e| source.unsupported(e))?;
        let rope_theta = config
            .text_config
            .rope(10000.0)
            .map_err(|e| source.unsupported(e))?;
        let (_, processor) = source.image_processor(ClipImageProcessor::from_json)?;
        let w = source.weights(KEY_LAYOUT)?;
        let feature_layers = config
            .feature_layer_indices()
            .map_err(|e| source.unsupported(e))?;
        let deepest = feature_layers.iter().copied().max().unwrap_or(0);
        let vision =
            ClipVisionTower::load(&w.pp("model.vision_tower"), &config.vision_config, deepest)?;
        let projector = Projector::load(&w.pp("model.multi_modal_projector"), &config)?;
        let decoder = Decoder::load(
            &w.pp("model.language_model"),
            &w.pp("lm_head"),
            &config.text_config,
            Flavor::Llama,
            config.ties_embeddings(),
        )?;
        let rotary = RotaryEmbedding::new(config.text_config.head_dim(), rope_theta);
        Ok(Self {
            config,
            processor,
            vision,
            feature_layers,
            projector,
            decoder,
            rotary,
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }
}

impl Family for LlavaModel {
    type Pixels = PixelValues;

    fn text_config(&self) -> &DecoderConfig {
        &self.config.text_config
    }

    fn decode_weight_bytes(&self) -> usize {
        self.decoder.weight_bytes()
    }

    fn image_token_id(&self) -> u32 {
        self.config.image_token_id()
    }

    fn takes_pixel_budget(&self) -> bool {
        false
    }

    fn prepare_image(
        &self,
        rgb: &Image8,
        _budget: PixelBudget,
    ) -> std::result::Result<(PixelValues, usize), PreprocessError> {
        Ok((self.processor.process(rgb), self.config.tokens_per_image()))
    }

    /// Projected features of each image, `[tokens_per_image, text_hidden]`, in input order.
    fn encode_images(&self, images: &[&PixelValues]) -> Result<Vec<Tensor>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let (h, w) = (images[0].height, images[0].width);
        let mut data = Vec::with_capacity(images.len() * 3 * h * w);
        for img in images {
            if (img.height, img.width) != (h, w) {
                return Err(ModelError::InvalidStep(
                    "LLaVA images must share one size after preprocessing".to_string(),
                ));
            }
            data.extend_from_slice(&img.data);
        }
        let pixels =
            Tensor::from_vec(data, (images.len(), 3, h, w), &self.device)?.to_dtype(self.dtype)?;
        let states = self.vision.hidden_states(&pixels, &self.feature_layers)?;
        let skip = usize::from(!self.config.keeps_cls());
        let selected = states
            .iter()
            .map(|s| {
                let n = s.dim(1)?;
                s.narrow(1, skip, n - skip)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let features = Tensor::cat(&selected, 2)?;
        let projected = self.projector.forward(&features)?;
        Ok((0..images.len())
            .map(|i| projected.get(i))
            .collect::<candle_core::Result<Vec<_>>>()?)
    }

    fn positions(&self, _: &[u32], _: &[&PixelValues]) -> Result<Option<MropePositions>> {
        Ok(None)
    }

    /// One batched decoder step over several sequences; logits for the rows asked for.
    fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        let mut positions = Vec::new();
        for s in steps {
            positions.extend(s.positions_1d()?);
        }
        let tables = self.rotary.cos_sin(&positions, self.dtype, &self.device)?;
        self.decoder
            .run_steps(steps, self.config.image_token_id(), tables, kv, rows)
    }
}
