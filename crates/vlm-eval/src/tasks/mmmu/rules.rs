//! MMMU (validation) as lmms-eval's `mmmu_val` scores it, itself the official MMMU rules:
//! the multiple-choice parser (with its random fallback drawn from Python's
//! `random.seed(0)` stream, in document order), the open-answer parser (key sub-responses,
//! number extraction, normalisation with Python's `round(x, 2)`), per-subject accuracy,
//! per-domain and overall micro accuracy rounded to 5 places.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use fancy_regex::Regex;

use crate::python::{py_float, py_lower, py_round, py_split_whitespace, py_strip, PythonRandom};

pub const DOMAINS: [(&str, &[&str]); 6] = [
    ("Art and Design", &["Art", "Art_Theory", "Design", "Music"]),
    (
        "Business",
        &["Accounting", "Economics", "Finance", "Manage", "Marketing"],
    ),
    (
        "Science",
        &["Biology", "Chemistry", "Geography", "Math", "Physics"],
    ),
    (
        "Health and Medicine",
        &[
            "Basic_Medical_Science",
            "Clinical_Medicine",
            "Diagnostics_and_Laboratory_Medicine",
            "Pharmacy",
            "Public_Health",
        ],
    ),
    (
        "Humanities and Social Science",
        &["History", "Literature", "Sociology", "Psychology"],
    ),
    (
        "Tech and Engineering",
        &[
            "Agriculture",
            "Architecture_and_Engineering",
            "Computer_Science",
            "Electronics",
            "Energy_and_Power",
            "Materials",
            "Mechanical_Engineering",
        ],
    ),
];

/// `A. first\nB. second...` as lmms-eval lists options.
pub fn format_options(options: &[String]) -> String {
    options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{}. {o}", letter(i)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn letter(i: usize) -> char {
    (b'A' + i as u8) as char
}

/// The question text: multiple choice gets the options and `mc_prompt`, open questions
/// `open_prompt`, each after a blank line.
pub fn prompt(
    question: &str,
    options: Option<&[String]>,
    mc_prompt: &str,
    open_prompt: &str,
) -> String {
    match options {
        Some(opts) => format!("{question}\n{}\n\n{mc_prompt}", format_options(opts)),
        None => format!("{question}\n\n{open_prompt}"),
    }
}

/// The images a prompt refers to, as `image_k` column names: each `<image k>` once, sorted
/// (as strings, so `image_10` would sort before `image_2`, as in lmms-eval).
pub fn image_columns(prompt: &str) -> Vec<String> {
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<image \d+>").expect("regex"));
    let mut cols: Vec<String> = TAG
        .find_iter(prompt)
        .filter_map(Result::ok)
        .map(|m| {
            m.as_str()
                .trim_matches(|c| c == '<' || c == '>')
                .replace(' ', "_")
        })
        .collect();
    cols.sort();
    cols.dedup();
    cols
}

/// How a multiple-choice answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceSource {
    Parsed,
    /// No candidate: drawn from Python's random stream, as lmms-eval does.
    RandomFallback,
}

/// The official MMMU multiple-choice parser. `rng` must be the run's one
/// `random.seed(0)` stream, consumed in document order.
pub fn parse_multi_choice(
    response: &str,
    options: &[String],
    rng: &mut PythonRandom,
) -> (char, ChoiceSource) {
    let choices: Vec<char> = (0..options.len()).map(letter).collect();
    let mut r = response.to_string();
    for c in [',', '.', '!', '?', ';', ':', '\''] {
        r = r.trim_matches(c).to_string();
    }
    let r = format!(" {r} ");
    let mut index_ans = true;
    let mut with_brackets = false;
    let mut candidates: Vec<char> = Vec::new();
    for &c in &choices {
        if r.contains(&format!("({c})")) {
            candidates.push(c);
            with_brackets = true;
        }
    }
    if candidates.is_empty() {
        candidates = choices
            .iter()
            .copied()
            .filter(|c| r.contains(&format!("{c} ")))
            .collect();
    }
    if candidates.is_empty() {
        candidates = choices
            .iter()
            .copied()
            .filter(|c| r.contains(&format!("{c}.")))
            .collect();
    }
    let lower = py_lower(&r);
    if candidates.is_empty() && py_split_whitespace(&r).count() > 5 {
        for (i, option) in options.iter().enumerate() {
            if lower.contains(&py_lower(option)) {
                candidates.push(letter(i));
                index_ans = false;
            }
        }
    }
    match candidates.len() {
        0 => (*rng.choice(&choices), ChoiceSource::RandomFallback),
        1 => (candidates[0], ChoiceSource::Parsed),
        _ => {
            let position = |c: char| -> i64 {
                let found = if index_ans {
                    if with_brackets {
                        r.rfind(&format!("({c})"))
                    } else {
                        r.rfind(&format!(" {c} "))
                    }
                } else {
                    let i = (c as u8 - b'A') as usize;
                    lower.rfind(&py_lower(&options[i]))
                };
                // Byte offsets order like Python's character offsets; -1 when absent.
                found.map_or(-1, |p| p as i64)
            };
            // np.argmax: the first of the largest.
            let mut best = candidates[0];
            let mut best_pos = position(best);
            for &c in &candidates[1..] {
                let p = position(c);
                if p > best_pos {
                    best = c;
                    best_pos = p;
                }
            }
            (best, ChoiceSource::Parsed)
        }
    }
}

/// A normalised open answer: a number (rounded to 2 places) or lower-cased text.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenPred {
    Number(f64),
    Text(String),
}

/// Numbers as JSON numbers; `inf`/`-inf`/`nan` (which JSON cannot hold) as Python prints
/// them. No text candidate can read so: those strings normalise to numbers.
impl serde::Serialize for OpenPred {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OpenPred::Number(v) if v.is_finite() => s.serialize_f64(*v),
            OpenPred::Number(v) if v.is_nan() => s.serialize_str("nan"),
            OpenPred::Number(v) => s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" }),
            OpenPred::Text(t) => s.serialize_str(t),
        }
    }
}

/// MMMU's `normalize_str`.
pub fn normalize(s: &str) -> Vec<OpenPred> {
    let s = py_strip(s);
    if let Some(v) = py_float(&s.replace(',', "")) {
        return vec![OpenPred::Number(py_round(v, 2))];
    }
    let lower = py_lower(s);
    if lower.chars().count() == 1 {
        return vec![
            OpenPred::Text(format!(" {lower}")),
            OpenPred::Text(format!("{lower} ")),
        ];
    }
    vec![OpenPred::Text(lower)]
}

/// MMMU's `extract_numbers`: comma-grouped, scientific, then simple numbers.
pub fn extract_numbers(s: &str) -> Vec<String> {
    static PATTERNS: LazyLock<[Regex; 3]> = LazyLock::new(|| {
        [
            Regex::new(r"-?\b\d{1,3}(?:,\d{3})+\b").expect("regex"),
            Regex::new(r"-?\d+(?:\.\d+)?[eE][+-]?\d+").expect("regex"),
            Regex::new(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])").expect("regex"),
        ]
    });
    PATTERNS
        .iter()
        .flat_map(|re| {
            re.find_iter(s)
                .filter_map(Result::ok)
                .map(|m| m.as_str().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// MMMU's `parse_open_response`: candidate answers, normalised, without duplicates.
pub fn parse_open(response: &str) -> Vec<OpenPred> {
    let keys = key_subresponses(response);
    let mut preds: Vec<String> = keys.clone();
    for k in &keys {
        preds.extend(extract_numbers(k));
    }
    let mut out: Vec<OpenPred> = Vec::new();
    for p in &preds {
        for n in normalize(p) {
            let seen = out.iter().any(|o| match (o, &n) {
                // Python's set: nan is never equal to itself (distinct objects).
                (OpenPred::Number(a), OpenPred::Number(b)) => a == b,
                (a, b) => a == b,
            });
            if !seen {
                out.push(n);
            }
        }
    }
    out
}

fn key_subresponses(response: &str) -> Vec<String> {
    let r = py_lower(py_strip(response).trim_matches('.'));
    // The official split is r"\.\s(?=[A-Z])|\n" on the lower-cased text, where [A-Z] can
    // no longer match: it splits on newlines only.
    let subs: Vec<&str> = r.split('\n').collect();
    let mut indicators = vec![
        "could be ",
        "so ",
        "is ",
        "thus ",
        "therefore ",
        "final ",
        "answer ",
        "result ",
    ];
    let mut keys = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        if i == subs.len() - 1 {
            indicators.push("=");
        }
        let mut shortest: Option<String> = None;
        for ind in &indicators {
            if let Some(pos) = sub.rfind(ind) {
                let tail = py_strip(&sub[pos + ind.len()..]).to_string();
                // An empty candidate is falsy in Python: the next one replaces it.
                match &shortest {
                    Some(s) if !s.is_empty() && tail.chars().count() >= s.chars().count() => {}
                    _ => shortest = Some(tail),
                }
            }
        }
        if let Some(s) = shortest {
            if !s.is_empty() && ![":", ",", ".", "!", "?", ";", "'"].contains(&py_strip(&s)) {
                keys.push(s);
            }
        }
    }
    if keys.is_empty() {
        return vec![r];
    }
    keys
}

/// MMMU's `eval_open` for a string gold answer.
pub fn open_correct(gold: &str, preds: &[OpenPred]) -> bool {
    let golds = normalize(gold);
    preds.iter().any(|p| match p {
        OpenPred::Text(t) => golds
            .iter()
            .any(|g| matches!(g, OpenPred::Text(gt) if t.contains(gt.as_str()))),
        OpenPred::Number(v) => golds
            .iter()
            .any(|g| matches!(g, OpenPred::Number(gv) if gv == v)),
    })
}

/// `validation_Art_Theory_12` -> `Art_Theory`.
pub fn subject_of(id: &str) -> Option<&str> {
    let first = id.split('_').next()?;
    let rest = id.strip_prefix(first)?.strip_prefix('_')?;
    let (subject, number) = rest.rsplit_once('_')?;
    (!subject.is_empty() && !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
        .then_some(subject)
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Accuracy {
    pub num: usize,
    pub acc: f64,
}

/// Per subject, per domain (`Overall-<domain>`) and `Overall`, as lmms-eval prints them.
pub fn aggregate(samples: &[(String, bool)]) -> BTreeMap<String, Accuracy> {
    // Subjects in first-seen order, as lmms-eval's dict keeps them: `Overall` sums them in
    // that order, and float sums depend on it.
    let mut subjects: Vec<(&str, (usize, usize))> = Vec::new();
    for (subject, correct) in samples {
        let i = match subjects.iter().position(|(s, _)| *s == subject.as_str()) {
            Some(i) => i,
            None => {
                subjects.push((subject.as_str(), (0, 0)));
                subjects.len() - 1
            }
        };
        subjects[i].1 .0 += 1;
        subjects[i].1 .1 += usize::from(*correct);
    }
    let lookup = |s: &str| subjects.iter().find(|(n, _)| *n == s).map(|(_, v)| *v);
    let acc_of = |(n, right): (usize, usize)| right as f64 / n as f64;
    // calculate_ins_level_acc: sum(acc * num) / sum(num), in the order given.
    let micro = |names: &mut dyn Iterator<Item = (usize, usize)>| {
        let (mut acc, mut num) = (0.0f64, 0usize);
        for s in names {
            acc += acc_of(s) * s.0 as f64;
            num += s.0;
        }
        (num, if num == 0 { 0.0 } else { acc / num as f64 })
    };
    let mut out = BTreeMap::new();
    for (domain, subs) in DOMAINS {
        let present: Vec<(&str, (usize, usize))> = subs
            .iter()
            .filter_map(|s| lookup(s).map(|v| (*s, v)))
            .collect();
        let (num, acc) = micro(&mut present.iter().map(|p| p.1));
        out.insert(
            format!("Overall-{domain}"),
            Accuracy {
                num,
                acc: py_round(acc, 5),
            },
        );
        for (s, v) in present {
            out.insert(
                s.to_string(),
                Accuracy {
                    num: v.0,
                    acc: py_round(acc_of(v), 5),
                },
            );
        }
    }
    let (num, acc) = micro(&mut subjects.iter().map(|(_, v)| *v));
    out.insert(
        "Overall".into(),
        Accuracy {
            num,
            acc: py_round(acc, 5),
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn multiple_choice_parser_cases() {
        let o = opts(&["red apple", "green pear", "blue berry", "yellow banana"]);
        let mut rng = PythonRandom::seed(0);
        let mut p = |r: &str| parse_multi_choice(r, &o, &mut rng);
        assert_eq!(p("B"), ('B', ChoiceSource::Parsed));
        assert_eq!(p("(C)"), ('C', ChoiceSource::Parsed));
        assert_eq!(p("The answer is D."), ('D', ChoiceSource::Parsed));
        // Several bracketed candidates: the last one written wins.
        assert_eq!(p("(A) is wrong, (B) is right"), ('B', ChoiceSource::Parsed));
        assert_eq!(p("(B) ... (A)"), ('A', ChoiceSource::Parsed));
        // Option text counts only in responses of more than five words.
        assert_eq!(
            p("I would say it is a green pear here"),
            ('B', ChoiceSource::Parsed)
        );
        let (_, src) = p("green pear");
        assert_eq!(src, ChoiceSource::RandomFallback);
        // "A." with trailing punctuation stripped first.
        assert_eq!(p("A."), ('A', ChoiceSource::Parsed));
    }

    #[test]
    fn random_fallbacks_follow_pythons_stream() {
        // python: random.seed(0); [random.choice('ABCD') for _ in range(4)] -> D D A C
        let o = opts(&["1", "2", "3", "4"]);
        let mut rng = PythonRandom::seed(0);
        let got: Vec<char> = (0..4)
            .map(|_| parse_multi_choice("no idea", &o, &mut rng).0)
            .collect();
        assert_eq!(got, vec!['D', 'D', 'A', 'C']);
    }

    #[test]
    fn numbers_and_normalisation() {
        // The three official patterns overlap; Python's re gives exactly this list.
        assert_eq!(
            extract_numbers("1,234 and 5.5e3 and -7 and .5"),
            vec!["1,234", "5.5e3", "234", "5", "3", "-7", ".5"]
        );
        assert_eq!(normalize(" 1,000 "), vec![OpenPred::Number(1000.0)]);
        assert_eq!(normalize("2.675"), vec![OpenPred::Number(2.67)]);
        assert_eq!(normalize("0.125"), vec![OpenPred::Number(0.12)]);
        assert_eq!(normalize("inf"), vec![OpenPred::Number(f64::INFINITY)]);
        assert!(matches!(normalize("NaN")[0], OpenPred::Number(v) if v.is_nan()));
        assert_eq!(normalize("1_000"), vec![OpenPred::Number(1000.0)]);
        assert_eq!(
            normalize("X"),
            vec![OpenPred::Text(" x".into()), OpenPred::Text("x ".into())]
        );
        assert_eq!(normalize("Paris"), vec![OpenPred::Text("paris".into())]);
    }

    #[test]
    fn open_answers() {
        let preds = parse_open("The final answer is 3.14.");
        assert!(open_correct("3.14", &preds), "{preds:?}");
        assert!(!open_correct("3.15", &preds));
        let preds = parse_open("Therefore, the city is Paris");
        assert!(open_correct("paris", &preds), "{preds:?}");
        // nan never equals nan.
        assert!(!open_correct("nan", &parse_open("nan")));
        assert!(open_correct("inf", &parse_open("inf")));
    }

    #[test]
    fn subjects_domains_and_rounding() {
        assert_eq!(subject_of("validation_Art_Theory_12"), Some("Art_Theory"));
        assert_eq!(subject_of("validation_Math_3"), Some("Math"));
        assert_eq!(subject_of("nonsense"), None);
        let s = |n: &str, c| (n.to_string(), c);
        let r = aggregate(&[
            s("Art", true),
            s("Art", false),
            s("Art", false),
            s("Math", true),
        ]);
        assert_eq!(
            r["Art"],
            Accuracy {
                num: 3,
                acc: 0.33333
            }
        );
        assert_eq!(
            r["Overall-Art and Design"],
            Accuracy {
                num: 3,
                acc: 0.33333
            }
        );
        assert_eq!(r["Overall-Science"], Accuracy { num: 1, acc: 1.0 });
        assert_eq!(r["Overall-Business"], Accuracy { num: 0, acc: 0.0 });
        assert_eq!(r["Overall"], Accuracy { num: 4, acc: 0.5 });
    }

    #[test]
    fn prompts_and_images() {
        let p = prompt(
            "Look at <image 2> and <image 1>, then <image 2>.",
            Some(&opts(&["x", "y"])),
            "Answer with the option's letter from the given choices directly.",
            "",
        );
        assert_eq!(
            p,
            "Look at <image 2> and <image 1>, then <image 2>.\nA. x\nB. y\n\nAnswer with the option's letter from the given choices directly."
        );
        assert_eq!(image_columns(&p), vec!["image_1", "image_2"]);
    }
}
