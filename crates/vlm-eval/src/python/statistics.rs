//! Means as Python computes them. `statistics.mean` for floats: the exact sum of the values
//! divided by their count, rounded once (Python sums them as fractions), where a running
//! float sum would round at every step (TextVQA's per-question accuracy goes through it).
//! `sum(xs) / len(xs)`, the running sum, and lmms-eval's `mean_stderr` built on it.

/// `sum(xs) / len(xs)` in Python: a running float sum from the first item.
pub fn py_mean(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |acc, x| acc + x) / xs.len() as f64
}

/// Python's `x ** 2`: C's `pow(x, 2.0)` (glibc's differs from `x * x` in the last bit for
/// some inputs). The exponent is opaque so the compiler keeps the library call.
fn py_square(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// lmms-eval's `mean_stderr`: the sample standard deviation (a running sum of
/// `(x - mu) ** 2`) over the square root of the count. `None` below two items ("N/A").
pub fn mean_stderr(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let mu = py_mean(xs);
    let squares = xs.iter().fold(0.0, |acc, x| acc + py_square(x - mu));
    Some((squares / (xs.len() - 1) as f64).sqrt() / (xs.len() as f64).sqrt())
}

/// `statistics.mean(values)`, correctly rounded. `None` for an empty list, a non-finite
/// value, or values whose exact sum needs more than 126 bits (spread over more than ~70
/// binary orders of magnitude), which this fixed-point sum does not hold.
pub fn py_statistics_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Every value as mantissa * 2^exponent.
    let parts: Vec<(i128, i32)> = values
        .iter()
        .filter(|v| **v != 0.0)
        .map(|&v| split(v))
        .collect();
    let Some(min_exp) = parts.iter().map(|&(_, e)| e).min() else {
        return Some(0.0);
    };
    let mut sum: i128 = 0;
    for &(m, e) in &parts {
        let shift = u32::try_from(e - min_exp).ok()?;
        if shift > 126 - 53 {
            return None;
        }
        sum = sum.checked_add(m.checked_shl(shift)?)?;
        if sum.unsigned_abs() >= 1 << 126 {
            return None;
        }
    }
    let negative = sum < 0;
    let magnitude = divide_rounded(sum.unsigned_abs(), values.len() as u128, min_exp)?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `v` as `m * 2^e` with `m` an integer of at most 53 bits.
fn split(v: f64) -> (i128, i32) {
    let bits = v.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1 << 52) - 1)) as i128;
    let (m, e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp_bits - 1075)
    };
    (if v < 0.0 { -m } else { m }, e)
}

/// `a / b * 2^exp` rounded to the nearest float, ties to even.
fn divide_rounded(a: u128, b: u128, exp: i32) -> Option<f64> {
    if a == 0 {
        return Some(0.0);
    }
    let bits = |x: u128| 128 - x.leading_zeros() as i32;
    // Scale so the quotient has 55 or 56 bits: two past the 53 kept, the rest in `sticky`.
    let shift = 55 - (bits(a) - bits(b));
    let (num, den) = if shift >= 0 {
        (a.checked_shl(shift as u32)?, b)
    } else {
        (a, b.checked_shl((-shift) as u32)?)
    };
    let (q, r) = (num / den, num % den);
    let drop = bits(q) - 53;
    let kept = q >> drop;
    let rest = q & ((1 << drop) - 1);
    let half = 1u128 << (drop - 1);
    let round_up = rest > half || (rest == half && (r != 0 || kept & 1 == 1));
    let mantissa = kept + u128::from(round_up);
    let exponent = exp + drop - shift;
    Some(mantissa as f64 * pow2(exponent))
}

/// `2^e` exactly, for the exponents a mean of floats can reach.
fn pow2(e: i32) -> f64 {
    let half = e / 2;
    2f64.powi(half) * 2f64.powi(e - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_once_as_python_does() {
        // statistics.mean(...) printed by python3.11.
        let third = 1.0 / 3.0;
        for (values, want) in [
            (vec![third; 10], 0.3333333333333333),
            (
                vec![
                    0.0,
                    third,
                    2.0 / 3.0,
                    1.0,
                    1.0,
                    1.0,
                    third,
                    0.0,
                    0.0,
                    2.0 / 3.0,
                ],
                0.5,
            ),
            (
                [vec![2.0 / 3.0; 7], vec![third; 3]].concat(),
                0.5666666666666667,
            ),
            (vec![0.1, 0.2, 0.3], 0.2),
            ([vec![third; 9], vec![1.0]].concat(), 0.39999999999999997),
            (vec![-0.1, 0.2, -0.3], -0.06666666666666667),
        ] {
            assert_eq!(py_statistics_mean(&values), Some(want), "{values:?}");
        }
        assert_eq!(py_statistics_mean(&[]), None);
        assert_eq!(py_statistics_mean(&[1e-300, 3.0]), None);
        assert_eq!(py_statistics_mean(&[0.0, 0.0]), Some(0.0));
    }
}
