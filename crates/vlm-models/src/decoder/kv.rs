//! The KV cache as the decoder sees it: a trait the engine implements over its block pool, and a contiguous cache for tests and single prompts.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use super::paged_attention::PagedLayer;

/// Where the decoder keeps keys and values between steps. The engine owns the real one (a
/// paged block pool); the decoder only says which sequence, layer and positions it writes.
pub trait KvCache {
    /// Makes `k` and `v` (`[kv_heads, new_tokens, head_dim]`) the keys and values of
    /// positions `past..past + new_tokens` of sequence `seq` in `layer`, and returns the keys
    /// and values of positions `0..past + new_tokens`, ready for attention.
    fn store(
        &mut self,
        seq: usize,
        layer: usize,
        past: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)>;

    /// Keys and values of several sequences at once, each `(seq, context length)`, zero
    /// padded to the longest: `[sequences, kv_heads, longest, head_dim]`. Lets a decode step
    /// attend for all its sequences in a few batched operations.
    fn gather_padded(&mut self, layer: usize, seqs: &[(usize, usize)]) -> Result<(Tensor, Tensor)>;

    /// One layer's paged storage, when the cache is paged: decode attention then reads the
    /// blocks in place through [`block_table`](Self::block_table) instead of gathering.
    fn paged_layer(&self, _layer: usize) -> Option<PagedLayer> {
        None
    }

    /// The block table of `seq` (see [`paged_layer`](Self::paged_layer)).
    fn block_table(&self, _seq: usize) -> Option<&[u32]> {
        None
    }

    /// [`store`](Self::store) without reading back (the batched decode path reads through
    /// [`gather_padded`](Self::gather_padded)).
    fn write(
        &mut self,
        seq: usize,
        layer: usize,
        past: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        self.store(seq, layer, past, k, v).map(|_| ())
    }
}

/// A plain growing cache: one contiguous tensor per (sequence, layer). Right for one-shot
/// generation and tests; the engine's paged cache replaces it for serving.
#[derive(Default)]
pub struct ContiguousKvCache {
    entries: HashMap<(usize, usize), (Tensor, Tensor)>,
}

impl ContiguousKvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets a sequence's keys and values.
    pub fn remove(&mut self, seq: usize) {
        self.entries.retain(|(s, _), _| *s != seq);
    }

    /// Tokens held for `seq` (layer 0).
    pub fn len(&self, seq: usize) -> usize {
        self.entries
            .get(&(seq, 0))
            .map_or(0, |(k, _)| k.dim(1).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl KvCache for ContiguousKvCache {
    fn store(
        &mut self,
        seq: usize,
        layer: usize,
        past: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (k, v) = match self.entries.get(&(seq, layer)) {
            _ if past == 0 => (k.clone(), v.clone()),
            Some((old_k, old_v)) if old_k.dim(1)? >= past => (
                Tensor::cat(&[&old_k.narrow(1, 0, past)?, k], 1)?,
                Tensor::cat(&[&old_v.narrow(1, 0, past)?, v], 1)?,
            ),
            held => candle_core::bail!(
                "sequence {seq} layer {layer}: asked to append at {past} but {} tokens are cached",
                held.map_or(0, |(k, _)| k.dim(1).unwrap_or(0))
            ),
        };
        self.entries.insert((seq, layer), (k.clone(), v.clone()));
        Ok((k, v))
    }

    fn gather_padded(&mut self, layer: usize, seqs: &[(usize, usize)]) -> Result<(Tensor, Tensor)> {
        let longest = seqs.iter().map(|s| s.1).max().unwrap_or(0);
        let mut keys = Vec::with_capacity(seqs.len());
        let mut values = Vec::with_capacity(seqs.len());
        for &(seq, len) in seqs {
            let Some((k, v)) = self.entries.get(&(seq, layer)) else {
                candle_core::bail!("sequence {seq} layer {layer} has no cached keys");
            };
            let pad = |t: &Tensor| -> Result<Tensor> {
                let t = t.narrow(1, 0, len)?;
                if len == longest {
                    return Ok(t);
                }
                let (h, _, d) = t.dims3()?;
                Tensor::cat(
                    &[
                        &t,
                        &Tensor::zeros((h, longest - len, d), t.dtype(), t.device())?,
                    ],
                    1,
                )
            };
            keys.push(pad(k)?);
            values.push(pad(v)?);
        }
        Ok((Tensor::stack(&keys, 0)?, Tensor::stack(&values, 0)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn appends_rewinds_and_refuses_gaps() {
        let dev = Device::Cpu;
        let t = |n: usize, val: f32| Tensor::full(val, (2, n, 4), &dev).unwrap();
        let mut cache = ContiguousKvCache::new();
        let (k, _) = cache.store(0, 0, 0, &t(3, 1.0), &t(3, 1.0)).unwrap();
        assert_eq!(k.dims(), &[2, 3, 4]);
        let (k, _) = cache.store(0, 0, 3, &t(1, 2.0), &t(1, 2.0)).unwrap();
        assert_eq!(k.dims(), &[2, 4, 4]);
        // Rewriting from position 2 (a recompute) drops what followed.
        let (k, _) = cache.store(0, 0, 2, &t(1, 3.0), &t(1, 3.0)).unwrap();
        assert_eq!(k.dims(), &[2, 3, 4]);
        assert_eq!(cache.len(0), 3);
        assert!(cache.store(0, 0, 9, &t(1, 0.0), &t(1, 0.0)).is_err());
        assert!(cache.store(1, 0, 1, &t(1, 0.0), &t(1, 0.0)).is_err());
        cache.remove(0);
        assert!(cache.is_empty());
    }
}
