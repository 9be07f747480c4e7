//! Activations to q8_0 as llama.cpp's `quantize_row_q8_0` reference does it, eight values
//! at a time: per 32 values `d = max|x| / 127` (stored as f16, then used as f32) and
//! `q = round(x / d)`, half away from zero; plus each block's sum of `q`, which the
//! quantized GEMM needs to take its weights' unsigned offset back out.

use half::f16;

/// Values per block: q8_0's, and the quantized weight formats' (q4_K's 256 are eight).
pub const BLOCK: usize = 32;

/// `m` rows of `k` values (`k` a multiple of [`BLOCK`]) quantized per block.
pub(crate) struct QuantizedRows {
    /// `m * k` values.
    pub(crate) q: Vec<i8>,
    /// Each block's scale, `m * k / 32`.
    pub(crate) d: Vec<f32>,
    /// Each block's sum of values.
    pub(crate) sum: Vec<i32>,
}

/// Quantizes every row; rows are split across candle's pinned pool when there are many.
pub(crate) fn quantize_rows(x: &[f32], m: usize, k: usize) -> QuantizedRows {
    let blocks = m * (k / BLOCK);
    let mut out = QuantizedRows {
        q: vec![0i8; m * k],
        d: vec![0f32; blocks],
        sum: vec![0i32; blocks],
    };
    let x = &x[..m * k];
    if m < 16 {
        quantize_blocks(x, &mut out.q, &mut out.d, &mut out.sum);
        return out;
    }
    let per_row = k / BLOCK;
    let (q, d, s) = (
        SendPtr(out.q.as_mut_ptr()),
        SendPtr(out.d.as_mut_ptr()),
        SendPtr(out.sum.as_mut_ptr()),
    );
    candle_core::utils::barrier_pool().execute_chunked(m, |rows| {
        let (r0, n) = (rows.start, rows.len());
        // SAFETY: each chunk writes only its own rows of the three buffers, which outlive
        // the pool call.
        unsafe {
            quantize_blocks(
                &x[r0 * k..(r0 + n) * k],
                std::slice::from_raw_parts_mut(q.at(r0 * k), n * k),
                std::slice::from_raw_parts_mut(d.at(r0 * per_row), n * per_row),
                std::slice::from_raw_parts_mut(s.at(r0 * per_row), n * per_row),
            )
        }
    });
    out
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint row ranges of one buffer to the pool's workers.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// A method rather than `.0` so closures capture the whole (`Sync`) wrapper.
    unsafe fn at(self, offset: usize) -> *mut T {
        self.0.add(offset)
    }
}

fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32], sum: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if super::features::avx2_fma() {
        // SAFETY: AVX2 was detected.
        unsafe { quantize_blocks_avx2(x, q, d, sum) };
        return;
    }
    for (((xs, qs), d), s) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(d)
        .zip(sum)
    {
        let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
        let (scale, inv) = scale_of(amax);
        let mut total = 0i32;
        for (o, v) in qs.iter_mut().zip(xs) {
            *o = (v * inv).round() as i8;
            total += i32::from(*o);
        }
        *d = scale;
        *s = total;
    }
}

/// The block's scale as ggml stores it (f16, then read back as f32) and the factor the
/// values are multiplied by (from the unrounded scale, as llama.cpp does).
fn scale_of(amax: f32) -> (f32, f32) {
    let scale = amax / 127.0;
    let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    (f16::from_f32(scale).to_f32(), inv)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_blocks_avx2(x: &[f32], q: &mut [i8], d: &mut [f32], sum: &mut [i32]) {
    use std::arch::x86_64::*;
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    for ((xs, qs), (d, s)) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(d.iter_mut().zip(sum.iter_mut()))
    {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(xs.as_ptr().add(8 * i)));
        let m01 = _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask));
        let m23 = _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_max_ps(m01, m23));
        let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
        let (scale, inv) = scale_of(amax);
        let inv = _mm256_set1_ps(inv);
        let mut ints = [_mm256_setzero_si256(); 4];
        for i in 0..4 {
            let y = _mm256_mul_ps(v[i], inv);
            // Round half away from zero exactly: truncate, then step away from zero when
            // the part cut off is at least one half.
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
            let cut = _mm256_and_ps(_mm256_sub_ps(y, t), abs_mask);
            let away = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(cut, half), one);
            let r = _mm256_add_ps(t, _mm256_or_ps(away, _mm256_and_ps(y, sign_mask)));
            ints[i] = _mm256_cvtps_epi32(r);
        }
        // i32 -> i8 in order: packs interleave 128-bit lanes, the permute puts them back.
        let w01 = _mm256_packs_epi32(ints[0], ints[1]);
        let w23 = _mm256_packs_epi32(ints[2], ints[3]);
        let b8 = _mm256_packs_epi16(w01, w23);
        let b8 = _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, b8);
        let total = _mm256_add_epi32(
            _mm256_add_epi32(ints[0], ints[1]),
            _mm256_add_epi32(ints[2], ints[3]),
        );
        let mut t = [0i32; 8];
        _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, total);
        *s = t.iter().sum();
        *d = scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The reference, one value at a time.
    fn reference(x: &[f32]) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
        let (mut q, mut d, mut s) = (vec![], vec![], vec![]);
        for xs in x.chunks_exact(BLOCK) {
            let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
            let (scale, inv) = scale_of(amax);
            let block: Vec<i8> = xs.iter().map(|v| (v * inv).round() as i8).collect();
            s.push(block.iter().map(|&v| i32::from(v)).sum());
            q.extend(block);
            d.push(scale);
        }
        (q, d, s)
    }

    #[test]
    fn vector_path_matches_the_reference_including_halves() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (m, k) = (37, 128);
        let mut x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        // Exact halves after scaling: amax 127 makes the factor 1.
        for (i, v) in [127.0, 0.5, -0.5, 1.5, -2.5, 126.5, -126.5]
            .iter()
            .enumerate()
        {
            x[i] = *v;
        }
        x[64..96].fill(0.0);
        let got = quantize_rows(&x, m, k);
        let (q, d, s) = reference(&x);
        assert_eq!(got.q, q);
        assert_eq!(got.d, d);
        assert_eq!(got.sum, s);
        assert_eq!(&got.q[..7], &[127, 1, -1, 2, -3, 127, -127]);
        assert_eq!(got.d[2], 0.0, "an all-zero block has a zero scale");
        let one = quantize_rows(&x[5 * k..6 * k], 1, k);
        assert_eq!(one.q, got.q[5 * k..6 * k], "a row alone quantizes the same");
    }

    #[test]
    fn activations_quantize_as_llama_cpp() {
        let mut x = vec![0f32; 64];
        x[0] = 1.27;
        x[1] = -0.6;
        x[2] = 0.02;
        let got = quantize_rows(&x, 1, 64);
        assert_eq!(got.d[0], f16::from_f32(0.01).to_f32());
        assert_eq!(&got.q[..3], &[127, -60, 2]);
        assert_eq!(got.sum[0], 127 - 60 + 2);
        assert_eq!(got.d[1], 0.0, "an all-zero block has a zero scale");
    }
}
