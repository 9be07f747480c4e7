use candle_core::{DType, Device, Tensor};

use super::config::Qwen2VlConfig;
use super::vision::VisionTransformer;
use crate::decoder::{Decoder, Flavor, KvCache, RotaryEmbedding};
use crate::error::Result;
use crate::loader::Weights;
use crate::model::{LogitRows, SeqStep};
use crate::preprocess::PatchValues;

pub struct Qwen2VlModel {
    config: Qwen2VlConfig,
    vision: VisionTransformer,
    decoder: Decoder,
    rotary: RotaryEmbedding,
    device: Device,
    dtype: DType,
}

impl Qwen2VlModel {
    pub fn load(w: &Weights, config: Qwen2VlConfig) -> Result<Self> {
        let vision = VisionTransformer::load(&w.pp("model.visual"), &config.vision)?;
        let decoder = Decoder::load(
            &w.pp("model.language_model"),
            &w.pp("lm_head"),
            &config.text,
            Flavor::Qwen2,
            config.tie_word_embeddings,
        )?;
        let rotary = RotaryEmbedding::new(config.text.head_dim(), config.rope_theta);
        Ok(Self {
            config,
            vision,
            decoder,
            rotary,
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }

    pub fn config(&self) -> &Qwen2VlConfig {
        &self.config
    }

    /// Merged features of each image, `[tokens, hidden]`, in input order. All images go
    /// through the tower together; attention stays within each image.
    pub fn encode_images(&self, images: &[&PatchValues]) -> Result<Vec<Tensor>> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let patch_dim = first.patch_dim;
        let mut data = Vec::with_capacity(images.iter().map(|i| i.data.len()).sum());
        let mut grids = Vec::with_capacity(images.len());
        for img in images {
            if img.patch_dim != patch_dim {
                return Err(crate::ModelError::InvalidStep(
                    "images with different patch sizes".into(),
                ));
            }
            data.extend_from_slice(&img.data);
            grids.push(img.grid_thw);
        }
        let rows = data.len() / patch_dim;
        let patches =
            Tensor::from_vec(data, (rows, patch_dim), &self.device)?.to_dtype(self.dtype)?;
        self.vision.forward(&patches, &grids)
    }

    /// One batched decoder step with multimodal rotary positions.
    pub fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        let mut axes: [Vec<u32>; 3] = Default::default();
        for s in steps {
            for (axis, p) in axes.iter_mut().zip(s.positions_3d()?) {
                axis.extend(p);
            }
        }
        let tables = self.rotary.cos_sin_sections(
            &[&axes[0], &axes[1], &axes[2]],
            &self.config.mrope_section,
            self.dtype,
            &self.device,
        )?;
        self.decoder
            .run_steps(steps, self.config.image_token_id, tables, kv, rows)
    }
}
