//! ChartQA's relaxed accuracy (`relaxed_correctness`, from Qwen-VL): numbers within a
//! relative change of the target (5%), percentages read as fractions; anything else, and
//! any target of zero, compared as lowered text.

use crate::python::{py_float, py_lower};

/// Python's `float(text)`, with a trailing `%` (all of them, `rstrip`) meaning hundredths.
fn to_float(text: &str) -> Option<f64> {
    match text.strip_suffix('%') {
        Some(_) => py_float(text.trim_end_matches('%')).map(|v| v / 100.0),
        None => py_float(text),
    }
}

/// Whether `prediction` is within `max_relative_change` of `target`.
pub fn relaxed_correctness(prediction: &str, target: &str, max_relative_change: f64) -> bool {
    match (to_float(prediction), to_float(target)) {
        // A target of 0.0 is falsy in Python and falls to the text comparison; NaN is not.
        (Some(p), Some(t)) if t != 0.0 => (p - t).abs() / t.abs() <= max_relative_change,
        _ => py_lower(prediction) == py_lower(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_percent_either_side_and_text_otherwise() {
        assert!(relaxed_correctness("21", "20", 0.05));
        assert!(!relaxed_correctness("21.0000001", "20", 0.05));
        assert!(relaxed_correctness("0.45", "45%", 0.05));
        assert!(!relaxed_correctness("0.0", "0", 0.05));
        assert!(relaxed_correctness("0", "0", 0.05));
        assert!(!relaxed_correctness("1,000", "1000", 0.05));
        assert!(relaxed_correctness("YES", "Yes", 0.05));
        assert!(!relaxed_correctness("nan", "nan", 0.05));
        assert!(relaxed_correctness("1_0", "10", 0.05));
    }
}
