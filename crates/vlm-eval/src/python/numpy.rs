//! numpy's float64 summation as lmms-eval's standard errors go through it: `pairwise_sum`
//! and `np.std(ddof=1) / np.sqrt(n)`, so a stderr matches lmms-eval's to the last bit.

/// `np.std(scores, ddof=1) / np.sqrt(n)`, lmms-eval's `stderr_clt`, to the last bit: numpy
/// sums with its pairwise scheme, whose rounding differs from a running sum. `None` below
/// two items (lmms-eval's "N/A").
pub fn stderr_clt(scores: &[f64]) -> Option<f64> {
    let n = scores.len();
    if n < 2 {
        return None;
    }
    let mean = (0.0 + np_pairwise_sum(scores)) / n as f64;
    let squares: Vec<f64> = scores.iter().map(|x| (x - mean) * (x - mean)).collect();
    let var = (0.0 + np_pairwise_sum(&squares)) / (n - 1) as f64;
    Some(var.sqrt() / (n as f64).sqrt())
}

/// numpy's `pairwise_sum` for float64 (`np.add.reduce` on a contiguous array): plain
/// below 8 items, 8 interleaved accumulators up to 128, halves (multiples of 8) above.
fn np_pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, x| acc + x)
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - n % 8 {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        np_pairwise_sum(&a[..half]) + np_pairwise_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_clt_is_numpys_to_the_bit() {
        // np.std(a, ddof=1) / np.sqrt(n) in numpy 2.4 for a[i] = (7i + i*i) % 3 == 0.
        for (n, want) in [
            (5, 0.24494897427831783),
            (77, 0.05424681453014244),
            (300, 0.02726202733698435),
            (1001, 0.014910838723693597),
            (2000, 0.010544878957869456),
        ] {
            let a: Vec<f64> = (0..n)
                .map(|i: usize| {
                    if matches!((i * 7 + i * i) % 3, 0) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(stderr_clt(&a), Some(want), "n = {n}");
        }
        assert_eq!(stderr_clt(&[1.0]), None);
    }
}
