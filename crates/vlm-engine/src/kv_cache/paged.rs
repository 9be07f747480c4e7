//! The paged KV cache's storage: per-layer key and value tensors addressed through
//! per-sequence block tables, and the layout that sizes them.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use vlm_models::decoder::{KvCache, PagedLayer};
use vlm_models::VlmModel;

/// Shape of one layer's keys (and values) per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: DType,
}

impl KvLayout {
    /// The layout of `model`'s text decoder, in the dtype its weights were loaded with.
    pub fn for_model(model: &VlmModel) -> Self {
        let text = model.text_config();
        Self {
            layers: text.num_hidden_layers,
            kv_heads: text.num_kv_heads(),
            head_dim: text.head_dim(),
            dtype: model.load_options().compute_dtype(),
        }
    }

    /// Bytes one block of `block_size` tokens takes across all layers, keys and values.
    pub fn bytes_per_block(&self, block_size: usize) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim * block_size * self.dtype.size_in_bytes()
    }
}

/// Keys and values of every sequence, in preallocated per-layer storage of
/// `[blocks * block_size, kv_heads, head_dim]`, addressed through per-sequence block tables
/// that the scheduler fills from the [`BlockPool`](super::BlockPool).
pub struct PagedKvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    block_size: usize,
    tables: HashMap<usize, Vec<u32>>,
}

impl PagedKvCache {
    pub fn new(
        layout: KvLayout,
        blocks: usize,
        block_size: usize,
        device: &Device,
    ) -> Result<Self> {
        let shape = (blocks * block_size, layout.kv_heads, layout.head_dim);
        let alloc = || Tensor::zeros(shape, layout.dtype, device);
        Ok(Self {
            keys: (0..layout.layers).map(|_| alloc()).collect::<Result<_>>()?,
            values: (0..layout.layers).map(|_| alloc()).collect::<Result<_>>()?,
            block_size,
            tables: HashMap::new(),
        })
    }

    /// The blocks sequence `seq` may write for the coming step.
    pub fn set_table(&mut self, seq: usize, table: &[u32]) {
        self.tables.insert(seq, table.to_vec());
    }

    pub fn remove(&mut self, seq: usize) {
        self.tables.remove(&seq);
    }

    fn slot(&self, table: &[u32], position: usize) -> Option<usize> {
        let block = *table.get(position / self.block_size)? as usize;
        Some(block * self.block_size + position % self.block_size)
    }
}

impl PagedKvCache {
    fn table(&self, seq: usize) -> Result<&Vec<u32>> {
        self.tables
            .get(&seq)
            .ok_or_else(|| candle_core::Error::Msg(format!("sequence {seq} has no KV blocks")))
    }
}

impl KvCache for PagedKvCache {
    fn write(
        &mut self,
        seq: usize,
        layer: usize,
        past: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let table = self.table(seq)?;
        let new = k.dim(1)?;
        if self.slot(table, past + new - 1).is_none() {
            candle_core::bail!(
                "sequence {seq}: {} tokens do not fit its {} blocks",
                past + new,
                table.len()
            );
        }
        // [kv_heads, new, head_dim] -> [new, kv_heads, head_dim], one row per token slot.
        let k_rows = k.transpose(0, 1)?.contiguous()?;
        let v_rows = v.transpose(0, 1)?.contiguous()?;
        // Write each run of consecutive slots (a block's worth at most) in one copy.
        let mut i = 0;
        while i < new {
            let position = past + i;
            let start = self.slot(table, position).expect("checked above");
            let run = (self.block_size - position % self.block_size).min(new - i);
            self.keys[layer].slice_set(&k_rows.narrow(0, i, run)?, 0, start)?;
            self.values[layer].slice_set(&v_rows.narrow(0, i, run)?, 0, start)?;
            i += run;
        }
        Ok(())
    }

    fn paged_layer(&self, layer: usize) -> Option<PagedLayer> {
        Some(PagedLayer {
            keys: self.keys.get(layer)?.clone(),
            values: self.values.get(layer)?.clone(),
            block_size: self.block_size,
        })
    }

    fn block_table(&self, seq: usize) -> Option<&[u32]> {
        self.tables.get(&seq).map(Vec::as_slice)
    }

    fn store(
        &mut self,
        seq: usize,
        layer: usize,
        past: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        self.write(seq, layer, past, k, v)?;
        let (k, v) = self.gather_padded(layer, &[(seq, past + k.dim(1)?)])?;
        Ok((k.squeeze(0)?, v.squeeze(0)?))
    }

    fn gather_padded(&mut self, layer: usize, seqs: &[(usize, usize)]) -> Result<(Tensor, Tensor)> {
        let longest = seqs.iter().map(|s| s.1).max().unwrap_or(0);
        // Padding reads slot 0 of the storage; attention masks those positions out.
        let mut slots = Vec::with_capacity(seqs.len() * longest);
        for &(seq, len) in seqs {
            let table = self.table(seq)?;
            for p in 0..longest {
                let slot = if p < len {
                    self.slot(table, p).ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "sequence {seq} holds fewer than {len} tokens"
                        ))
                    })?
                } else {
                    0
                };
                slots.push(slot as u32);
            }
        }
        let index = Tensor::new(slots, self.keys[layer].device())?;
        let gather = |store: &Tensor| -> Result<Tensor> {
            let (_, heads, dim) = store.dims3()?;
            store
                .index_select(&index, 0)?
                .reshape((seqs.len(), longest, heads, dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        Ok((gather(&self.keys[layer])?, gather(&self.values[layer])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_across_blocks_and_reads_back_in_order() {
        let layout = KvLayout {
            layers: 2,
            kv_heads: 2,
            head_dim: 3,
            dtype: DType::F32,
        };
        assert_eq!(layout.bytes_per_block(4), 2 * 2 * 2 * 3 * 4 * 4);
        let mut cache = PagedKvCache::new(layout, 4, 4, &Device::Cpu).unwrap();
        // Out-of-order blocks: positions 0-3 live in block 3, 4-7 in block 1.
        cache.set_table(7, &[3, 1]);
        let tokens = |from: usize, n: usize| {
            let data: Vec<f32> = (0..2)
                .flat_map(|h| (from..from + n).flat_map(move |t| [h as f32, t as f32, 0.5]))
                .collect();
            Tensor::from_vec(data, (2, n, 3), &Device::Cpu).unwrap()
        };
        let (k, v) = cache.store(7, 1, 0, &tokens(0, 6), &tokens(0, 6)).unwrap();
        assert_eq!(k.dims(), &[2, 6, 3]);
        assert_eq!(
            k.to_vec3::<f32>().unwrap(),
            tokens(0, 6).to_vec3::<f32>().unwrap()
        );
        let (k, _) = cache.store(7, 1, 6, &tokens(6, 2), &tokens(6, 2)).unwrap();
        assert_eq!(
            k.to_vec3::<f32>().unwrap(),
            tokens(0, 8).to_vec3::<f32>().unwrap()
        );
        assert_eq!(v.dims(), &[2, 6, 3]);
        assert!(
            cache.store(7, 1, 8, &tokens(8, 1), &tokens(8, 1)).is_err(),
            "no third block"
        );
        assert!(
            cache.store(9, 0, 0, &tokens(0, 1), &tokens(0, 1)).is_err(),
            "no table"
        );
    }
}
