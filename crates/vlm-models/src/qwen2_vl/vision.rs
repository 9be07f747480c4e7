//! Qwen2-VL's vision transformer: patches embedded by a linear map (the 3D convolution's
//! kernel equals its stride), 2D rotary attention confined to each image, and the patch
//! merger that turns each 2x2 block of patches into one text-sized token.

use candle_core::{Module, Tensor};
use candle_nn::LayerNorm;

use crate::layers::Linear;

use super::config::VisionConfig;
use crate::decoder::RotaryEmbedding;
use crate::error::Result;
use crate::layers::Activation;
use crate::loader::Weights;

/// transformers hard-codes these epsilons for Qwen2-VL's vision layer norms.
const LN_EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Debug, Clone)]
pub struct VisionTransformer {
    patch_embed: Linear,
    blocks: Vec<Block>,
    merger_norm: LayerNorm,
    merger_fc1: Linear,
    merger_fc2: Linear,
    rotary: RotaryEmbedding,
    heads: usize,
    merge: usize,
    activation: Activation,
}

impl VisionTransformer {
    pub fn load(w: &Weights, c: &VisionConfig) -> Result<Self> {
        let d = c.embed_dim;
        let patch_dim = c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size;
        let conv = w.get(
            (
                d,
                c.in_channels,
                c.temporal_patch_size,
                c.patch_size,
                c.patch_size,
            ),
            "patch_embed.proj.weight",
        )?;
        let patch_embed = Linear::new(candle_nn::Linear::new(conv.reshape((d, patch_dim))?, None));
        let mlp = c.mlp_hidden();
        let blocks = (0..c.depth)
            .map(|i| {
                let b = w.pp(format!("blocks.{i}"));
                Ok(Block {
                    norm1: b.pp("norm1").layer_norm(d, LN_EPS)?,
                    qkv: b.pp("attn.qkv").linear(d, 3 * d, true)?,
                    proj: b.pp("attn.proj").linear(d, d, true)?,
                    norm2: b.pp("norm2").layer_norm(d, LN_EPS)?,
                    fc1: b.pp("mlp.fc1").linear(d, mlp, true)?,
                    fc2: b.pp("mlp.fc2").linear(mlp, d, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = d * c.spatial_merge_size * c.spatial_merge_size;
        Ok(Self {
            patch_embed,
            blocks,
            merger_norm: w.pp("merger.ln_q").layer_norm(d, LN_EPS)?,
            merger_fc1: w.pp("merger.mlp.0").linear(merged, merged, true)?,
            merger_fc2: w.pp("merger.mlp.2").linear(merged, c.hidden_size, true)?,
            rotary: RotaryEmbedding::axial(c.head_dim(), c.rope_theta()),
            heads: c.num_heads,
            merge: c.spatial_merge_size,
            activation: Activation::parse(&c.hidden_act),
        })
    }

    /// Row and column of every patch, in the processor's merge-block order.
    fn patch_positions(&self, [t, h, w]: [usize; 3]) -> (Vec<u32>, Vec<u32>) {
        let m = self.merge;
        let mut rows = Vec::with_capacity(t * h * w);
        let mut cols = Vec::with_capacity(t * h * w);
        for _ in 0..t {
            for bh in 0..h / m {
                for bw in 0..w / m {
                    for mh in 0..m {
                        for mw in 0..m {
                            rows.push((bh * m + mh) as u32);
                            cols.push((bw * m + mw) as u32);
                        }
                    }
                }
            }
        }
        (rows, cols)
    }

    /// `patches` are every image's flattened patches stacked (`[sum t*h*w, patch_dim]`);
    /// returns each image's merged features, `[t*h*w / merge^2, hidden]`.
    pub fn forward(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<Vec<Tensor>> {
        let mut xs = self.patch_embed.forward(patches)?;
        let (mut rows, mut cols) = (Vec::new(), Vec::new());
        for grid in grids {
            let (r, c) = self.patch_positions(*grid);
            rows.extend(r);
            cols.extend(c);
        }
        let quarter = self.rotary.half_dim() / 2;
        let (cos, sin) = self.rotary.cos_sin_sections(
            &[&rows, &cols],
            &[quarter, quarter],
            xs.dtype(),
            xs.device(),
        )?;
        // Each frame of each image attends only to itself.
        let lengths: Vec<usize> = grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        for block in &self.blocks {
            let h = block.norm1.forward(&xs)?;
            let attn = self.attention(block, &h, &cos, &sin, &lengths)?;
            xs = (xs + attn)?;
            let h = block.fc1.forward(&block.norm2.forward(&xs)?)?;
            xs = (xs + block.fc2.forward(&self.activation.forward(&h)?)?)?;
        }
        let merged = self.merge * self.merge;
        let (n, d) = xs.dims2()?;
        let xs = self
            .merger_norm
            .forward(&xs)?
            .reshape((n / merged, d * merged))?;
        let xs = self
            .merger_fc2
            .forward(&self.merger_fc1.forward(&xs)?.gelu_erf()?)?;
        let mut out = Vec::with_capacity(grids.len());
        let mut start = 0;
        for &[t, h, w] in grids {
            let tokens = t * h * w / merged;
            out.push(xs.narrow(0, start, tokens)?);
            start += tokens;
        }
        Ok(out)
    }

    fn attention(
        &self,
        block: &Block,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        lengths: &[usize],
    ) -> Result<Tensor> {
        let (n, d) = xs.dims2()?;
        let hd = d / self.heads;
        // [n, 3, heads, hd] -> three [1, heads, n, hd]
        let qkv = block.qkv.forward(xs)?.reshape((n, 3, self.heads, hd))?;
        let part = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(1, i, 1)?
                .squeeze(1)?
                .transpose(0, 1)?
                .contiguous()?
                .unsqueeze(0)
        };
        let q = candle_nn::rotary_emb::rope(&part(0)?, cos, sin)?.squeeze(0)?;
        let k = candle_nn::rotary_emb::rope(&part(1)?, cos, sin)?.squeeze(0)?;
        let v = part(2)?.squeeze(0)?;
        let scale = (hd as f64).powf(-0.5);
        let mut outputs = Vec::with_capacity(lengths.len());
        let mut start = 0;
        for &len in lengths {
            let q = q.narrow(1, start, len)?.contiguous()?;
            let k = k.narrow(1, start, len)?.contiguous()?;
            let v = v.narrow(1, start, len)?.contiguous()?;
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            outputs.push(probs.matmul(&v)?);
            start += len;
        }
        let out = Tensor::cat(&outputs, 1)?.transpose(0, 1)?.reshape((n, d))?;
        Ok(block.proj.forward(&out)?)
    }
}
