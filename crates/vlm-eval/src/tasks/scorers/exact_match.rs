//! lmms-eval's `exact_match` metric (`exact_match_hf_evaluate`, from Hugging Face
//! `evaluate`): both strings go through numpy (which drops trailing NUL characters),
//! optionally lowered and stripped of ASCII punctuation and digits, then compared.

/// The metric's keyword arguments, as a task's `metric_list` entry gives them (and a task
/// file's `exact_match` scorer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExactMatchOptions {
    pub ignore_case: bool,
    pub ignore_punctuation: bool,
    pub ignore_numbers: bool,
}

/// Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn normalize(s: &str, options: ExactMatchOptions) -> String {
    // numpy's fixed-width unicode strings cannot end in NUL.
    let mut s = s.trim_end_matches('\0').to_string();
    if options.ignore_case {
        // `np.char.lower` keeps the array's width: a character lowering to two (`İ`) is
        // cut at the original length.
        let width = s.chars().count();
        s = crate::python::py_lower(&s).chars().take(width).collect();
    }
    if options.ignore_punctuation {
        s.retain(|c| !PUNCTUATION.contains(c));
    }
    if options.ignore_numbers {
        s.retain(|c| !c.is_ascii_digit());
    }
    s.trim_end_matches('\0').to_string()
}

/// Whether `prediction` matches `reference` (1.0 or 0.0 in lmms-eval).
pub fn hf_exact_match(prediction: &str, reference: &str, options: ExactMatchOptions) -> bool {
    normalize(prediction, options) == normalize(reference, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_ascii_punctuation_are_ignored_when_asked() {
        let loose = ExactMatchOptions {
            ignore_case: true,
            ignore_punctuation: true,
            ignore_numbers: false,
        };
        assert!(hf_exact_match("(c)", "C", loose));
        assert!(hf_exact_match("B!", "B", loose));
        assert!(!hf_exact_match("B!", "B", ExactMatchOptions::default()));
        assert!(!hf_exact_match("C d", "C", loose));
        assert!(!hf_exact_match("C。", "C", loose));
        assert!(hf_exact_match("C\0", "C", ExactMatchOptions::default()));
        // np.char.lower(np.asarray(["TAXİ"])) is "taxi": the dotted i's second code point
        // does not fit the array's width.
        assert!(hf_exact_match("TAXİ", "taxi", loose));
        assert!(hf_exact_match("İ", "I", loose));
        let numbers = ExactMatchOptions {
            ignore_numbers: true,
            ..ExactMatchOptions::default()
        };
        assert!(hf_exact_match("A1", "A", numbers));
    }
}
