//! Self-attention of the decoder layers over a batch of sequences: causal prefill against
//! the KV cache, and decode through the paged kernel where the cache allows.

use candle_core::{DType, Tensor};

use super::config::{DecoderConfig, Flavor};
use super::kv::KvCache;
use super::paged_attention::{self, PagedQuery};
use crate::error::Result;
use crate::layers::Linear;
use crate::loader::Weights;

/// One step's input: the embeddings of every new token of every sequence, stacked
/// (`[total_tokens, hidden]`, sequences in `seqs` order), and their rotary tables.
pub struct DecoderInput<'a> {
    pub embeddings: Tensor,
    pub cos: Tensor,
    pub sin: Tensor,
    pub seqs: &'a [SeqSlice],
}

/// Where one sequence's new tokens sit in a batched step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSlice {
    /// The sequence's id in the KV cache.
    pub seq: usize,
    /// Tokens of this sequence already in the KV cache; the new ones follow them.
    pub past: usize,
    /// New tokens of this sequence in this step.
    pub len: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Attention {
    /// `q_proj`, `k_proj` and `v_proj` as one layer (outputs in that order).
    qkv: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub(super) fn load(w: &Weights, c: &DecoderConfig, flavor: Flavor) -> Result<Self> {
        let (h, hd) = (c.hidden_size, c.head_dim());
        let (qkv_bias, o_bias) = match flavor {
            Flavor::Llama => (c.attention_bias, c.attention_bias),
            Flavor::Qwen2 => (true, false),
        };
        let (heads, kv_heads) = (c.num_attention_heads, c.num_kv_heads());
        Ok(Self {
            qkv: w.linear_fused(
                h,
                &[
                    ("q_proj", heads * hd),
                    ("k_proj", kv_heads * hd),
                    ("v_proj", kv_heads * hd),
                ],
                qkv_bias,
            )?,
            o: w.pp("o_proj").linear(heads * hd, h, o_bias)?,
            heads,
            kv_heads,
            head_dim: hd,
        })
    }

    pub(super) fn weight_bytes(&self) -> usize {
        self.qkv.weight_bytes() + self.o.weight_bytes()
    }

    /// `[tokens, n * head_dim]` -> `[1, n, tokens, head_dim]`.
    fn split_heads(&self, xs: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        let tokens = xs.dim(0)?;
        xs.reshape((tokens, n, self.head_dim))?
            .transpose(0, 1)?
            .contiguous()?
            .unsqueeze(0)
    }

    pub(super) fn forward(
        &self,
        xs: &Tensor,
        input: &DecoderInput<'_>,
        layer: usize,
        kv: &mut dyn KvCache,
    ) -> Result<Tensor> {
        let qkv = self.qkv.forward(xs)?;
        let (nq, nkv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let q = self.split_heads(&qkv.narrow(1, 0, nq)?, self.heads)?;
        let k = self.split_heads(&qkv.narrow(1, nq, nkv)?, self.kv_heads)?;
        let v = self.split_heads(&qkv.narrow(1, nq + nkv, nkv)?, self.kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, &input.cos, &input.sin)?.squeeze(0)?;
        let k = candle_nn::rotary_emb::rope(&k, &input.cos, &input.sin)?.squeeze(0)?;
        let v = v.squeeze(0)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let group = self.heads / self.kv_heads;
        let mut offsets = Vec::with_capacity(input.seqs.len());
        let mut offset = 0;
        for s in input.seqs {
            offsets.push(offset);
            offset += s.len;
        }
        if let Some(attn) = self.paged(&q, &k, &v, input, &offsets, layer, kv, scale)? {
            return Ok(self.o.forward(&attn)?);
        }
        let mut outputs: Vec<Option<Tensor>> = vec![None; input.seqs.len()];
        // Single-token steps (decodes) attend together in a few batched operations; always,
        // so a sequence computes the same numbers alone as in a batch.
        let decodes: Vec<usize> = (0..input.seqs.len())
            .filter(|&i| input.seqs[i].len == 1)
            .collect();
        if !decodes.is_empty() {
            let out = self.batched_decode(
                &q, &k, &v, input, &decodes, &offsets, layer, kv, scale, group,
            )?;
            for (b, &i) in decodes.iter().enumerate() {
                outputs[i] = Some(out.narrow(0, b, 1)?);
            }
        }
        for (i, s) in input.seqs.iter().enumerate() {
            if outputs[i].is_some() {
                continue;
            }
            let offset = offsets[i];
            let q_s = q.narrow(1, offset, s.len)?;
            let (k_all, v_all) = kv.store(
                s.seq,
                layer,
                s.past,
                &k.narrow(1, offset, s.len)?.contiguous()?,
                &v.narrow(1, offset, s.len)?.contiguous()?,
            )?;
            let context = s.past + s.len;
            // Grouped-query attention without copying keys per query head: the `group`
            // query heads of a kv head (heads are kv-major) become extra query rows.
            let (hd, len) = (self.head_dim, s.len);
            let q_g = q_s
                .contiguous()?
                .reshape((self.kv_heads, group * len, hd))?;
            let scores = (q_g.matmul(&k_all.t()?)? * scale)?.to_dtype(DType::F32)?;
            let scores = if len > 1 {
                scores
                    .reshape((self.kv_heads, group, len, context))?
                    .broadcast_add(&causal_mask(s.past, len, context, xs.device())?)?
                    .reshape((self.kv_heads, group * len, context))?
            } else {
                scores
            };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v_all.dtype())?;
            let out = probs.matmul(&v_all)?.reshape((self.heads, len, hd))?; // [heads, len, head_dim]
            outputs[i] = Some(
                out.transpose(0, 1)?
                    .reshape((s.len, self.heads * self.head_dim))?,
            );
        }
        let outputs: Vec<Tensor> = outputs
            .into_iter()
            .map(|o| o.expect("every sequence attended"))
            .collect();
        let attn = Tensor::cat(&outputs, 0)?;
        Ok(self.o.forward(&attn)?)
    }
}

impl Attention {
    /// Attention of every token of the step read in place from a paged f32 cache on the
    /// CPU, one query row at a time (`[tokens, heads * head_dim]`): the new keys and values
    /// are written first, then each token attends to its own position and all before it.
    /// Decodes and prefill chunks share the same per-row arithmetic, so a token's numbers
    /// do not depend on its batch, its chunk boundaries, or a reused prefix. `None` when
    /// the cache is not paged f32 on the CPU (the caller takes the general path).
    #[allow(clippy::too_many_arguments)]
    fn paged(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        input: &DecoderInput<'_>,
        offsets: &[usize],
        layer: usize,
        kv: &mut dyn KvCache,
        scale: f64,
    ) -> Result<Option<Tensor>> {
        match kv.paged_layer(layer) {
            Some(paged) if paged_attention::is_native(q, &paged) => {}
            _ => return Ok(None),
        }
        for (s, &o) in input.seqs.iter().zip(offsets) {
            kv.write(
                s.seq,
                layer,
                s.past,
                &k.narrow(1, o, s.len)?.contiguous()?,
                &v.narrow(1, o, s.len)?.contiguous()?,
            )?;
        }
        let Some(paged) = kv.paged_layer(layer) else {
            return Ok(None);
        };
        let mut queries = Vec::with_capacity(q.dim(1)?);
        for s in input.seqs {
            let table = kv.block_table(s.seq).ok_or_else(|| {
                candle_core::Error::Msg(format!("sequence {} has no KV blocks", s.seq))
            })?;
            queries.extend((1..=s.len).map(|i| PagedQuery {
                table,
                context: s.past + i,
            }));
        }
        // [heads, tokens, hd] -> [tokens, heads * hd]
        let tokens = q.dim(1)?;
        let q_rows = q
            .transpose(0, 1)?
            .contiguous()?
            .reshape((tokens, self.heads * self.head_dim))?;
        Ok(paged_attention::attend(
            &q_rows,
            &paged,
            &queries,
            self.heads,
            scale as f32,
        )?)
    }

    /// Attention of every single-token sequence in `decodes` at once: their keys and
    /// values gathered zero-padded to the longest context, positions past each one's
    /// context masked out. Returns `[decodes, heads * head_dim]`.
    #[allow(clippy::too_many_arguments)]
    fn batched_decode(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        input: &DecoderInput<'_>,
        decodes: &[usize],
        offsets: &[usize],
        layer: usize,
        kv: &mut dyn KvCache,
        scale: f64,
        group: usize,
    ) -> Result<Tensor> {
        let mut contexts = Vec::with_capacity(decodes.len());
        for &i in decodes {
            let s = &input.seqs[i];
            let (o, len) = (offsets[i], s.len);
            kv.write(
                s.seq,
                layer,
                s.past,
                &k.narrow(1, o, len)?.contiguous()?,
                &v.narrow(1, o, len)?.contiguous()?,
            )?;
            contexts.push((s.seq, s.past + 1));
        }
        let b = decodes.len();
        let rows = Tensor::new(
            decodes
                .iter()
                .map(|&i| offsets[i] as u32)
                .collect::<Vec<_>>(),
            q.device(),
        )?;
        let (keys, values) = kv.gather_padded(layer, &contexts)?; // [b, kv_heads, longest, hd]
        let longest = keys.dim(2)?;
        // q: [heads, tokens, hd] -> [b, kv_heads, group, hd]: the query heads sharing a kv
        // head (heads are kv-major) are rows of one matmul, so keys are never copied per head.
        let q = q
            .index_select(&rows, 1)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((b, self.kv_heads, group, self.head_dim))?;
        let scores = (q.matmul(&keys.t()?)? * scale)?.to_dtype(DType::F32)?;
        let mask: Vec<f32> = contexts
            .iter()
            .flat_map(|&(_, len)| {
                (0..longest).map(move |j| if j < len { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, longest), q.device())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?
            .to_dtype(values.dtype())?;
        let out = probs.matmul(&values)?; // [b, kv_heads, group, hd]
        Ok(out.reshape((b, self.heads * self.head_dim))?)
    }
}

/// `[len, context]`: query `i` (absolute position `past + i`) sees keys `0..=past + i`.
fn causal_mask(
    past: usize,
    len: usize,
    context: usize,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..len)
        .flat_map(|i| (0..context).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (len, context), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_respects_past() {
        let m = causal_mask(2, 2, 4, &candle_core::Device::Cpu).unwrap();
        let m = m.to_vec2::<f32>().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0; 4]);
    }
}
