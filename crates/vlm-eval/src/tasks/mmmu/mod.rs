//! lmms-eval's `mmmu_val`: multiple-choice and open questions over up to seven images,
//! micro accuracy per subject, per domain and overall.

mod judged;
mod rules;

use serde_json::{json, Map, Value};

pub use rules::*;

use super::task::{row_error, Metric, SampleScore, Task, TaskError, TaskScores};
use crate::dataset::{DatasetSpec, Row};
use crate::prompt::{Prompt, PromptPart};
use crate::python::{parse_string_list, py_float_repr, py_strip, PythonRandom};

pub const MC_PROMPT: &str = "Answer with the option's letter from the given choices directly.";
pub const OPEN_PROMPT: &str = "Answer the question using a single word or phrase.";
const METRIC: &str = "mmmu_acc";

pub struct MmmuVal;

fn is_multiple_choice(doc: &Row) -> Result<bool, TaskError> {
    Ok(doc.str("question_type")? == "multiple-choice")
}

fn options(doc: &Row) -> Result<Vec<String>, TaskError> {
    parse_string_list(doc.str("options")?).map_err(|e| {
        row_error(
            doc,
            format!("column `options` is not a list of strings: {e}"),
        )
    })
}

/// lmms-eval's `mmmu_doc_to_messages`: `<image 1>`..`<image 7>` become one placeholder, the
/// text is split there, and segment `i` is followed by the `i`-th image of the sorted,
/// de-duplicated list (paired by position, not by number; empty segments are skipped, the
/// last segment is always kept).
pub fn interleave(input: &str, images: Vec<(String, std::sync::Arc<[u8]>)>) -> Vec<PromptPart> {
    let mut text = input.to_string();
    for k in 1..=7 {
        text = text.replace(&format!("<image {k}>"), "<image>");
    }
    let segments: Vec<&str> = text.split("<image>").collect();
    let mut parts = Vec::new();
    for (i, (column, bytes)) in images.into_iter().enumerate() {
        if i + 1 < segments.len() {
            let t = py_strip(segments[i]);
            if !t.is_empty() {
                parts.push(PromptPart::Text(t.to_string()));
            }
        }
        parts.push(PromptPart::Image { column, bytes });
    }
    if let Some(last) = segments.last() {
        parts.push(PromptPart::Text(py_strip(last).to_string()));
    }
    parts
}

/// How lmms-eval 0.3.5 to 0.7.2 score an open answer (checked in the PyPI releases 0.3.5,
/// 0.4.0 and 0.7.2; 0.3.0 and 0.7.3 keep the candidate list, as `mmmu_acc` does):
/// `mmmu_process_results` keeps only `str(candidates[0])`, and `eval_open` then iterates
/// that string's characters, so only a gold answer that normalises to text contained in one
/// character can match. The results.json key keeps its `0_4` name.
fn open_correct_lmms_eval_0_4(gold: &str, preds: &[OpenPred]) -> bool {
    let Some(first) = preds.first() else {
        return false;
    };
    let shown = match first {
        OpenPred::Number(v) => py_float_repr(*v),
        OpenPred::Text(t) => t.clone(),
    };
    let golds = normalize(gold);
    shown.chars().any(|c| {
        golds
            .iter()
            .any(|g| matches!(g, OpenPred::Text(t) if c.to_string().contains(t.as_str())))
    })
}

/// The accuracy lines for stdout: each domain, then its subjects, overall last (lmms-eval's
/// order), and the counters a reader needs to trust the number.
fn summary(
    breakdown: &std::collections::BTreeMap<String, Accuracy>,
    fallbacks: usize,
    open_questions: usize,
    compat_overall: f64,
) -> String {
    let mut out = String::from("mmmu_val accuracy (num, acc):\n");
    let mut names = Vec::new();
    for (domain, subjects) in DOMAINS {
        names.push(format!("Overall-{domain}"));
        names.extend(subjects.iter().map(|s| format!("  {s}")));
    }
    names.push("Overall".into());
    for name in names {
        match breakdown.get(name.trim_start()) {
            Some(a) if a.num > 0 => {
                out += &format!("  {name:<40} {:>5} {:>8.5}\n", a.num, a.acc);
            }
            _ => {}
        }
    }
    out += &format!("  random fallbacks (no option letter found): {fallbacks}\n");
    if open_questions > 0 {
        out += &format!(
            "  mmmu_acc as lmms-eval 0.3.5-0.7.2 compute it (open questions scored by single \
             characters; 0.7.3 equals mmmu_acc): {compat_overall:.5}\n"
        );
    }
    out
}

impl Task for MmmuVal {
    fn name(&self) -> &str {
        "mmmu_val"
    }

    /// lmms-eval 0.7.3 reads the same data from `lmms-lab-encoder/MMMU`.
    fn dataset(&self) -> DatasetSpec {
        DatasetSpec {
            aliases: vec!["lmms-lab-encoder/MMMU".into()],
            ..DatasetSpec::new("lmms-lab/MMMU", "validation")
        }
    }

    fn max_new_tokens(&self) -> usize {
        128
    }

    fn metric_names(&self) -> Vec<&str> {
        vec![METRIC]
    }

    fn version(&self) -> Value {
        json!(0.0)
    }

    fn config(&self) -> Value {
        let dataset = self.dataset();
        json!({
            "task": "mmmu_val",
            "dataset_path": dataset.repo,
            "test_split": dataset.split,
            "output_type": "generate_until",
            "doc_to_target": "answer",
            "generation_kwargs": {"max_new_tokens": 128},
            "lmms_eval_specific_kwargs": {"prompt_type": "format",
                                          "multiple_choice_prompt": MC_PROMPT,
                                          "open_ended_prompt": OPEN_PROMPT},
            "metric_list": [{"metric": METRIC, "aggregation": "mmmu_aggregate_results",
                             "higher_is_better": true}],
            "metadata": {"version": 0.0, "interleaved_format": false},
        })
    }

    fn prompt(&self, doc: &Row) -> Result<Prompt, TaskError> {
        let opts = if is_multiple_choice(doc)? {
            Some(options(doc)?)
        } else {
            None
        };
        let input = prompt(
            doc.str("question")?,
            opts.as_deref(),
            MC_PROMPT,
            OPEN_PROMPT,
        );
        let mut images = Vec::new();
        for column in image_columns(&input) {
            let bytes = doc
                .image(&column)?
                .ok_or_else(|| row_error(doc, format!("the text refers to empty `{column}`")))?;
            images.push((column, bytes));
        }
        Ok(Prompt {
            parts: interleave(&input, images),
            input,
        })
    }

    /// Open questions go to the judge too when one is given: a second figure beside
    /// `mmmu_acc`, in the details, never in its place.
    fn judge_prompt(&self, doc: &Row, response: &str) -> Result<Option<String>, TaskError> {
        if is_multiple_choice(doc)? {
            return Ok(None);
        }
        Ok(Some(judged::binary_judge_prompt(
            doc.str("question")?,
            doc.str("answer")?,
            response,
        )))
    }

    fn judge_optional(&self) -> bool {
        true
    }

    fn judge_prompt_version(&self) -> Option<String> {
        Some(judged::prompt_version())
    }

    fn score_judged(
        &self,
        docs: &[&Row],
        responses: &[&str],
        judged: &[Option<String>],
    ) -> Result<TaskScores, TaskError> {
        let mut scores = self.score(docs, responses)?;
        if judged.iter().all(Option::is_none) {
            return Ok(scores);
        }
        let (mut open, mut open_right, mut right) = (0usize, 0usize, 0usize);
        for (sample, reply) in scores.samples.iter().zip(judged) {
            match reply {
                Some(reply) => {
                    open += 1;
                    if judged::judged_correct(reply) {
                        open_right += 1;
                        right += 1;
                    }
                }
                None => right += usize::from(sample.score == 1.0),
            }
        }
        let acc = if docs.is_empty() {
            0.0
        } else {
            right as f64 / docs.len() as f64
        };
        scores.details["judged_open"] = json!({
            "open_questions": open,
            "judged_correct": open_right,
            "mmmu_acc_with_judged_open": acc,
        });
        scores.summary += &format!(
            "  with open questions judged by the judge model: {acc:.5} ({open_right} of {open} \
             open questions judged correct; mmmu_acc above is the exact rule)\n"
        );
        Ok(scores)
    }

    fn score(&self, docs: &[&Row], responses: &[&str]) -> Result<TaskScores, TaskError> {
        // lmms-eval seeds Python's `random` with 0 once per run; every multiple-choice
        // response without a candidate draws from that one stream, in document order.
        let mut rng = PythonRandom::seed(0);
        let mut samples = Vec::with_capacity(docs.len());
        let mut by_subject = Vec::with_capacity(docs.len());
        let mut compat = Vec::with_capacity(docs.len());
        let (mut fallbacks, mut open_questions) = (0usize, 0usize);
        for (doc, response) in docs.iter().zip(responses) {
            let id = doc.str("id")?;
            let answer = doc.str("answer")?;
            let question_type = doc.str("question_type")?;
            let subject = subject_of(id)
                .ok_or_else(|| row_error(doc, format!("id `{id}` names no subject")))?
                .to_string();
            let mut fields = Map::new();
            let (parsed, correct, correct_compat) = if is_multiple_choice(doc)? {
                // A row whose options cannot be read was recorded as a failed prompt; it
                // scores as wrong instead of stopping the whole task.
                let opts = options(doc).unwrap_or_default();
                if opts.is_empty() {
                    (Value::Null, false, false)
                } else {
                    let (letter, source) = parse_multi_choice(response, &opts, &mut rng);
                    if source == ChoiceSource::RandomFallback {
                        fallbacks += 1;
                        fields.insert("random_fallback".into(), json!(true));
                    }
                    let ok = letter.to_string() == answer;
                    (json!(letter.to_string()), ok, ok)
                }
            } else {
                open_questions += 1;
                let preds = parse_open(response);
                let ok = open_correct(answer, &preds);
                let ok_compat = open_correct_lmms_eval_0_4(answer, &preds);
                (json!(preds), ok, ok_compat)
            };
            fields.insert(
                METRIC.into(),
                json!({"id": id, "subdomain": subject, "question_type": question_type,
                       "answer": answer, "parsed_pred": [parsed.clone()]}),
            );
            by_subject.push((subject.clone(), correct));
            compat.push((subject, correct_compat));
            samples.push(SampleScore {
                id: id.to_string(),
                target: answer.to_string(),
                parsed,
                score: if correct { 1.0 } else { 0.0 },
                fields,
            });
        }
        let breakdown = aggregate(&by_subject);
        let overall = breakdown.get("Overall").map_or(0.0, |a| a.acc);
        let compat_overall = aggregate(&compat).get("Overall").map_or(0.0, |a| a.acc);
        Ok(TaskScores {
            samples,
            metrics: vec![Metric::unfiltered(METRIC, overall, None)],
            summary: summary(&breakdown, fallbacks, open_questions, compat_overall),
            details: json!({
                "breakdown": breakdown,
                "random_fallbacks": fallbacks,
                "open_questions": open_questions,
                "mmmu_acc_lmms_eval_0_4_open_scoring": compat_overall,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn img(n: u8) -> Arc<[u8]> {
        Arc::from(vec![n])
    }

    fn shape(parts: &[PromptPart]) -> Vec<String> {
        parts
            .iter()
            .map(|p| match p {
                PromptPart::Text(t) => format!("T:{t}"),
                PromptPart::Image { column, .. } => format!("I:{column}"),
            })
            .collect()
    }

    #[test]
    fn images_interleave_by_position_like_lmms_eval() {
        // Expected shapes from lmms-eval's mmmu_doc_to_messages in python3.
        let parts = interleave(
            "<image 2> shows the output of <image 1>. What?\nA. 3\n\nAnswer.",
            vec![("image_1".into(), img(1)), ("image_2".into(), img(2))],
        );
        assert_eq!(
            shape(&parts),
            [
                "I:image_1",
                "T:shows the output of",
                "I:image_2",
                "T:. What?\nA. 3\n\nAnswer."
            ]
        );
        let parts = interleave(
            "Which?\nA. <image 1>\nB. <image 2>\n\nP",
            vec![("image_1".into(), img(1)), ("image_2".into(), img(2))],
        );
        assert_eq!(
            shape(&parts),
            ["T:Which?\nA.", "I:image_1", "T:B.", "I:image_2", "T:P"]
        );
        // The same image twice: the middle text is dropped; a trailing tag leaves "" last.
        let parts = interleave("a <image 1> b <image 1>", vec![("image_1".into(), img(1))]);
        assert_eq!(shape(&parts), ["T:a", "I:image_1", "T:"]);
    }

    #[test]
    fn lmms_eval_0_4_open_scoring_only_matches_through_single_characters() {
        assert!(!open_correct_lmms_eval_0_4("12", &parse_open("12")));
        assert!(!open_correct_lmms_eval_0_4("paris", &parse_open("Paris")));
        assert!(open_correct("12", &parse_open("12")));
    }
}
