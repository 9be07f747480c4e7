//! TextVQA's VQA accuracy: EvalAI's answer normalisation (`EvalAIAnswerProcessor`, from
//! MMF: lowercase, punctuation, periods, number words, articles, contractions), then each
//! of the ten human answers left out in turn, `min(1, matches among the other nine / 3)`,
//! averaged by `statistics.mean`.

use std::sync::LazyLock;

use fancy_regex::Regex;

use crate::python::{py_lower, py_split_whitespace, py_statistics_mean, py_strip};

/// Punctuation removed (next to a space, or anywhere once a comma sits between digits)
/// or turned into a space.
const PUNCTUATIONS: [char; 21] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',',
    '?', '!',
];
const NUMBERS: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];
const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// A period not followed by a digit. (The original pattern's `(?!<=\d)` is a lookahead
/// for the text `<=`, which a period never is.)
static PERIOD_STRIP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\.(?!\d)").expect("valid"));
/// Commas between digits (`1,000`).
static COMMA_STRIP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?<=\d)(,)+(?=\d)").expect("valid"));

/// The original passes `re.UNICODE` (32) where `re.sub` takes its `count`: only the first
/// 32 periods are removed.
const PERIOD_STRIP_COUNT: usize = 32;

/// EvalAI's normalised form of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalAiAnswer(pub String);

impl EvalAiAnswer {
    pub fn new(answer: &str) -> Self {
        let item = word_tokenize(answer);
        let item = py_strip(&item.replace(['\n', '\t'], " ")).to_string();
        let item = process_punctuation(&item);
        Self(process_digit_article(&item))
    }
}

fn word_tokenize(word: &str) -> String {
    let word = py_lower(word).replace([',', '?'], "").replace("'s", " 's");
    py_strip(&word).to_string()
}

fn process_punctuation(text: &str) -> String {
    let digits_comma = COMMA_STRIP.is_match(text).unwrap_or(false);
    let mut out = text.to_string();
    for p in PUNCTUATIONS {
        let spaced = text.contains(&format!("{p} ")) || text.contains(&format!(" {p}"));
        out = out.replace(p, if spaced || digits_comma { "" } else { " " });
    }
    let mut result = String::with_capacity(out.len());
    let mut last = 0;
    for m in PERIOD_STRIP
        .find_iter(&out)
        .take(PERIOD_STRIP_COUNT)
        .flatten()
    {
        result.push_str(&out[last..m.start()]);
        last = m.end();
    }
    result.push_str(&out[last..]);
    result
}

fn process_digit_article(text: &str) -> String {
    let lowered = py_lower(text);
    py_split_whitespace(&lowered)
        .map(|w| NUMBERS.iter().find(|(k, _)| *k == w).map_or(w, |(_, v)| v))
        .filter(|w| !ARTICLES.contains(w))
        .map(|w| {
            CONTRACTIONS
                .binary_search_by(|(k, _)| (*k).cmp(w))
                .map_or(w, |i| CONTRACTIONS[i].1)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The normalised response and its VQA accuracy against the human `answers`; `None`
/// without answers (lmms-eval's `statistics.mean` of nothing fails).
pub fn vqa_accuracy(response: &str, answers: &[&str]) -> Option<(String, f64)> {
    let ours = EvalAiAnswer::new(response);
    let gts: Vec<EvalAiAnswer> = answers.iter().map(|a| EvalAiAnswer::new(a)).collect();
    let per_left_out: Vec<f64> = (0..gts.len())
        .map(|i| {
            let matches = gts
                .iter()
                .enumerate()
                .filter(|&(j, gt)| j != i && *gt == ours)
                .count();
            (matches as f64 / 3.0).min(1.0)
        })
        .collect();
    let accuracy = py_statistics_mean(&per_left_out)?;
    Some((ours.0, accuracy))
}

/// EvalAI's contraction table, sorted: the word as typed, its standard spelling.
const CONTRACTIONS: [(&str, &str); 120] = [
    ("'ow'sat", "'ow's'at"),
    ("'ows'at", "'ow's'at"),
    ("I'dve", "I'd've"),
    ("Id've", "I'd've"),
    ("Im", "I'm"),
    ("Ive", "I've"),
    ("aint", "ain't"),
    ("arent", "aren't"),
    ("cant", "can't"),
    ("couldn'tve", "couldn't've"),
    ("couldnt", "couldn't"),
    ("couldnt've", "couldn't've"),
    ("couldve", "could've"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("hadn'tve", "hadn't've"),
    ("hadnt", "hadn't"),
    ("hadnt've", "hadn't've"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("he'dve", "he'd've"),
    ("hed", "he'd"),
    ("hed've", "he'd've"),
    ("hes", "he's"),
    ("howd", "how'd"),
    ("howll", "how'll"),
    ("hows", "how's"),
    ("isnt", "isn't"),
    ("it'dve", "it'd've"),
    ("itd", "it'd"),
    ("itd've", "it'd've"),
    ("itll", "it'll"),
    ("let's", "let's"),
    ("maam", "ma'am"),
    ("mightn'tve", "mightn't've"),
    ("mightnt", "mightn't"),
    ("mightnt've", "mightn't've"),
    ("mightve", "might've"),
    ("mustnt", "mustn't"),
    ("mustve", "must've"),
    ("neednt", "needn't"),
    ("notve", "not've"),
    ("oclock", "o'clock"),
    ("oughtnt", "oughtn't"),
    ("ow's'at", "'ow's'at"),
    ("shant", "shan't"),
    ("she'dve", "she'd've"),
    ("she's", "she's"),
    ("shed've", "she'd've"),
    ("shouldn'tve", "shouldn't've"),
    ("shouldnt", "shouldn't"),
    ("shouldnt've", "shouldn't've"),
    ("shouldve", "should've"),
    ("somebody'd", "somebodyd"),
    ("somebody'dve", "somebody'd've"),
    ("somebodyd've", "somebody'd've"),
    ("somebodyll", "somebody'll"),
    ("somebodys", "somebody's"),
    ("someone'dve", "someone'd've"),
    ("someoned", "someone'd"),
    ("someoned've", "someone'd've"),
    ("someonell", "someone'll"),
    ("someones", "someone's"),
    ("something'dve", "something'd've"),
    ("somethingd", "something'd"),
    ("somethingd've", "something'd've"),
    ("somethingll", "something'll"),
    ("thats", "that's"),
    ("there'dve", "there'd've"),
    ("thered", "there'd"),
    ("thered've", "there'd've"),
    ("therere", "there're"),
    ("theres", "there's"),
    ("they'dve", "they'd've"),
    ("theyd", "they'd"),
    ("theyd've", "they'd've"),
    ("theyll", "they'll"),
    ("theyre", "they're"),
    ("theyve", "they've"),
    ("twas", "'twas"),
    ("wasnt", "wasn't"),
    ("we'dve", "we'd've"),
    ("wed've", "we'd've"),
    ("werent", "weren't"),
    ("weve", "we've"),
    ("whatll", "what'll"),
    ("whatre", "what're"),
    ("whats", "what's"),
    ("whatve", "what've"),
    ("whens", "when's"),
    ("whered", "where'd"),
    ("wheres", "where's"),
    ("whereve", "where've"),
    ("who'dve", "who'd've"),
    ("whod", "who'd"),
    ("whod've", "who'd've"),
    ("wholl", "who'll"),
    ("whos", "who's"),
    ("whove", "who've"),
    ("whyll", "why'll"),
    ("whyre", "why're"),
    ("whys", "why's"),
    ("wont", "won't"),
    ("wouldn'tve", "wouldn't've"),
    ("wouldnt", "wouldn't"),
    ("wouldnt've", "wouldn't've"),
    ("wouldve", "would've"),
    ("y'all'dve", "y'all'd've"),
    ("y'alld've", "y'all'd've"),
    ("y'allll", "y'all'll"),
    ("yall", "y'all"),
    ("yall'd've", "y'all'd've"),
    ("yall'll", "y'all'll"),
    ("you'dve", "you'd've"),
    ("youd", "you'd"),
    ("youd've", "you'd've"),
    ("youll", "you'll"),
    ("youre", "you're"),
    ("youve", "you've"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        EvalAiAnswer::new(s).0
    }

    #[test]
    fn normalisation_follows_evalai() {
        // Values printed by lmms-eval 0.7.3's EvalAIAnswerProcessor.
        assert_eq!(norm("Two"), "2");
        assert_eq!(norm("the stop"), "stop");
        assert_eq!(norm("Coca-Cola"), "coca cola");
        assert_eq!(norm("coca - cola"), "coca cola");
        assert_eq!(norm("dont"), "don't");
        assert_eq!(norm("3.5"), "3.5");
        assert_eq!(norm("1,000"), "1000");
        assert_eq!(norm("hello!"), "hello");
        assert_eq!(norm("stop."), "stop");
        assert_eq!(norm("It's a dog's toy"), "it 's dog 's toy");
        assert_eq!(norm(&".".repeat(40)), ".".repeat(8));
        assert!(CONTRACTIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn accuracy_leaves_each_answer_out() {
        let answers = ["two", "2", "2", "two", "three", "2", "2", "2", "2", "2"];
        assert_eq!(vqa_accuracy("2", &answers).unwrap().1, 1.0);
        let (parsed, acc) = vqa_accuracy("Three", &answers).unwrap();
        assert_eq!(parsed, "3");
        assert_eq!(acc, 0.3);
        assert_eq!(vqa_accuracy("x", &[]), None);
    }
}
