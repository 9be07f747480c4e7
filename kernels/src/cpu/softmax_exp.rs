//! The softmax's exponentials, eight at a time, for the attention kernels.

/// `v = exp(v - max)` for every score, eight at a time: Cephes' `expf` (a degree-6
/// polynomial on `r = x - n ln 2`, scaled by `2^n`), within 2 ulp of `exp` for the
/// arguments softmax gives it (`<= 0`); arguments below -87.3 give `exp(-87.3)`, about
/// 1e-38, instead of a subnormal. Each score's result depends only on its own value.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_shifted_fma(scores: &mut [f32], max: f32) {
    use std::arch::x86_64::*;
    let one = _mm256_set1_ps(1.0);
    let shift = _mm256_set1_ps(max);
    let lowest = _mm256_set1_ps(-87.336_54);
    let log2e = _mm256_set1_ps(std::f32::consts::LOG2_E);
    let ln2_hi = _mm256_set1_ps(0.693_359_4);
    let ln2_lo = _mm256_set1_ps(-2.121_944_4e-4);
    let coefficients = [
        1.987_569_1e-4f32,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let exp8 = |x: __m256| {
        let x = _mm256_max_ps(_mm256_sub_ps(x, shift), lowest);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, log2e),
        );
        let r = _mm256_fnmadd_ps(n, ln2_hi, x);
        let r = _mm256_fnmadd_ps(n, ln2_lo, r);
        let mut p = _mm256_set1_ps(coefficients[0]);
        for &c in &coefficients[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), one);
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(bits))
    };
    let full = scores.len() / 8 * 8;
    for chunk in scores[..full].chunks_exact_mut(8) {
        _mm256_storeu_ps(chunk.as_mut_ptr(), exp8(_mm256_loadu_ps(chunk.as_ptr())));
    }
    if full < scores.len() {
        let mut tail = [max; 8];
        let rest = scores.len() - full;
        tail[..rest].copy_from_slice(&scores[full..]);
        _mm256_storeu_ps(tail.as_mut_ptr(), exp8(_mm256_loadu_ps(tail.as_ptr())));
        scores[full..].copy_from_slice(&tail[..rest]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) unsafe fn exp_shifted_fma(scores: &mut [f32], max: f32) {
    for sc in scores.iter_mut() {
        *sc = (*sc - max).exp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::features::avx2_fma;

    #[test]
    fn vector_exp_is_within_two_ulp_of_exp() {
        if !avx2_fma() {
            return;
        }
        // Softmax arguments: every score minus the largest, so all <= 0.
        let mut scores: Vec<f32> = (0..20_001).map(|i| -(i as f32) * 0.004_35).collect();
        let want: Vec<f32> = scores.iter().map(|v| v.exp()).collect();
        unsafe { exp_shifted_fma(&mut scores, 0.0) };
        for (i, (got, want)) in scores.iter().zip(&want).enumerate() {
            if *want < 1e-37 {
                continue; // below the clamp
            }
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(
                ulps <= 2,
                "at {}: {got} vs {want} ({ulps} ulp)",
                -(i as f32) * 0.004_35
            );
        }
        // The shift is applied before the exponential, and a partial last vector is filled.
        let mut shifted = vec![3.0f32, 2.5, 1.0];
        unsafe { exp_shifted_fma(&mut shifted, 3.0) };
        assert_eq!(shifted[0], 1.0);
        assert!((shifted[2] - (-2f32).exp()).abs() < 1e-7);
    }
}
