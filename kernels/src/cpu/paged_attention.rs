//! Attention read in place from a paged KV cache (f32), one query row at a time: each
//! (query row, kv head) pair is one work item on candle's pinned pool, so a step neither
//! copies keys and values into a padded batch nor runs attention on one core.
//!
//! Decodes and prefill chunks go through the same per-row arithmetic: the numbers of a
//! query at position `p` depend only on that query and the keys and values of positions
//! `0..=p`, never on the rest of the batch, on where a prefill chunk started, or on
//! whether its prefix was computed now or reused from the prefix cache.

use super::disjoint::OutPtr;
use crate::error::KernelError;

/// One layer of a paged cache: `[slots, kv_heads, head_dim]` keys and values, where
/// position `p` of a sequence lives in slot `table[p / block_size] * block_size + p %
/// block_size`.
pub struct PagedKv<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub slots: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
}

/// One query row: its sequence's block table and how many positions (its own, already
/// written, and every one before it) it attends to.
pub struct PagedQuery<'a> {
    pub table: &'a [u32],
    pub context: usize,
}

/// `q`: `[rows, heads * head_dim]`, one row per entry of `seqs` (heads kv-major: query
/// head `h` reads kv head `h / group`). Returns `[rows, heads * head_dim]`.
pub fn paged_attention(
    q: &[f32],
    kv: &PagedKv<'_>,
    seqs: &[PagedQuery<'_>],
    heads: usize,
    scale: f32,
) -> Result<Vec<f32>, KernelError> {
    let (slots, kv_heads, hd, block_size) = (kv.slots, kv.kv_heads, kv.head_dim, kv.block_size);
    let b = seqs.len();
    let group = heads.checked_div(kv_heads).unwrap_or(0);
    if q.len() != b * heads * hd || group == 0 || group * kv_heads != heads {
        return Err(KernelError(format!(
            "paged attention: query of {} values for {b} sequences of {heads} heads",
            q.len()
        )));
    }
    let cache = slots * kv_heads * hd;
    if kv.keys.len() < cache || kv.values.len() < cache || block_size == 0 {
        return Err(KernelError(format!(
            "paged attention: cache shorter than {slots} slots"
        )));
    }
    for s in seqs {
        let used = s.table.get(..s.context.div_ceil(block_size));
        let fits = used.is_some_and(|t| {
            t.iter()
                .all(|&blk| (blk as usize + 1) * block_size <= slots)
        });
        if s.context == 0 || !fits {
            return Err(KernelError(format!(
                "paged attention: a block table does not cover {} positions",
                s.context
            )));
        }
    }
    let (kd, vd) = (&kv.keys[..cache], &kv.values[..cache]);
    let mut out = vec![0f32; b * heads * hd];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let item = |i: usize| {
        let (s, h) = (i / kv_heads, i % kv_heads);
        let seq = &seqs[s];
        let mut scores = vec![0f32; seq.context];
        let mut acc = vec![0f32; hd];
        for g in 0..group {
            let head = h * group + g;
            let qv = &q[(s * heads + head) * hd..][..hd];
            let slot_row = |p: usize| {
                let slot = seq.table[p / block_size] as usize * block_size + p % block_size;
                (slot * kv_heads + h) * hd
            };
            let mut max = f32::NEG_INFINITY;
            for (p, sc) in scores.iter_mut().enumerate() {
                *sc = dot(qv, &kd[slot_row(p)..][..hd]) * scale;
                max = max.max(*sc);
            }
            let mut sum = 0f32;
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
                sum += *sc;
            }
            acc.fill(0.0);
            for (p, sc) in scores.iter().enumerate() {
                let w = sc / sum;
                for (a, v) in acc.iter_mut().zip(&vd[slot_row(p)..][..hd]) {
                    *a += w * v;
                }
            }
            // SAFETY: item `(s, h)` writes only the rows of its own query heads of
            // sequence `s`; `out` outlives the pool call.
            unsafe {
                std::ptr::copy_nonoverlapping(acc.as_ptr(), out_ptr.at((s * heads + head) * hd), hd)
            };
        }
    };
    candle_core::utils::barrier_pool().execute_chunked(b * kv_heads, |range| range.for_each(item));
    Ok(out)
}

/// Eight independent partial sums, so the compiler vectorises it; fixed order per call.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += ca[l] * cb[l];
        }
    }
    let mut s = lanes.iter().sum::<f32>();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attends_over_scattered_blocks_and_refuses_short_tables() {
        // One kv head, head_dim 2, block size 2, 3 blocks; the sequence uses blocks 2 then 0.
        let (slots, hd) = (6, 2);
        let keys: Vec<f32> = (0..slots * hd).map(|i| i as f32 * 0.1).collect();
        let values: Vec<f32> = (0..slots * hd).map(|i| (i % 5) as f32).collect();
        let kv = PagedKv {
            keys: &keys,
            values: &values,
            slots,
            kv_heads: 1,
            head_dim: hd,
            block_size: 2,
        };
        let q = [0.5f32, -0.25];
        let seqs = [PagedQuery {
            table: &[2, 0],
            context: 3,
        }];
        let out = paged_attention(&q, &kv, &seqs, 1, 1.0).unwrap();
        // Positions 0, 1, 2 live in slots 4, 5, 0.
        let slots_used = [4usize, 5, 0];
        let scores: Vec<f32> = slots_used
            .iter()
            .map(|&s| q[0] * keys[s * hd] + q[1] * keys[s * hd + 1])
            .collect();
        let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        for d in 0..hd {
            let want: f32 = slots_used
                .iter()
                .zip(&e)
                .map(|(&s, w)| w / sum * values[s * hd + d])
                .sum();
            assert!(
                (out[d] - want).abs() < 1e-6,
                "dim {d}: {} vs {want}",
                out[d]
            );
        }
        let short = [PagedQuery {
            table: &[2],
            context: 3,
        }];
        assert!(paged_attention(&q, &kv, &short, 1, 1.0).is_err());
        assert!(paged_attention(&q[..1], &kv, &seqs, 1, 1.0).is_err());
    }
}
