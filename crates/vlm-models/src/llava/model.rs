use candle_core::{DType, Device, Tensor};

use super::clip::ClipVisionTower;
use super::config::LlavaConfig;
use super::projector::Projector;
use crate::decoder::{Decoder, DecoderInput, Flavor, KvCache, RotaryEmbedding, SeqSlice};
use crate::error::Result;
use crate::loader::Weights;
use crate::model::{LogitRows, SeqStep};
use crate::preprocess::PixelValues;

pub struct LlavaModel {
    config: LlavaConfig,
    vision: ClipVisionTower,
    feature_layers: Vec<usize>,
    projector: Projector,
    decoder: Decoder,
    rotary: RotaryEmbedding,
    device: Device,
    dtype: DType,
}

impl LlavaModel {
    pub fn load(w: &Weights, config: LlavaConfig, rope_theta: f64) -> Result<Self> {
        let feature_layers =
            config
                .feature_layer_indices()
                .map_err(|message| crate::ModelError::Unsupported {
                    path: "config.json".into(),
                    message,
                })?;
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
            vision,
            feature_layers,
            projector,
            decoder,
            rotary,
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }

    pub fn config(&self) -> &LlavaConfig {
        &self.config
    }

    /// Projected features of each image, `[tokens_per_image, text_hidden]`, in input order.
    pub fn encode_images(&self, images: &[&PixelValues]) -> Result<Vec<Tensor>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let (h, w) = (images[0].height, images[0].width);
        let mut data = Vec::with_capacity(images.len() * 3 * h * w);
        for img in images {
            if (img.height, img.width) != (h, w) {
                return Err(crate::ModelError::InvalidStep(
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

    /// Token embeddings with image features written over the image-token positions.
    fn embed_step(&self, step: &SeqStep<'_>) -> Result<Tensor> {
        let text = self.decoder.embed(step.tokens)?;
        let image_token = self.config.image_token_id();
        let n_image = step.tokens.iter().filter(|&&t| t == image_token).count();
        let supplied = step.image_features.as_ref().map_or(Ok(0), |f| f.dim(0))?;
        if n_image != supplied {
            return Err(crate::ModelError::InvalidStep(format!(
                "step has {n_image} image tokens but {supplied} image feature rows"
            )));
        }
        let Some(features) = &step.image_features else {
            return Ok(text);
        };
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

    /// One batched decoder step over several sequences; logits for the rows asked for.
    pub fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        if steps.is_empty() || steps.iter().any(|s| s.tokens.is_empty()) {
            return Err(crate::ModelError::InvalidStep(
                "every sequence in a step needs at least one token".to_string(),
            ));
        }
        let embeddings = steps
            .iter()
            .map(|s| self.embed_step(s))
            .collect::<Result<Vec<_>>>()?;
        let embeddings = Tensor::cat(&embeddings, 0)?;
        let positions: Vec<u32> = steps
            .iter()
            .flat_map(|s| (s.past..s.past + s.tokens.len()).map(|p| p as u32))
            .collect();
        let (cos, sin) = self.rotary.cos_sin(&positions, self.dtype, &self.device)?;
        let seqs: Vec<SeqSlice> = steps
            .iter()
            .map(|s| SeqSlice {
                seq: s.seq,
                past: s.past,
                len: s.tokens.len(),
            })
            .collect();
        let hidden = self.decoder.forward(
            &DecoderInput {
                embeddings,
                cos,
                sin,
                seqs: &seqs,
            },
            kv,
        )?;
        let hidden = match rows {
            LogitRows::All => hidden,
            LogitRows::LastPerSeq => {
                let mut last = Vec::with_capacity(steps.len());
                let mut end = 0u32;
                for s in steps {
                    end += s.tokens.len() as u32;
                    last.push(end - 1);
                }
                hidden.index_select(&Tensor::new(last, &self.device)?, 0)?
            }
        };
        self.decoder.logits(&hidden)
    }
}
