//! Qwen2-VL as one model family: dynamic-resolution patches, the vision transformer with
//! its merger, and a Qwen2 decoder with multimodal (3-D) rotary positions.

use candle_core::{DType, Device, Tensor};

use super::config::Qwen2VlConfig;
use super::rope_index::mrope_positions;
use super::vision::VisionTransformer;
use crate::decoder::{
    Decoder, DecoderConfig, Flavor, KvCache, LogitRows, MropePositions, RotaryEmbedding, SeqStep,
};
use crate::error::{ModelError, Result};
use crate::family::{Family, FamilySource};
use crate::loader::KeyLayout;
use crate::preprocess::{Image8, PatchValues, PixelBudget, PreprocessError, Qwen2VlImageProcessor};

/// Hub checkpoints (and transformers 5's save_pretrained) use `model.*` for the decoder and
/// `visual.*` for the vision tower; transformers 5's modules are `model.language_model.*`
/// and `model.visual.*`.
pub const KEY_LAYOUT: KeyLayout = KeyLayout {
    legacy_prefixes: &[
        ("model.language_model.", "model."),
        ("model.visual.", "visual."),
    ],
};

pub(crate) struct Qwen2VlModel {
    config: Qwen2VlConfig,
    processor: Qwen2VlImageProcessor,
    vision: VisionTransformer,
    decoder: Decoder,
    rotary: RotaryEmbedding,
    device: Device,
    dtype: DType,
}

impl Qwen2VlModel {
    pub(crate) fn load(source: &FamilySource<'_>) -> Result<Self> {
        let config =
            Qwen2VlConfig::from_json(source.config()).map_err(|e| source.unsupported(e))?;
        let (ip_path, processor) = source.image_processor(Qwen2VlImageProcessor::from_json)?;
        let v = &config.vision;
        if (
            processor.patch_size,
            processor.merge_size,
            processor.temporal_patch_size,
        ) != (v.patch_size, v.spatial_merge_size, v.temporal_patch_size)
        {
            return Err(ModelError::invalid(
                ip_path,
                format!(
                    "patch {} / merge {} / temporal {} disagree with config.json's vision_config ({} / {} / {})",
                    processor.patch_size,
                    processor.merge_size,
                    processor.temporal_patch_size,
                    v.patch_size,
                    v.spatial_merge_size,
                    v.temporal_patch_size
                ),
            ));
        }
        let w = source.weights(KEY_LAYOUT)?;
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
            processor,
            vision,
            decoder,
            rotary,
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }
}

impl Family for Qwen2VlModel {
    type Pixels = PatchValues;

    fn text_config(&self) -> &DecoderConfig {
        &self.config.text
    }

    fn decode_weight_bytes(&self) -> usize {
        self.decoder.weight_bytes()
    }

    fn image_token_id(&self) -> u32 {
        self.config.image_token_id
    }

    fn takes_pixel_budget(&self) -> bool {
        true
    }

    fn prepare_image(
        &self,
        rgb: &Image8,
        budget: PixelBudget,
    ) -> std::result::Result<(PatchValues, usize), PreprocessError> {
        let context = self.config.text.max_position_embeddings;
        let patches = self.processor.process_within(rgb, budget, context)?;
        let tokens = self.processor.tokens_for(patches.grid_thw);
        Ok((patches, tokens))
    }

    /// Merged features of each image, `[tokens, hidden]`, in input order. All images go
    /// through the tower together; attention stays within each image.
    fn encode_images(&self, images: &[&PatchValues]) -> Result<Vec<Tensor>> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let patch_dim = first.patch_dim;
        let mut data = Vec::with_capacity(images.iter().map(|i| i.data.len()).sum());
        let mut grids = Vec::with_capacity(images.len());
        for img in images {
            if img.patch_dim != patch_dim {
                return Err(ModelError::InvalidStep(
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

    fn positions(
        &self,
        token_ids: &[u32],
        images: &[&PatchValues],
    ) -> Result<Option<MropePositions>> {
        let grids: Vec<[usize; 3]> = images.iter().map(|p| p.grid_thw).collect();
        mrope_positions(
            token_ids,
            self.config.image_token_id,
            &grids,
            self.processor.merge_size,
        )
        .map(Some)
    }

    /// One batched decoder step with multimodal rotary positions.
    fn forward(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::{LoadOptions, Snapshot};

    /// Qwen2-VL ties its embeddings: with a packed head (f32 on an AVX2 CPU) the table is
    /// held once, in the head's panels, and embedding rows read from there are the
    /// checkpoint's exactly.
    #[test]
    fn tied_embeddings_are_held_once_and_read_exactly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/qwen2-vl-tiny");
        let snapshot = Snapshot::open(&dir).unwrap();
        let options = LoadOptions::default();
        let model = Qwen2VlModel::load(&FamilySource::new(&snapshot, &options)).unwrap();
        let packed = vlm_kernels::cpu::avx2_fma();
        assert_eq!(model.decoder.holds_embedding_table(), !packed);

        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let table = tensors
            .tensor("model.language_model.embed_tokens.weight")
            .unwrap();
        let hidden = table.shape()[1];
        let row = |id: usize| -> Vec<f32> {
            table.data()[id * hidden * 4..(id + 1) * hidden * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let ids = [0u32, 5, 366, 367, 5];
        let embedded = model.decoder.embed(&ids).unwrap().to_vec2::<f32>().unwrap();
        for (got, &id) in embedded.iter().zip(&ids) {
            assert_eq!(*got, row(id as usize), "token {id}");
        }
        assert!(model.decoder.embed(&[368]).is_err());

        // In half precision and quantized, the head's own storage serves the lookups too.
        for (dtype, quantize) in [("bf16", None), ("f32", Some("q8_0"))] {
            let options = LoadOptions::parse("cpu", dtype)
                .unwrap()
                .with_quantize(quantize)
                .unwrap();
            let model = Qwen2VlModel::load(&FamilySource::new(&snapshot, &options)).unwrap();
            assert!(
                !model.decoder.holds_embedding_table(),
                "{dtype} {quantize:?}"
            );
            let embedded = model.decoder.embed(&ids).unwrap().to_vec2::<f32>().unwrap();
            for (got, &id) in embedded.iter().zip(&ids) {
                let want = row(id as usize);
                let close = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| (a - b).abs() <= 0.005 + 0.01 * b.abs());
                assert!(
                    close,
                    "{dtype} {quantize:?} token {id}: {got:?} vs {want:?}"
                );
            }
            assert!(model.decoder.embed(&[368]).is_err());
        }
    }
}
