//! DocVQA's ANLS (lmms-eval's `anls` metric, from Qwen-VL): one minus the smallest
//! normalised Levenshtein distance to any reference, zero below the threshold (0.5).
//! Distances are over lowered, whitespace-collapsed text; the normaliser is the longer of
//! the two *uppercased, unnormalised* strings, as the original computes it.

use crate::python::{py_lower, py_split_whitespace, py_strip, py_upper};

/// Levenshtein distance over Unicode code points.
pub fn levenshtein(a: &[char], b: &[char]) -> usize {
    let (a, b) = if a.len() > b.len() { (b, a) } else { (a, b) };
    let mut row: Vec<usize> = (0..=a.len()).collect();
    for (i, cb) in b.iter().enumerate() {
        let mut next = Vec::with_capacity(row.len());
        next.push(i + 1);
        for (j, ca) in a.iter().enumerate() {
            next.push(if ca == cb {
                row[j]
            } else {
                1 + row[j].min(row[j + 1]).min(next[j])
            });
        }
        row = next;
    }
    row[a.len()]
}

fn collapse(s: &str) -> Vec<char> {
    let lowered = py_lower(py_strip(s));
    py_split_whitespace(&lowered)
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect()
}

/// ANLS of `prediction` against `references`; `None` without references (lmms-eval fails).
pub fn anls(prediction: &str, references: &[&str], threshold: f64) -> Option<f64> {
    let det = collapse(prediction);
    let pred_len = py_upper(prediction).chars().count();
    let mut best: Option<f64> = None;
    for answer in references {
        let dist = levenshtein(&collapse(answer), &det);
        let length = py_upper(answer).chars().count().max(pred_len);
        let value = if length == 0 {
            0.0
        } else {
            dist as f64 / length as f64
        };
        best = Some(best.map_or(value, |b: f64| b.min(value)));
    }
    let result = 1.0 - best?;
    Some(if result < threshold { 0.0 } else { result })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_normalisation() {
        assert_eq!(anls("Total  Sales", &["total sales"], 0.5), Some(1.0));
        // 5 edits over 10 characters: 0.5 is kept; 6 edits: 0.4 is cut to 0.
        assert_eq!(anls("abcdefghij", &["abcdeVWXYZ"], 0.5), Some(0.5));
        assert_eq!(anls("abcdefghij", &["abcdUVWXYZ"], 0.5), Some(0.0));
        assert_eq!(anls("x", &["nope", "x"], 0.5), Some(1.0));
        assert_eq!(anls("", &[""], 0.5), Some(1.0));
        assert_eq!(anls("a", &[], 0.5), None);
        // `ß` uppercases to two characters, lengthening the normaliser.
        assert_eq!(anls("straße", &["strasse"], 0.5), Some(1.0 - 2.0 / 7.0));
    }
}
