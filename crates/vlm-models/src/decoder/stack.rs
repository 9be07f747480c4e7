//! The decoder's layer stack: token embeddings, decoder layers (RMS norm, attention, MLP),
//! final norm and LM head.

use candle_core::{Module, Tensor};
use candle_nn::Embedding;

use super::attention::{Attention, DecoderInput};
use super::config::{DecoderConfig, Flavor};
use super::kv::KvCache;
use crate::error::{ModelError, Result};
use crate::layers::Linear;
use crate::loader::Weights;

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.get(dim, "weight")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(xs, &self.weight, self.eps)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    /// `gate_proj` and `up_proj` as one layer (gate's outputs first).
    gate_up: Linear,
    intermediate: usize,
    down: Linear,
}

impl Mlp {
    fn load(w: &Weights, c: &DecoderConfig) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        Ok(Self {
            gate_up: w.linear_fused(h, &[("gate_proj", i), ("up_proj", i)], c.mlp_bias)?,
            intermediate: i,
            down: w.pp("down_proj").linear(i, h, c.mlp_bias)?,
        })
    }

    fn weight_bytes(&self) -> usize {
        self.gate_up.weight_bytes() + self.down.weight_bytes()
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let gate_up = self.gate_up.forward(xs)?;
        let last = gate_up.rank() - 1;
        let gate = gate_up
            .narrow(last, 0, self.intermediate)?
            .contiguous()?
            .silu()?;
        let up = gate_up
            .narrow(last, self.intermediate, self.intermediate)?
            .contiguous()?;
        self.down.forward(&(gate * up)?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
}

/// Token embeddings, decoder layers, final norm and LM head.
#[derive(Debug, Clone)]
pub struct Decoder {
    config: DecoderConfig,
    /// The dtype of hidden states (embedding rows are widened to it).
    compute_dtype: candle_core::DType,
    /// `None` when the embeddings are tied and the head holds them packed: rows are read
    /// from the head, so the vocabulary matrix is held once.
    embed_tokens: Option<Embedding>,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Linear,
}

impl Decoder {
    /// `w` is scoped to the decoder body (`model.language_model`); `lm_head` to the head,
    /// which is not read when the embeddings are tied (as transformers ignores it then).
    pub fn load(
        w: &Weights,
        lm_head: &Weights,
        config: &DecoderConfig,
        flavor: Flavor,
        tied: bool,
    ) -> Result<Self> {
        let c = config;
        // `--quantize` applies to the language model's linear layers.
        let (w, lm_head) = (&w.quantized(), &lm_head.quantized());
        let embed_tokens = w
            .pp("embed_tokens")
            .embedding(c.vocab_size, c.hidden_size)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let lw = w.pp(format!("layers.{i}"));
                Ok(Layer {
                    input_norm: RmsNorm::load(
                        &lw.pp("input_layernorm"),
                        c.hidden_size,
                        c.rms_norm_eps,
                    )?,
                    attention: Attention::load(&lw.pp("self_attn"), c, flavor)?,
                    post_attention_norm: RmsNorm::load(
                        &lw.pp("post_attention_layernorm"),
                        c.hidden_size,
                        c.rms_norm_eps,
                    )?,
                    mlp: Mlp::load(&lw.pp("mlp"), c)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(&w.pp("norm"), c.hidden_size, c.rms_norm_eps)?;
        let lm_head = if tied {
            w.linear_from(embed_tokens.embeddings().clone(), None)?
        } else {
            lm_head.linear(c.hidden_size, c.vocab_size, false)?
        };
        // Tied and packed or quantized: the head's own storage is the table; the tensor
        // is dropped.
        let embed_tokens = (!(tied && lm_head.reads_rows())).then_some(embed_tokens);
        Ok(Self {
            compute_dtype: w.dtype(),
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Bytes of the linear weights a decode step reads: every layer's and the head's.
    pub fn weight_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.attention.weight_bytes() + l.mlp.weight_bytes())
            .sum::<usize>()
            + self.lm_head.weight_bytes()
    }

    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let rows = match &self.embed_tokens {
            Some(table) => {
                let ids = Tensor::new(ids, table.embeddings().device())?;
                table.forward(&ids)?
            }
            None => self.lm_head.rows(ids)?.ok_or_else(|| {
                ModelError::InvalidStep(format!(
                    "a token id of {ids:?} is outside the vocabulary of {}",
                    self.config.vocab_size
                ))
            })?,
        };
        Ok(rows.to_dtype(self.compute_dtype)?)
    }

    /// Whether the embedding table is held apart from the LM head (it is not when the two
    /// are tied and the head is packed).
    pub fn holds_embedding_table(&self) -> bool {
        self.embed_tokens.is_some()
    }

    /// Runs every layer over the batch and returns the final-norm hidden states
    /// (`[total_tokens, hidden]`).
    pub fn forward(&self, input: &DecoderInput<'_>, kv: &mut dyn KvCache) -> Result<Tensor> {
        let mut xs = input.embeddings.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let residual = &xs;
            let h = layer.input_norm.forward(&xs)?;
            let h = layer.attention.forward(&h, input, i, kv)?;
            let xs_mid = (h + residual)?;
            let h = layer
                .mlp
                .forward(&layer.post_attention_norm.forward(&xs_mid)?)?;
            xs = (h + xs_mid)?;
        }
        Ok(self.norm.forward(&xs)?)
    }

    /// Logits (`[rows, vocab]`, f32) for the given hidden-state rows.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self
            .lm_head
            .forward(hidden)?
            .to_dtype(candle_core::DType::F32)?)
    }
}
