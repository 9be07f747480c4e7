//! Attention read in place from a paged KV cache, one query row at a time: the tensor side of
//! `vlm_kernels::cpu::paged_attention` (f32 on the CPU), which holds the kernel. Other
//! dtypes and devices return `None` and the caller gathers keys and values instead.

use candle_core::{DType, Storage, Tensor};
pub use vlm_kernels::cpu::PagedQuery;
use vlm_kernels::cpu::{paged_attention, PagedKv};

/// One layer of a paged cache: `[slots, kv_heads, head_dim]` keys and values, where
/// position `p` of a sequence lives in slot `table[p / block_size] * block_size + p %
/// block_size`.
#[derive(Debug, Clone)]
pub struct PagedLayer {
    pub keys: Tensor,
    pub values: Tensor,
    pub block_size: usize,
}

/// Whether [`attend`] runs for `q` against `layer`: both f32 on the CPU, the cache
/// contiguous.
pub fn is_native(q: &Tensor, layer: &PagedLayer) -> bool {
    let on_cpu_f32 = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    on_cpu_f32(q)
        && on_cpu_f32(&layer.keys)
        && on_cpu_f32(&layer.values)
        && layer.keys.is_contiguous()
        && layer.values.is_contiguous()
}

/// `q`: `[rows, heads * head_dim]`, one row per query (heads kv-major: query head `h`
/// reads kv head `h / group`). Returns `[rows, heads * head_dim]`. `None` when the cache is
/// not f32 on the CPU (the caller falls back to gathering).
pub fn attend(
    q: &Tensor,
    layer: &PagedLayer,
    seqs: &[PagedQuery<'_>],
    heads: usize,
    scale: f32,
) -> candle_core::Result<Option<Tensor>> {
    let on_cpu_f32 = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if !(on_cpu_f32(q) && on_cpu_f32(&layer.keys) && on_cpu_f32(&layer.values)) {
        return Ok(None);
    }
    let (slots, kv_heads, head_dim) = layer.keys.dims3()?;
    let q = q.contiguous()?;
    let (q_store, q_layout) = q.storage_and_layout();
    let (k_store, k_layout) = layer.keys.storage_and_layout();
    let (v_store, v_layout) = layer.values.storage_and_layout();
    let (Storage::Cpu(qs), Storage::Cpu(ks), Storage::Cpu(vs)) = (&*q_store, &*k_store, &*v_store)
    else {
        return Ok(None);
    };
    if !k_layout.is_contiguous() || !v_layout.is_contiguous() {
        return Ok(None);
    }
    let cache = slots * kv_heads * head_dim;
    let kv = PagedKv {
        keys: &ks.as_slice::<f32>()?[k_layout.start_offset()..][..cache],
        values: &vs.as_slice::<f32>()?[v_layout.start_offset()..][..cache],
        slots,
        kv_heads,
        head_dim,
        block_size: layer.block_size,
    };
    let q_data = &qs.as_slice::<f32>()?[q_layout.start_offset()..][..q.elem_count()];
    let out = paged_attention(q_data, &kv, seqs, heads, scale)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let rows = seqs.len();
    Ok(Some(Tensor::from_vec(
        out,
        (rows, heads * head_dim),
        q.device(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reference: plain softmax attention over contiguous keys and values.
    fn reference(q: &[f32], k: &[Vec<f32>], v: &[Vec<f32>], scale: f32) -> Vec<f32> {
        let scores: Vec<f32> = k
            .iter()
            .map(|kr| q.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() * scale)
            .collect();
        let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        let mut out = vec![0f32; q.len()];
        for (w, vr) in e.iter().zip(v) {
            for (o, x) in out.iter_mut().zip(vr) {
                *o += w / sum * x;
            }
        }
        out
    }

    #[test]
    fn reads_scattered_blocks_and_matches_plain_attention() {
        let dev = Device::Cpu;
        let (blocks, bs, kv_heads, hd, heads) = (6, 4, 2, 12, 6);
        let keys = Tensor::randn(0f32, 1.0, (blocks * bs, kv_heads, hd), &dev).unwrap();
        let values = Tensor::randn(0f32, 1.0, (blocks * bs, kv_heads, hd), &dev).unwrap();
        let layer = PagedLayer {
            keys: keys.clone(),
            values: values.clone(),
            block_size: bs,
        };
        let tables: [&[u32]; 2] = [&[4, 1, 5], &[0]];
        let seqs = [
            PagedQuery {
                table: tables[0],
                context: 10,
            },
            PagedQuery {
                table: tables[1],
                context: 3,
            },
        ];
        let q = Tensor::randn(0f32, 1.0, (2, heads * hd), &dev).unwrap();
        let scale = 0.3;
        let out = attend(&q, &layer, &seqs, heads, scale).unwrap().unwrap();
        let out = out.to_vec2::<f32>().unwrap();
        let kr = keys.to_vec3::<f32>().unwrap();
        let vr = values.to_vec3::<f32>().unwrap();
        let qr = q.to_vec2::<f32>().unwrap();
        for (s, seq) in seqs.iter().enumerate() {
            for head in 0..heads {
                let h = head / (heads / kv_heads);
                let slots: Vec<usize> = (0..seq.context)
                    .map(|p| seq.table[p / bs] as usize * bs + p % bs)
                    .collect();
                let k: Vec<Vec<f32>> = slots.iter().map(|&sl| kr[sl][h].clone()).collect();
                let v: Vec<Vec<f32>> = slots.iter().map(|&sl| vr[sl][h].clone()).collect();
                let want = reference(&qr[s][head * hd..][..hd], &k, &v, scale);
                for (a, b) in out[s][head * hd..][..hd].iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "seq {s} head {head}: {a} vs {b}");
                }
            }
        }
        // Alone, the second sequence gets the same bits as in the batch.
        let alone = attend(
            &q.narrow(0, 1, 1).unwrap(),
            &layer,
            &seqs[1..],
            heads,
            scale,
        )
        .unwrap()
        .unwrap();
        assert_eq!(alone.to_vec2::<f32>().unwrap()[0], out[1]);
    }

    #[test]
    fn refuses_a_table_too_short_for_the_context() {
        let dev = Device::Cpu;
        let layer = PagedLayer {
            keys: Tensor::zeros((8, 1, 4), DType::F32, &dev).unwrap(),
            values: Tensor::zeros((8, 1, 4), DType::F32, &dev).unwrap(),
            block_size: 4,
        };
        let q = Tensor::zeros((1, 4), DType::F32, &dev).unwrap();
        let short = [PagedQuery {
            table: &[1],
            context: 5,
        }];
        assert!(attend(&q, &layer, &short, 1, 1.0).is_err());
        let outside = [PagedQuery {
            table: &[2],
            context: 1,
        }];
        assert!(attend(&q, &layer, &outside, 1, 1.0).is_err());
    }
}
