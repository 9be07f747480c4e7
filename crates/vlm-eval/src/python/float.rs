//! Python's `float`: parsing (`float(s)`), `round(x, n)` and `str(x)`, for the numbers
//! MMMU's open-answer scoring reads, rounds and compares as text.

use super::str::py_strip;

/// Python's `float(s)`: surrounding whitespace, signs, `inf`/`infinity`/`nan` in any case,
/// and `_` between digits.
pub fn py_float(s: &str) -> Option<f64> {
    let t = py_strip(s);
    if t.is_empty() {
        return None;
    }
    let chars: Vec<char> = t.chars().collect();
    let mut cleaned = String::with_capacity(t.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            let between_digits = i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_ascii_digit()
                && chars[i + 1].is_ascii_digit();
            if !between_digits {
                return None;
            }
            continue;
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
            return None;
        }
        cleaned.push(c);
    }
    let unsigned = cleaned.trim_start_matches(['+', '-']);
    if cleaned.len() - unsigned.len() > 1 {
        return None;
    }
    let lower = unsigned.to_ascii_lowercase();
    if ["inf", "infinity", "nan"].contains(&lower.as_str()) {
        return cleaned.parse::<f64>().ok().or_else(|| {
            let v = if lower == "nan" {
                f64::NAN
            } else {
                f64::INFINITY
            };
            Some(if cleaned.starts_with('-') { -v } else { v })
        });
    }
    // Rust accepts what Python does for plain decimal and exponent forms.
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

/// Python's `round(x, n)`: correctly rounded, ties to even on the exact binary value —
/// which is what Rust's fixed-precision formatting computes.
pub fn py_round(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// Python's `str(float)` for the values `round(x, 2)` produces.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else if v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_parsing_rejects_what_python_rejects() {
        assert_eq!(py_float("1e"), None);
        assert_eq!(py_float("--1"), None);
        assert_eq!(py_float("_1"), None);
    }

    #[test]
    fn float_repr_keeps_a_point_on_whole_numbers() {
        assert_eq!(py_float_repr(12.0), "12.0");
        assert_eq!(py_float_repr(0.25), "0.25");
    }
}
