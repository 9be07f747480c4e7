//! MathVista's rules, as lmms-eval 0.7.3 applies them (`mathvista_evals.py`): the query
//! for each shot type, answer extraction (a choice as written, Python `int()` / `float()`
//! of the whole response; the judge otherwise), normalisation per answer type and
//! precision, and the comparison as text.

use crate::python::{py_decimal_value, py_float, py_float_repr, py_isspace, py_strip};
use crate::tasks::scorers::levenshtein;

/// lmms-eval's answer-extraction examples (`DEMO_PROMPT`, stripped), sent to the judge
/// before the question and the model's response.
pub const DEMO_PROMPT: &str = "Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.\n\nHint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.\nQuestion: Which number is missing?\n\nModel response: The number missing in the sequence is 14.\n\nExtracted answer: 14\n\nHint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: What is the fraction of females facing the camera?\n\nModel response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.\n\nExtracted answer: 0.6\n\nHint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)\n\nModel response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.\n\nExtracted answer: 1.45\n\nHint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: Between which two years does the line  graph saw its maximum peak?\n\nModel response: The line graph saw its maximum peak between 2007 and 2008.\n\nExtracted answer: [2007, 2008]\n\nHint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5\n\nModel response: The correct answer is (B) 8/11.\n\nExtracted answer: B";

/// How the question is put (lmms-eval's `shot_type`, zero-shot, no caption or OCR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShotType {
    /// `mathvista_testmini_format`: answer directly.
    FormatPrompt,
    /// `mathvista_testmini_cot`: a hint asking for the answer at the end.
    StepByStep,
    /// `mathvista_testmini_solution`: the same hint, then `Solution: `.
    Solution,
}

/// The row's problem, as lmms-eval builds it.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    pub question: &'a str,
    pub unit: Option<&'a str>,
    pub choices: Option<Vec<&'a str>>,
    /// The dataset's float64 `precision` (`None` where null).
    pub precision: Option<f64>,
    pub question_type: &'a str,
    pub answer_type: &'a str,
}

/// The hint for a shot type and answer type; `None` where lmms-eval has none (it fails).
fn hint(shot: ShotType, p: &Problem<'_>) -> Option<&'static str> {
    let precision = p.precision;
    match shot {
        ShotType::FormatPrompt => match (p.question_type, p.answer_type) {
            ("multi_choice", "text") => {
                Some("Answer with the option's letter from the given choices directly.")
            }
            ("multi_choice", _) => None,
            (_, "integer") => Some("Answer the question using a single integer number."),
            (_, "float") if precision == Some(1.0) => Some(
                "Answer the question using a single floating-point number with one decimal place.",
            ),
            (_, "float") if precision == Some(2.0) => Some(
                "Answer the question using a single floating-point number with two decimal places.",
            ),
            (_, "list") => Some("Answer the question using a Python list."),
            _ => None,
        },
        ShotType::StepByStep | ShotType::Solution => match (p.question_type, p.answer_type) {
            ("multi_choice", "text") => Some(
                "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
            ),
            ("multi_choice", _) => None,
            (_, "integer") => Some(
                "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
            ),
            (_, "float") if precision == Some(1.0) => Some(
                "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
            ),
            (_, "float") if precision == Some(2.0) => Some(
                "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
            ),
            (_, "list") => Some(
                "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
            ),
            _ => None,
        },
    }
}

/// `create_one_query` with no examples: question (with unit), choices, hint, prompt, one
/// per line, empty ones left out, stripped. `None` where lmms-eval has no hint (it fails).
pub fn query(shot: ShotType, p: &Problem<'_>) -> Option<String> {
    let hint = hint(shot, p)?;
    let mut question = match shot {
        ShotType::FormatPrompt => p.question.to_string(),
        _ => format!("Question: {}", p.question),
    };
    if let Some(unit) = p.unit.filter(|u| !u.is_empty()) {
        question += &format!(" (Unit: {unit})");
    }
    let choices = match &p.choices {
        Some(c) if !c.is_empty() => {
            let letter = |i: usize| char::from_u32(65 + i as u32).unwrap_or('?');
            match shot {
                ShotType::FormatPrompt => c
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{}. {c}", letter(i)))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => std::iter::once("Choices:".to_string())
                    .chain(
                        c.iter()
                            .enumerate()
                            .map(|(i, c)| format!("({}) {c}", letter(i))),
                    )
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        }
        _ => String::new(),
    };
    let prompt = if shot == ShotType::Solution {
        "Solution: "
    } else {
        ""
    };
    let elements = [question, choices, hint.to_string(), prompt.to_string()];
    let joined = elements
        .iter()
        .filter(|e| !e.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    // `("" + "\n\n" + test_query).strip()`.
    Some(py_strip(&joined).to_string())
}

/// Python's `str(int(text))`: whitespace around, a sign, digits (any script's) with single
/// underscores between them.
fn py_int_str(text: &str) -> Option<String> {
    let t = text.trim_matches(py_isspace);
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let chars: Vec<char> = digits.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            let between =
                i > 0 && i + 1 < chars.len() && chars[i - 1] != '_' && chars[i + 1] != '_';
            if !between {
                return None;
            }
            continue;
        }
        out.push(char::from_digit(py_decimal_value(c)?, 10)?);
    }
    if out.is_empty() {
        return None;
    }
    let trimmed = out.trim_start_matches('0');
    let magnitude = if trimmed.is_empty() { "0" } else { trimmed };
    Some(if negative && magnitude != "0" {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    })
}

/// The rules of `extract_answer` (quick extraction off, as 0.7.3's yaml sets it): `Some`
/// with the extraction, or `None` when the judge must read the response.
pub fn extract_by_rules(response: &str, p: &Problem<'_>) -> Option<String> {
    if response.is_empty() {
        return Some(String::new());
    }
    if p.question_type == "multi_choice"
        && p.choices.as_ref().is_some_and(|c| c.contains(&response))
    {
        return Some(response.to_string());
    }
    if p.answer_type == "integer" {
        if let Some(v) = py_int_str(response) {
            return Some(v);
        }
    }
    if p.answer_type == "float" {
        if let Some(v) = py_float(response) {
            return Some(py_float_repr(v));
        }
    }
    None
}

/// The judge prompt for a response the rules cannot read (`create_test_prompt`).
pub fn judge_prompt(query: &str, response: &str) -> String {
    format!("{DEMO_PROMPT}\n\n{query}\n\n{response}\n\nExtracted answer: ")
}

/// `normalize_extracted_answer`: a choice's text for multiple choice (by letter, else the
/// nearest by edit distance), `str(int(float(x)))`, `str(round(float(x), precision))`.
/// `None` is Python's `None` (the answer cannot be read; it is compared as "None").
pub fn normalize(extraction: &str, p: &Problem<'_>) -> Option<String> {
    if p.question_type == "multi_choice" {
        let choices = p.choices.clone().unwrap_or_default();
        let mut e = py_strip(extraction).to_string();
        // `re.findall(r"\(([a-zA-Z])\)", e)`: the first parenthesized letter.
        let chars: Vec<char> = e.chars().collect();
        if let Some(w) = chars
            .windows(3)
            .find(|w| w[0] == '(' && w[1].is_ascii_alphabetic() && w[2] == ')')
        {
            e = w[1].to_ascii_uppercase().to_string();
        }
        let options: Vec<String> = (0..choices.len())
            .map(|i| char::from_u32(65 + i as u32).unwrap_or('?').to_string())
            .collect();
        if let Some(i) = options.iter().position(|o| *o == e) {
            return Some(choices[i].to_string());
        }
        let e_chars: Vec<char> = e.chars().collect();
        return choices
            .iter()
            .min_by_key(|c| levenshtein(&e_chars, &c.chars().collect::<Vec<_>>()))
            .map(|c| c.to_string());
    }
    match p.answer_type {
        "integer" => {
            let v = py_float(extraction)?;
            if !v.is_finite() {
                return None;
            }
            let t = v.trunc();
            Some(if t == 0.0 {
                "0".into()
            } else {
                format!("{t:.0}")
            })
        }
        "float" => {
            let v = py_float(extraction)?;
            match p.precision {
                // `round(x, 2.0)`: Python refuses a float number of digits; the answer
                // becomes None. The hub's precision column is float64, so this is what
                // lmms-eval 0.7.3 does for every float question.
                Some(_) => None,
                None => {
                    if !v.is_finite() {
                        return None;
                    }
                    // `round(x)` with no digits: an int, ties to even.
                    let r = v.round_ties_even();
                    Some(if r == 0.0 {
                        "0".into()
                    } else {
                        format!("{r:.0}")
                    })
                }
            }
        }
        _ => Some(extraction.to_string()),
    }
}

/// `safe_equal`: `str(prediction).strip() == str(answer).strip()`.
pub fn safe_equal(prediction: Option<&str>, answer: &str) -> bool {
    py_strip(prediction.unwrap_or("None")) == py_strip(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem<'a>(qt: &'a str, at: &'a str, choices: Option<Vec<&'a str>>) -> Problem<'a> {
        Problem {
            question: "How many?",
            unit: None,
            choices,
            precision: None,
            question_type: qt,
            answer_type: at,
        }
    }

    #[test]
    fn python_int_and_float_readings() {
        // str(int(s)) in python3.11; None where int() raises.
        for (s, want) in [
            (" 007 ", Some("7")),
            ("-0", Some("0")),
            ("+5", Some("5")),
            ("1_0", Some("10")),
            ("1__0", None),
            ("_1", None),
            ("٣", Some("3")),
            ("7.0", None),
            ("１２", Some("12")),
        ] {
            assert_eq!(py_int_str(s).as_deref(), want, "{s:?}");
        }
        let int = problem("free_form", "integer", None);
        // str(int(float(s))).
        for (s, want) in [
            ("7.9", Some("7")),
            ("-0.5", Some("0")),
            ("1e20", Some("100000000000000000000")),
            ("nan", None),
            ("inf", None),
        ] {
            assert_eq!(normalize(s, &int).as_deref(), want, "{s:?}");
        }
    }

    #[test]
    fn extraction_rules_then_the_judge() {
        let mc = problem("multi_choice", "text", Some(vec!["red", "blue", "green"]));
        assert_eq!(extract_by_rules("", &mc).as_deref(), Some(""));
        assert_eq!(extract_by_rules("blue", &mc).as_deref(), Some("blue"));
        assert_eq!(extract_by_rules("B", &mc), None);
        let float = Problem {
            precision: Some(2.0),
            ..problem("free_form", "float", None)
        };
        assert_eq!(extract_by_rules("3.0", &float).as_deref(), Some("3.0"));
        assert_eq!(extract_by_rules("3", &float).as_deref(), Some("3.0"));
        // round(x, 2.0) raises in Python: lmms-eval's float answers read as None.
        assert_eq!(normalize("3.14159", &float), None);
        assert!(!safe_equal(None, "3.14"));
        assert!(safe_equal(None, "None"));
        // Letters, parenthesized letters, and the nearest choice by edit distance.
        assert_eq!(normalize("(b) blue", &mc).as_deref(), Some("blue"));
        assert_eq!(normalize("C", &mc).as_deref(), Some("green"));
        assert_eq!(normalize("F", &mc).as_deref(), Some("red"));
        assert_eq!(normalize("gren", &mc).as_deref(), Some("green"));
        let prompt = judge_prompt("Q?", "It is 12.");
        assert!(prompt.starts_with("Please read the following example."));
        assert!(prompt.ends_with("\n\nQ?\n\nIt is 12.\n\nExtracted answer: "));
    }
}
