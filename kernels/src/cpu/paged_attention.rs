//! Attention read in place from a paged KV cache (f32), one query row at a time: each
//! (query row, kv head) pair is one work item on candle's pinned pool, so a step neither
//! copies keys and values into a padded batch nor runs attention on one core.
//!
//! Decodes and prefill chunks go through the same per-row arithmetic: the numbers of a
//! query at position `p` depend only on that query and the keys and values of positions
//! `0..=p`, never on the rest of the batch, on where a prefill chunk started, or on
//! whether its prefix was computed now or reused from the prefix cache.

use super::attend_wide::{self, RowKeys};
use super::disjoint::OutPtr;
use super::features::avx2_fma;
use super::softmax_exp::exp_shifted_fma;
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
    let fma = avx2_fma();
    let wide = attend_wide::serves(hd) && group <= attend_wide::MAX_HEADS;
    let shape = Shape {
        heads,
        kv_heads,
        head_dim: hd,
        block_size,
        scale,
    };
    let item = |i: usize| {
        let (s, h) = (i / kv_heads, i % kv_heads);
        let q_rows = &q[s * heads * hd..][..heads * hd];
        // SAFETY: item `(s, h)` writes only the rows of its own query heads of row `s`,
        // and `out` outlives the pool call; AVX2/FMA were detected for the `fma` path.
        unsafe {
            let out_row = out_ptr.at(s * heads * hd);
            if wide {
                attend_wide_item(q_rows, kd, vd, &seqs[s], h, &shape, out_row)
            } else if fma {
                attend_fma(q_rows, kd, vd, &seqs[s], h, &shape, out_row)
            } else {
                attend_item::<false>(q_rows, kd, vd, &seqs[s], h, &shape, out_row)
            }
        }
    };
    candle_core::utils::barrier_pool().execute_chunked(b * kv_heads, |range| range.for_each(item));
    Ok(out)
}

/// What every work item of one call shares.
struct Shape {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    block_size: usize,
    scale: f32,
}

/// One query row's query heads of kv head `h` through [`attend_wide`], the positions'
/// offsets worked out once for the whole group.
///
/// # Safety
/// As [`attend_item`], and [`attend_wide::serves`] holds for the head dimension.
unsafe fn attend_wide_item(
    q_rows: &[f32],
    kd: &[f32],
    vd: &[f32],
    seq: &PagedQuery<'_>,
    h: usize,
    shape: &Shape,
    out_row: *mut f32,
) {
    let (hd, kv_heads, block_size) = (shape.head_dim, shape.kv_heads, shape.block_size);
    let group = shape.heads / kv_heads;
    let offsets: Vec<usize> = seq
        .table
        .iter()
        .flat_map(|&blk| (0..block_size).map(move |i| blk as usize * block_size + i))
        .take(seq.context)
        .map(|slot| (slot * kv_heads + h) * hd)
        .collect();
    let row = RowKeys {
        keys: kd,
        values: vd,
        offsets: &offsets,
        head_dim: hd,
        scale: shape.scale,
    };
    let mut scores = vec![0f32; group * seq.context];
    let heads = h * group * hd..(h + 1) * group * hd;
    let out = std::slice::from_raw_parts_mut(out_row.add(heads.start), heads.len());
    attend_wide::attend_heads(&row, &q_rows[heads], &mut scores, out);
}

/// [`attend_item`] with fused multiply-adds (AVX2 and FMA in eight-lane vectors, the same
/// on AVX-512 machines).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_fma(
    q_rows: &[f32],
    kd: &[f32],
    vd: &[f32],
    seq: &PagedQuery<'_>,
    h: usize,
    shape: &Shape,
    out_row: *mut f32,
) {
    attend_item::<true>(q_rows, kd, vd, seq, h, shape, out_row)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn attend_fma(
    q_rows: &[f32],
    kd: &[f32],
    vd: &[f32],
    seq: &PagedQuery<'_>,
    h: usize,
    shape: &Shape,
    out_row: *mut f32,
) {
    attend_item::<false>(q_rows, kd, vd, seq, h, shape, out_row)
}

/// One query row's query heads of kv head `h`: scores against every position it sees,
/// softmax, and the weighted sum of values, written to `out_row`'s head slots.
///
/// # Safety
/// `out_row` must have room for `heads * head_dim` values that no other item writes.
#[inline(always)]
unsafe fn attend_item<const FMA: bool>(
    q_rows: &[f32],
    kd: &[f32],
    vd: &[f32],
    seq: &PagedQuery<'_>,
    h: usize,
    shape: &Shape,
    out_row: *mut f32,
) {
    let (hd, kv_heads, block_size) = (shape.head_dim, shape.kv_heads, shape.block_size);
    let group = shape.heads / kv_heads;
    let mut scores = vec![0f32; seq.context];
    let mut acc = vec![0f32; hd];
    let slot_row = |p: usize| {
        let slot = seq.table[p / block_size] as usize * block_size + p % block_size;
        (slot * kv_heads + h) * hd
    };
    for g in 0..group {
        let head = h * group + g;
        let qv = &q_rows[head * hd..][..hd];
        let mut max = f32::NEG_INFINITY;
        for (p, sc) in scores.iter_mut().enumerate() {
            *sc = dot::<FMA>(qv, &kd[slot_row(p)..][..hd]) * shape.scale;
            max = max.max(*sc);
        }
        if FMA {
            exp_shifted_fma(&mut scores, max);
        } else {
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
            }
        }
        let mut sum = 0f32;
        for sc in &scores {
            sum += *sc;
        }
        acc.fill(0.0);
        for (p, sc) in scores.iter().enumerate() {
            axpy::<FMA>(&mut acc, sc / sum, &vd[slot_row(p)..][..hd]);
        }
        std::ptr::copy_nonoverlapping(acc.as_ptr(), out_row.add(head * hd), hd);
    }
}

/// Eight independent partial sums (one vector), summed in a fixed order.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = if FMA {
                ca[l].mul_add(cb[l], lanes[l])
            } else {
                lanes[l] + ca[l] * cb[l]
            };
        }
    }
    let mut s = lanes.iter().sum::<f32>();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        s = if FMA { x.mul_add(*y, s) } else { s + x * y };
    }
    s
}

/// `acc += w * v`.
#[inline(always)]
fn axpy<const FMA: bool>(acc: &mut [f32], w: f32, v: &[f32]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a = if FMA { w.mul_add(*x, *a) } else { *a + w * x };
    }
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

    /// Head dimensions the wide kernel serves go through it, block table and all.
    #[test]
    fn wide_heads_read_the_block_table_and_match_plain_attention() {
        let (block_size, kv_heads, hd, heads) = (4, 2, 32, 6);
        let slots = 5 * block_size;
        let value = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 60.0;
        let keys: Vec<f32> = (0..slots * kv_heads * hd).map(value).collect();
        let values: Vec<f32> = (0..slots * kv_heads * hd).map(|i| value(i + 7)).collect();
        let kv = PagedKv {
            keys: &keys,
            values: &values,
            slots,
            kv_heads,
            head_dim: hd,
            block_size,
        };
        let table = [3u32, 0, 4];
        let seqs = [PagedQuery {
            table: &table,
            context: 10,
        }];
        let q: Vec<f32> = (0..heads * hd).map(|i| value(i + 3)).collect();
        let out = paged_attention(&q, &kv, &seqs, heads, 0.2).unwrap();
        for head in 0..heads {
            let h = head / (heads / kv_heads);
            let rows: Vec<usize> = (0..10)
                .map(|p| {
                    ((table[p / block_size] as usize * block_size + p % block_size) * kv_heads + h)
                        * hd
                })
                .collect();
            let qh = &q[head * hd..][..hd];
            let scores: Vec<f64> = rows
                .iter()
                .map(|&r| {
                    0.2 * (0..hd)
                        .map(|d| f64::from(qh[d]) * f64::from(keys[r + d]))
                        .sum::<f64>()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..hd {
                let want: f64 = rows
                    .iter()
                    .zip(&e)
                    .map(|(&r, w)| w / sum * f64::from(values[r + d]))
                    .sum();
                let got = f64::from(out[head * hd + d]);
                assert!(
                    (got - want).abs() < 1e-5,
                    "head {head} dim {d}: {got} vs {want}"
                );
            }
        }
    }
}
