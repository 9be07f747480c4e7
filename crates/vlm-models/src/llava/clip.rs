//! The CLIP vision transformer as LLaVA uses it: hidden states of chosen layers, no pooling.
//!
//! Written here rather than taken from `candle_transformers::models::clip`, which hard-codes
//! the layer-norm epsilon and QuickGELU, silently substitutes a random class embedding when
//! the checkpoint lacks one, and always runs every layer (LLaVA-1.5 reads the penultimate).

use candle_core::{Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm};

use crate::layers::Linear;

use super::config::ClipVisionConfig;
use crate::error::Result;
use crate::layers::Activation;
use crate::loader::Weights;

#[derive(Debug, Clone)]
struct EncoderLayer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Debug, Clone)]
pub struct ClipVisionTower {
    patch_embedding: Conv2d,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    heads: usize,
    activation: Activation,
}

impl ClipVisionTower {
    /// Loads the embeddings and the first `layers` encoder layers (the rest are never read).
    pub fn load(w: &Weights, c: &ClipVisionConfig, layers: usize) -> Result<Self> {
        let d = c.hidden_size;
        let emb = w.pp("embeddings");
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        let patch_weight = emb.get(
            (d, c.num_channels, c.patch_size, c.patch_size),
            "patch_embedding.weight",
        )?;
        let positions = (c.image_size / c.patch_size).pow(2) + 1;
        let layers = (0..layers)
            .map(|i| {
                let lw = w.pp(format!("encoder.layers.{i}"));
                let attn = lw.pp("self_attn");
                Ok(EncoderLayer {
                    norm1: lw.pp("layer_norm1").layer_norm(d, c.layer_norm_eps)?,
                    q: attn.pp("q_proj").linear(d, d, true)?,
                    k: attn.pp("k_proj").linear(d, d, true)?,
                    v: attn.pp("v_proj").linear(d, d, true)?,
                    out: attn.pp("out_proj").linear(d, d, true)?,
                    norm2: lw.pp("layer_norm2").layer_norm(d, c.layer_norm_eps)?,
                    fc1: lw.pp("mlp.fc1").linear(d, c.intermediate_size, true)?,
                    fc2: lw.pp("mlp.fc2").linear(c.intermediate_size, d, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embedding: Conv2d::new(patch_weight, None, conv),
            class_embedding: emb.get(d, "class_embedding")?,
            position_embedding: emb.get((positions, d), "position_embedding.weight")?,
            pre_norm: w.pp("pre_layrnorm").layer_norm(d, c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
            activation: Activation::parse(&c.hidden_act),
        })
    }

    /// Hidden states `[images, 1 + patches, hidden]` at each index in `indices`
    /// (0 = embeddings after the pre-norm, i = after encoder layer i).
    pub fn hidden_states(&self, pixel_values: &Tensor, indices: &[usize]) -> Result<Vec<Tensor>> {
        let images = pixel_values.dim(0)?;
        let patches = self
            .patch_embedding
            .forward(pixel_values)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let d = self.class_embedding.dim(0)?;
        let cls = self
            .class_embedding
            .reshape((1, 1, d))?
            .expand((images, 1, d))?;
        let xs = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        let mut xs = self.pre_norm.forward(&xs)?;
        let deepest = indices.iter().copied().max().unwrap_or(0);
        let mut states = vec![None; deepest + 1];
        states[0] = Some(xs.clone());
        for (i, layer) in self.layers.iter().take(deepest).enumerate() {
            xs = self.layer_forward(layer, &xs)?;
            states[i + 1] = Some(xs.clone());
        }
        indices
            .iter()
            .map(|&i| {
                states[i].clone().ok_or_else(|| {
                    candle_core::Error::Msg(format!("vision layer {i} was not loaded")).into()
                })
            })
            .collect()
    }

    fn layer_forward(&self, l: &EncoderLayer, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = xs.dims3()?;
        let hd = d / self.heads;
        let h = l.norm1.forward(xs)?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, n, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(l.q.forward(&h)?)?;
        let k = split(l.k.forward(&h)?)?;
        let v = split(l.v.forward(&h)?)?;
        let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let attn = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?;
        let xs = (l.out.forward(&attn)? + xs)?;
        let h = l.fc1.forward(&l.norm2.forward(&xs)?)?;
        let h = l.fc2.forward(&self.activation.forward(&h)?)?;
        h + xs
    }
}
