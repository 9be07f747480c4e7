//! MME as lmms-eval's `mme` task scores it: yes/no questions, two per image; per image
//! `acc` (share right, x100) plus `acc+` (both right, x100), averaged per category, summed
//! over the perception and the cognition categories.

use std::collections::BTreeMap;

use crate::python::{py_lower, py_strip};

pub const PERCEPTION: [&str; 10] = [
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
];
pub const COGNITION: [&str; 4] = [
    "commonsense_reasoning",
    "numerical_calculation",
    "text_translation",
    "code_reasoning",
];

const YES_NO_SUFFIX: &str = " Please answer yes or no.";
/// lmms-eval's default `post_prompt` for `mme`.
pub const POST_PROMPT: &str = "\nAnswer the question using a single word or phrase.";

/// The text sent with the image.
pub fn prompt(question: &str) -> String {
    format!(
        "{}{POST_PROMPT}",
        py_strip(question).replace(YES_NO_SUFFIX, "")
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum YesNo {
    Yes,
    No,
    Other,
}

/// The answer parser lmms-eval took from Otter: exact "yes"/"no", single letters "y"/"n",
/// else "yes" or "no" within the first four characters (checked in that order).
pub fn parse_yes_no(response: &str) -> YesNo {
    let s = py_strip(&py_lower(response)).replace('.', "");
    match s.as_str() {
        "yes" => return YesNo::Yes,
        "no" => return YesNo::No,
        _ => {}
    }
    if s.chars().count() == 1 {
        return match s.as_str() {
            "y" => YesNo::Yes,
            "n" => YesNo::No,
            _ => YesNo::Other,
        };
    }
    let head: String = s.chars().take(4).collect();
    if head.contains("yes") {
        YesNo::Yes
    } else if head.contains("no") {
        YesNo::No
    } else {
        YesNo::Other
    }
}

impl YesNo {
    pub fn as_str(self) -> &'static str {
        match self {
            YesNo::Yes => "yes",
            YesNo::No => "no",
            YesNo::Other => "other",
        }
    }
}

/// The gold answer, normalised as lmms-eval does (`lower().strip()` without periods).
pub fn gold_text(answer: &str) -> String {
    py_strip(&py_lower(answer)).replace('.', "")
}

/// The gold answer as yes/no, where it is one.
pub fn gold(answer: &str) -> Option<YesNo> {
    match gold_text(answer).as_str() {
        "yes" => Some(YesNo::Yes),
        "no" => Some(YesNo::No),
        _ => None,
    }
}

/// One scored sample: the image it asks about (`question_id`) and its category.
#[derive(Debug, Clone)]
pub struct Scored<'a> {
    pub question_id: &'a str,
    pub category: &'a str,
    pub correct: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MmeScores {
    /// Category -> mean over its images of `acc + acc+` (0..=200).
    pub categories: BTreeMap<String, f64>,
    pub perception: f64,
    pub cognition: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MmeError {
    #[error("MME scores images in pairs; {question_id} ({category}) has {count} question(s)")]
    NotAPair {
        question_id: String,
        category: String,
        count: usize,
    },
}

/// One image's answers within a category.
type ImageAnswers<'a> = (&'a str, Vec<bool>);

pub fn aggregate(samples: &[Scored<'_>]) -> Result<MmeScores, MmeError> {
    // category -> question_id -> scores, in first-seen order as Python dicts keep it.
    let mut by_category: Vec<(&str, Vec<ImageAnswers<'_>>)> = Vec::new();
    for s in samples {
        let ci = match by_category.iter().position(|(c, _)| *c == s.category) {
            Some(i) => i,
            None => {
                by_category.push((s.category, Vec::new()));
                by_category.len() - 1
            }
        };
        let questions = &mut by_category[ci].1;
        match questions.iter_mut().find(|(q, _)| *q == s.question_id) {
            Some((_, scores)) => scores.push(s.correct),
            None => questions.push((s.question_id, vec![s.correct])),
        }
    }
    let mut categories = BTreeMap::new();
    let (mut perception, mut cognition) = (0.0, 0.0);
    for (category, questions) in &by_category {
        let mut total = 0.0f64;
        for (q, scores) in questions {
            if scores.len() != 2 {
                return Err(MmeError::NotAPair {
                    question_id: q.to_string(),
                    category: category.to_string(),
                    count: scores.len(),
                });
            }
            let right = scores.iter().filter(|&&c| c).count() as f64;
            let acc = right / scores.len() as f64 * 100.0;
            let acc_plus = if right == 2.0 { 100.0 } else { 0.0 };
            total += acc_plus + acc;
        }
        let avg = total / questions.len() as f64;
        categories.insert(category.to_string(), avg);
        // lmms-eval files every category not listed as perception under cognition.
        if PERCEPTION.contains(category) {
            perception += avg;
        } else {
            cognition += avg;
        }
    }
    Ok(MmeScores {
        categories,
        perception,
        cognition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_drops_the_yes_no_instruction_and_adds_the_post_prompt() {
        assert_eq!(
            prompt("  Is there a dog? Please answer yes or no. "),
            "Is there a dog?\nAnswer the question using a single word or phrase."
        );
        assert_eq!(
            prompt("Is it red?"),
            "Is it red?\nAnswer the question using a single word or phrase."
        );
    }

    #[test]
    fn parser_matches_lmms_eval_on_the_tricky_cases() {
        let cases = [
            ("Yes", YesNo::Yes),
            ("yes.", YesNo::Yes),
            ("  No.  ", YesNo::No),
            ("Y", YesNo::Yes),
            ("n", YesNo::No),
            ("x", YesNo::Other),
            (".", YesNo::Other), // empty after removing periods: not one character
            ("Yes, there is a dog.", YesNo::Yes),
            ("No, it is not.", YesNo::No),
            ("Not sure", YesNo::No), // "no" in "not " wins, as in lmms-eval
            ("I think yes", YesNo::Other), // "yes" is past the first four characters
            ("y.e.s", YesNo::Yes),
            ("nope", YesNo::No),
            ("Maybe", YesNo::Other),
            ("", YesNo::Other),
            ("YES!", YesNo::Yes),
        ];
        for (response, want) in cases {
            assert_eq!(parse_yes_no(response), want, "{response:?}");
        }
    }

    #[test]
    fn aggregation_is_acc_plus_acc_plus_per_category() {
        let s = |q, c, correct| Scored {
            question_id: q,
            category: c,
            correct,
        };
        let samples = [
            s("a.png", "color", true),
            s("a.png", "color", true),
            s("b.png", "color", true),
            s("b.png", "color", false),
            s("c.png", "code_reasoning", false),
            s("c.png", "code_reasoning", false),
        ];
        let scores = aggregate(&samples).unwrap();
        // a: 100 + 100, b: 50 + 0 -> 125.
        assert_eq!(scores.categories["color"], 125.0);
        assert_eq!(scores.categories["code_reasoning"], 0.0);
        assert_eq!(scores.perception, 125.0);
        assert_eq!(scores.cognition, 0.0);
        assert!(matches!(
            aggregate(&samples[..3]),
            Err(MmeError::NotAPair { count: 1, .. })
        ));
    }
}
