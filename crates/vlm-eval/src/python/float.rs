//! Python's `float`: parsing (`float(s)`), `round(x, n)` and `str(x)`, for the numbers
//! MMMU's open-answer scoring reads, rounds and compares as text.

use std::sync::LazyLock;

use fancy_regex::Regex;

use super::str::{py_isspace, py_strip};

/// A Unicode decimal digit's value (`٣` is 3, `５` is 5): its place in its run of the
/// `Nd` category, which Unicode lays out in aligned runs of ten from 0.
pub fn py_decimal_value(c: char) -> Option<u32> {
    static ND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("valid"));
    let is_nd = |c: char| ND.is_match(c.encode_utf8(&mut [0; 4])).unwrap_or(false);
    if c.is_ascii_digit() {
        return c.to_digit(10);
    }
    if !is_nd(c) {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if !is_nd(prev) {
            break;
        }
        start -= 1;
    }
    Some((c as u32 - start) % 10)
}

/// What `float()` parses: Unicode digits as ASCII ones, Unicode spaces as spaces; any
/// other non-ASCII character makes the text unparsable.
fn to_ascii(s: &str) -> Option<String> {
    s.chars()
        .map(|c| {
            if c.is_ascii() {
                Some(c)
            } else if py_isspace(c) {
                Some(' ')
            } else {
                py_decimal_value(c).and_then(|d| char::from_digit(d, 10))
            }
        })
        .collect()
}

/// Python's `float(s)`: surrounding whitespace, signs, `inf`/`infinity`/`nan` in any case,
/// `_` between digits, and Unicode digits (`５０`).
pub fn py_float(s: &str) -> Option<f64> {
    let ascii = to_ascii(s)?;
    let t = py_strip(&ascii);
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

/// Python's `str(float)` (`repr`): the shortest digits that read back, in positional
/// notation for decimal exponents from -4 to 15 (with `.0` on whole numbers), else as
/// `1e-05` / `1.5e+16`.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest digits: `d.ddd` and the exponent.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let text = format!("{v}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
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
        assert_eq!(py_float("5é"), None);
    }

    #[test]
    fn unicode_digits_and_spaces_read_as_python_reads_them() {
        // float(...) in python3.11.
        assert_eq!(py_float("５０"), Some(50.0));
        assert_eq!(py_float("٥٠"), Some(50.0));
        assert_eq!(py_float("\u{a0}۱.۵\u{3000}"), Some(1.5));
        assert_eq!(py_float("𝟗𝟘"), Some(90.0));
    }

    #[test]
    fn float_repr_keeps_a_point_on_whole_numbers() {
        assert_eq!(py_float_repr(12.0), "12.0");
        assert_eq!(py_float_repr(0.25), "0.25");
        // repr(...) in python3.11.
        assert_eq!(py_float_repr(0.00001), "1e-05");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1.5e16), "1.5e+16");
        assert_eq!(py_float_repr(9999999999999998.0), "9999999999999998.0");
        assert_eq!(py_float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(py_float_repr(1e300), "1e+300");
        assert_eq!(py_float_repr(-0.0), "-0.0");
    }
}
