//! One query row's heads against a paged KV cache when the head dimension is a multiple of
//! 16, sixteen dimensions per step, on AVX-512 or AVX2 with the same bits.
//!
//! Every number is defined lane by lane, so both instruction sets (and any number of keys
//! handled together) compute it identically:
//! - a score is `q . k` as sixteen running sums (lane `l` takes dimensions `16c + l` in
//!   order, with fused multiply-adds), folded `l + 8`, then `l + 4`, `l + 2`, `l + 1`, then
//!   times the scale; AVX-512 folds sixteen keys' sums at once with shuffles that add the
//!   same pairs;
//! - the softmax denominator is sixteen running sums over the exponentials (position
//!   `16i + l` into lane `l`), folded the same way;
//! - the output is `sum_p e_p * v_p` in position order (one fused multiply-add per
//!   dimension), divided by the denominator.

use super::softmax_exp::exp_shifted_fma;

/// Where one query row reads: the cache, its kv head, and the offsets of the keys (and
/// values) of every position it sees.
pub(crate) struct RowKeys<'a> {
    pub(crate) keys: &'a [f32],
    pub(crate) values: &'a [f32],
    /// Offset of position `p`'s key (and value) vector for this kv head.
    pub(crate) offsets: &'a [usize],
    pub(crate) head_dim: usize,
    pub(crate) scale: f32,
}

/// Whether this kernel serves `head_dim` here.
pub(crate) fn serves(head_dim: usize) -> bool {
    head_dim > 0 && head_dim.is_multiple_of(16) && head_dim <= 256 && super::features::avx2_fma()
}

/// Attends the query heads `q` (`heads * head_dim` values, all reading this kv head) over
/// `row`'s positions into `out` (`heads * head_dim`), using `scores` (`heads *
/// offsets.len()` values) as scratch.
///
/// # Safety
/// [`serves`] holds; every offset plus `head_dim` is within `keys` and `values`; the
/// slices hold what is said above.
pub(crate) unsafe fn attend_heads(
    row: &RowKeys<'_>,
    q: &[f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let (hd, context) = (row.head_dim, row.offsets.len());
        let heads = q.len() / hd;
        let mut sums = [0f32; MAX_HEADS];
        for (g, sum) in sums.iter_mut().enumerate().take(heads) {
            let (qh, sh) = (&q[g * hd..][..hd], &mut scores[g * context..][..context]);
            if super::features::avx512() {
                scores_avx512(row, qh, sh);
            } else {
                scores_avx2(row, qh, sh);
            }
            let max = sh.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            exp_shifted_fma(sh, max);
            *sum = sum_avx2(sh);
        }
        let mut g = 0;
        while g < heads {
            let take = if super::features::avx512() {
                weighted_values_avx512(row, scores, g, heads - g, &sums, out)
            } else {
                0
            };
            if take == 0 {
                weighted_values_avx2(
                    row,
                    &scores[g * context..][..context],
                    sums[g],
                    &mut out[g * hd..][..hd],
                );
                g += 1;
            } else {
                g += take;
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (row, q, scores, out);
        unreachable!("serves() needs AVX2");
    }
}

/// The most query heads one kv head serves here (GQA groups are smaller in practice).
pub(crate) const MAX_HEADS: usize = 64;

/// The fold every sixteen running sums go through: `l + 8`, `l + 4`, `l + 2`, `l + 1`.
#[inline(always)]
fn fold16(p: &[f32; 16]) -> f32 {
    let s8: [f32; 8] = std::array::from_fn(|l| p[l] + p[l + 8]);
    let s4: [f32; 4] = std::array::from_fn(|l| s8[l] + s8[l + 4]);
    let s2 = [s4[0] + s4[2], s4[1] + s4[3]];
    s2[0] + s2[1]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn scores_avx512(row: &RowKeys<'_>, q: &[f32], scores: &mut [f32]) {
    use std::arch::x86_64::*;
    let chunks = row.head_dim / 16;
    let scale = _mm512_set1_ps(row.scale);
    let key = |p: usize| row.keys.as_ptr().add(row.offsets[p]);
    let partial = |k: *const f32| {
        let mut acc = _mm512_setzero_ps();
        for c in 0..chunks {
            let qv = _mm512_loadu_ps(q.as_ptr().add(16 * c));
            acc = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k.add(16 * c)), acc);
        }
        acc
    };
    // Final lane 4i + m holds key 4m + i (see the folds below).
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let full = scores.len() / 16 * 16;
    for p0 in (0..full).step_by(16) {
        let parts: [__m512; 16] = std::array::from_fn(|i| partial(key(p0 + i)));
        // l + 8: keys 2j and 2j + 1 share a vector (low / high 256 bits).
        let s8: [__m512; 8] = std::array::from_fn(|j| {
            let (a, b) = (parts[2 * j], parts[2 * j + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        });
        // l + 4: each 128-bit lane one key, keys 4i .. 4i + 3.
        let s4: [__m512; 4] = std::array::from_fn(|i| {
            let (u, v) = (s8[2 * i], s8[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(u, v),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(u, v),
            )
        });
        // l + 2: lane i holds keys 8t + i and 8t + 4 + i, two sums each.
        let s2: [__m512; 2] = std::array::from_fn(|t| {
            let (p, r) = (s4[2 * t], s4[2 * t + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(p, r),
                _mm512_shuffle_ps::<0b11_10_11_10>(p, r),
            )
        });
        // l + 1: lane i holds keys i, 4 + i, 8 + i, 12 + i.
        let s1 = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(s2[0], s2[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(s2[0], s2[1]),
        );
        let s = _mm512_mul_ps(_mm512_permutexvar_ps(order, s1), scale);
        _mm512_storeu_ps(scores.as_mut_ptr().add(p0), s);
    }
    for (p, score) in scores.iter_mut().enumerate().skip(full) {
        let mut lanes = [0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), partial(key(p)));
        *score = fold16(&lanes) * row.scale;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_avx2(row: &RowKeys<'_>, q: &[f32], scores: &mut [f32]) {
    use std::arch::x86_64::*;
    let chunks = row.head_dim / 16;
    for (p, score) in scores.iter_mut().enumerate() {
        let k = row.keys.as_ptr().add(row.offsets[p]);
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in 0..chunks {
            let (qc, kc) = (q.as_ptr().add(16 * c), k.add(16 * c));
            lo = _mm256_fmadd_ps(_mm256_loadu_ps(qc), _mm256_loadu_ps(kc), lo);
            hi = _mm256_fmadd_ps(_mm256_loadu_ps(qc.add(8)), _mm256_loadu_ps(kc.add(8)), hi);
        }
        let mut lanes = [0f32; 16];
        _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi);
        *score = fold16(&lanes) * row.scale;
    }
}

/// The exponentials' sum: position `16i + l` into lane `l`, then the fold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_avx2(e: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let full = e.len() / 16 * 16;
    for p in (0..full).step_by(16) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(e.as_ptr().add(p)));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(e.as_ptr().add(p + 8)));
    }
    let mut lanes = [0f32; 16];
    _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
    _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi);
    for (l, v) in e[full..].iter().enumerate() {
        lanes[l] += v;
    }
    fold16(&lanes)
}

/// `out = sum_p e_p * v_p / sum`, eight dimensions per fused multiply-add.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_values_avx2(row: &RowKeys<'_>, e: &[f32], sum: f32, out: &mut [f32]) {
    use std::arch::x86_64::*;
    const MAX: usize = 256 / 8;
    let vectors = row.head_dim / 8;
    let mut acc = [_mm256_setzero_ps(); MAX];
    for (p, &w) in e.iter().enumerate() {
        let v = row.values.as_ptr().add(row.offsets[p]);
        let w = _mm256_set1_ps(w);
        for (c, a) in acc.iter_mut().take(vectors).enumerate() {
            *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.add(8 * c)), *a);
        }
    }
    let sum = _mm256_set1_ps(sum);
    for (c, a) in acc.iter().take(vectors).enumerate() {
        _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), _mm256_div_ps(*a, sum));
    }
}

/// [`weighted_values_avx2`]'s numbers for up to `heads` heads from head `first` at once
/// (sixteen dimensions per instruction, each value row loaded once for all of them).
/// Returns how many heads it did: 0 when the head dimension has no register tile here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn weighted_values_avx512(
    row: &RowKeys<'_>,
    scores: &[f32],
    first: usize,
    heads: usize,
    sums: &[f32; MAX_HEADS],
    out: &mut [f32],
) -> usize {
    let chunks = row.head_dim / 16;
    // Accumulators: heads x chunks vectors, at most 24 of AVX-512's 32 registers.
    let h = match chunks {
        1 | 2 => 8,
        4 => 6,
        8 => 3,
        _ => return 0,
    }
    .min(heads);
    match chunks {
        1 => dispatch_heads::<1>(row, scores, first, h, sums, out),
        2 => dispatch_heads::<2>(row, scores, first, h, sums, out),
        4 => dispatch_heads::<4>(row, scores, first, h, sums, out),
        _ => dispatch_heads::<8>(row, scores, first, h, sums, out),
    }
    h
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dispatch_heads<const C: usize>(
    row: &RowKeys<'_>,
    scores: &[f32],
    first: usize,
    heads: usize,
    sums: &[f32; MAX_HEADS],
    out: &mut [f32],
) {
    match heads {
        1 => values_tile::<C, 1>(row, scores, first, sums, out),
        2 => values_tile::<C, 2>(row, scores, first, sums, out),
        3 => values_tile::<C, 3>(row, scores, first, sums, out),
        4 => values_tile::<C, 4>(row, scores, first, sums, out),
        5 => values_tile::<C, 5>(row, scores, first, sums, out),
        6 => values_tile::<C, 6>(row, scores, first, sums, out),
        7 => values_tile::<C, 7>(row, scores, first, sums, out),
        8 => values_tile::<C, 8>(row, scores, first, sums, out),
        _ => unreachable!("at most 8 heads per tile"),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn values_tile<const C: usize, const H: usize>(
    row: &RowKeys<'_>,
    scores: &[f32],
    first: usize,
    sums: &[f32; MAX_HEADS],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let context = row.offsets.len();
    let mut acc = [[_mm512_setzero_ps(); C]; H];
    for (p, &offset) in row.offsets.iter().enumerate() {
        let v = row.values.as_ptr().add(offset);
        let vs: [__m512; C] = std::array::from_fn(|c| _mm512_loadu_ps(v.add(16 * c)));
        for (g, acc) in acc.iter_mut().enumerate() {
            let w = _mm512_set1_ps(*scores.get_unchecked((first + g) * context + p));
            for (a, v) in acc.iter_mut().zip(vs) {
                *a = _mm512_fmadd_ps(w, v, *a);
            }
        }
    }
    for (g, acc) in acc.iter().enumerate() {
        let sum = _mm512_set1_ps(sums[first + g]);
        let o = out.as_mut_ptr().add((first + g) * row.head_dim);
        for (c, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(o.add(16 * c), _mm512_div_ps(*a, sum));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition, one number at a time.
    fn reference(row: &RowKeys<'_>, q: &[f32]) -> Vec<f32> {
        let hd = row.head_dim;
        let scores: Vec<f32> = row
            .offsets
            .iter()
            .map(|&o| {
                let mut lanes = [0f32; 16];
                for (d, (qv, kv)) in q.iter().zip(&row.keys[o..o + hd]).enumerate() {
                    lanes[d % 16] = qv.mul_add(*kv, lanes[d % 16]);
                }
                fold16(&lanes) * row.scale
            })
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut e = scores.clone();
        unsafe { exp_shifted_fma(&mut e, max) };
        let mut lanes = [0f32; 16];
        for (p, v) in e.iter().enumerate() {
            lanes[p % 16] += v;
        }
        let sum = fold16(&lanes);
        let mut out = vec![0f32; hd];
        for (&o, w) in row.offsets.iter().zip(&e) {
            for (a, v) in out.iter_mut().zip(&row.values[o..o + hd]) {
                *a = w.mul_add(*v, *a);
            }
        }
        out.iter().map(|a| a / sum).collect()
    }

    #[test]
    fn both_instruction_sets_give_the_definitions_bits() {
        if !serves(64) {
            eprintln!("no AVX2/FMA: the kernel does not run here");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for (hd, context, heads) in [
            (64, 37, 3),
            (64, 48, 7),
            (128, 5, 4),
            (16, 1, 9),
            (256, 33, 2),
            (48, 20, 2),
        ] {
            let slots = context + 7;
            let keys: Vec<f32> = (0..slots * hd)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let values: Vec<f32> = (0..slots * hd)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            // Positions scattered over the slots, as a block table leaves them.
            let offsets: Vec<usize> = (0..context).map(|p| ((p * 5 + 3) % slots) * hd).collect();
            let q: Vec<f32> = (0..heads * hd)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            let row = RowKeys {
                keys: &keys,
                values: &values,
                offsets: &offsets,
                head_dim: hd,
                scale: 0.125,
            };
            let mut scores = vec![0f32; heads * context];
            let mut got = vec![0f32; heads * hd];
            unsafe { attend_heads(&row, &q, &mut scores, &mut got) };
            for g in 0..heads {
                let want = reference(&row, &q[g * hd..][..hd]);
                assert_eq!(
                    got[g * hd..][..hd],
                    want,
                    "head_dim {hd}, {context} positions, head {g}"
                );
                // The AVX2 pieces alone give the same bits.
                let mut narrow = vec![0f32; context];
                unsafe { scores_avx2(&row, &q[g * hd..][..hd], &mut narrow) };
                let max = narrow.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                unsafe { exp_shifted_fma(&mut narrow, max) };
                let sum = unsafe { sum_avx2(&narrow) };
                let mut out = vec![0f32; hd];
                unsafe { weighted_values_avx2(&row, &narrow, sum, &mut out) };
                assert_eq!(out, want, "AVX2, head_dim {hd}, head {g}");
            }
        }
    }
}
