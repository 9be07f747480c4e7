//! Option letters: ScienceQA's check (`sqa_process_results`: the whole answer is the
//! letter, or it starts `X.` with an uppercase `X`) and AI2D's filter
//! (`MultiChoiceRegexFilter.apply`: a leading `^\s*([A-Z])\.` becomes its letter, anything
//! else passes unchanged).

use crate::python::{py_isspace, py_isupper, py_lower};

/// Whether `response` (stripped) answers `target_letter`, as ScienceQA scores it.
pub fn sqa_letter_correct(response: &str, target_letter: &str) -> bool {
    let target = py_lower(crate::python::py_strip(target_letter));
    if py_lower(response) == target {
        return true;
    }
    let mut chars = response.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some('.')) if py_isupper(first) => py_lower(&first.to_string()) == target,
        _ => false,
    }
}

/// AI2D's filter on the raw response: the letter of a leading `X.` (after any Python
/// whitespace, `X` in `A`-`Z`), else the response unchanged.
pub fn leading_option_letter(response: &str) -> String {
    let rest = response.trim_start_matches(py_isspace);
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(letter @ 'A'..='Z'), Some('.')) => letter.to_string(),
        _ => response.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scienceqa_takes_the_letter_alone_or_before_a_period() {
        assert!(sqa_letter_correct("b", "B"));
        assert!(sqa_letter_correct("B. the moon", "B"));
        assert!(!sqa_letter_correct("b. the moon", "B"));
        assert!(!sqa_letter_correct("(B)", "B"));
        assert!(!sqa_letter_correct("The answer is B", "B"));
        assert!(!sqa_letter_correct("", "B"));
    }

    #[test]
    fn ai2d_filter_takes_only_a_leading_letter_and_period() {
        assert_eq!(leading_option_letter("  C. a frog"), "C");
        assert_eq!(leading_option_letter("\u{1c}D."), "D");
        assert_eq!(leading_option_letter("(C)"), "(C)");
        assert_eq!(leading_option_letter("c. frog"), "c. frog");
        assert_eq!(leading_option_letter("Ä."), "Ä.");
    }
}
