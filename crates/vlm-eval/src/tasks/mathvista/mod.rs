//! lmms-eval's MathVista testmini tasks (`mathvista_testmini_format`, `_cot`, `_solution`):
//! the query per shot type, answers read by rules and, where they fail, by a judge model
//! (lmms-eval's GPT extraction), normalised per answer type and compared as text;
//! accuracy in percent (two decimals; lmms-eval reports `None` for 0) overall and per
//! question type, answer type, language, source, category, task, context, grade and skill.

mod rules;

use serde_json::{json, Map, Value};

pub use rules::{
    extract_by_rules, judge_prompt, normalize, query, safe_equal, Problem, ShotType, DEMO_PROMPT,
};

use super::task::{row_error, Metric, SampleScore, Task, TaskError, TaskScores};
use crate::dataset::{Cell, DatasetSpec, Row};
use crate::prompt::{Prompt, PromptPart};
use crate::python::{py_round, py_strip};

const METRIC: &str = "llm_as_judge_eval";
/// The per-key breakdown lmms-eval computes, in its order.
const KEYS: [&str; 9] = [
    "question_type",
    "answer_type",
    "language",
    "source",
    "category",
    "task",
    "context",
    "grade",
    "skills",
];

pub struct MathVista {
    pub shot: ShotType,
}

impl MathVista {
    fn problem<'a>(&self, doc: &'a Row) -> Result<Problem<'a>, TaskError> {
        let optional_str = |column: &str| -> Result<Option<&'a str>, TaskError> {
            match doc.get(column) {
                None | Some(Cell::Null) => Ok(None),
                Some(_) => Ok(Some(doc.str(column)?)),
            }
        };
        let choices = match doc.get("choices") {
            None | Some(Cell::Null) => None,
            Some(_) => Some(doc.str_list("choices")?),
        };
        let precision = match doc.get("precision") {
            Some(Cell::Float(f)) => Some(*f),
            Some(Cell::Int(i)) => Some(*i as f64),
            _ => None,
        };
        Ok(Problem {
            question: doc.str("question")?,
            unit: optional_str("unit")?,
            choices,
            precision,
            question_type: doc.str("question_type")?,
            answer_type: doc.str("answer_type")?,
        })
    }

    fn query_of(&self, doc: &Row) -> Result<String, TaskError> {
        let p = self.problem(doc)?;
        query(self.shot, &p).ok_or_else(|| {
            row_error(
                doc,
                format!(
                    "lmms-eval has no hint for question_type {} / answer_type {} / precision {:?}",
                    p.question_type, p.answer_type, p.precision
                ),
            )
        })
    }
}

/// The row's metadata field as text (`None` where absent).
fn meta_field(doc: &Row, key: &str) -> Option<Cell> {
    match doc.get("metadata") {
        Some(Cell::Struct(fields)) => fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| c.clone()),
        _ => None,
    }
}

/// A breakdown key's value(s) for a row: top-level type columns, else metadata; skills
/// are a list.
fn key_values(doc: &Row, key: &str) -> Vec<String> {
    let cell = match key {
        "question_type" | "answer_type" => doc.get(key).cloned(),
        _ => meta_field(doc, key),
    };
    match cell {
        Some(Cell::Str(s)) => vec![s],
        Some(Cell::List(items)) => items
            .into_iter()
            .filter_map(|c| match c {
                Cell::Str(s) => Some(s),
                _ => None,
            })
            .collect(),
        Some(Cell::Int(i)) => vec![i.to_string()],
        _ => Vec::new(),
    }
}

impl Task for MathVista {
    fn name(&self) -> &str {
        match self.shot {
            ShotType::FormatPrompt => "mathvista_testmini_format",
            ShotType::StepByStep => "mathvista_testmini_cot",
            ShotType::Solution => "mathvista_testmini_solution",
        }
    }

    fn dataset(&self) -> DatasetSpec {
        DatasetSpec::new("AI4Math/MathVista", "testmini")
    }

    fn max_new_tokens(&self) -> usize {
        16384
    }

    fn metric_names(&self) -> Vec<&str> {
        vec![METRIC]
    }

    fn version(&self) -> Value {
        json!("Yaml")
    }

    fn config(&self) -> Value {
        let dataset = self.dataset();
        let shot = match self.shot {
            ShotType::FormatPrompt => "format-prompt",
            ShotType::StepByStep => "step-by-step",
            ShotType::Solution => "solution",
        };
        json!({
            "task": self.name(),
            "dataset_path": dataset.repo,
            "test_split": dataset.split,
            "output_type": "generate_until",
            "doc_to_target": "answer",
            "generation_kwargs": {"max_new_tokens": 16384},
            "lmms_eval_specific_kwargs": {"shot_type": shot, "shot": 0, "use_caption": false,
                                          "use_ocr": false},
            "metric_list": [{"metric": METRIC, "aggregation": "mathvista_aggregate_results",
                             "higher_is_better": true}],
            "metadata": {"quick_extract": false},
        })
    }

    fn prompt(&self, doc: &Row) -> Result<Prompt, TaskError> {
        let input = self.query_of(doc)?;
        let image = doc
            .image("decoded_image")?
            .ok_or_else(|| row_error(doc, "column `decoded_image` is empty"))?;
        Ok(Prompt {
            parts: vec![
                PromptPart::Image {
                    column: "decoded_image".into(),
                    bytes: image,
                },
                PromptPart::Text(input.clone()),
            ],
            input,
        })
    }

    fn judge_prompt(&self, doc: &Row, response: &str) -> Result<Option<String>, TaskError> {
        let p = self.problem(doc)?;
        if extract_by_rules(response, &p).is_some() {
            return Ok(None);
        }
        // The judge sees the dataset's own query, as lmms-eval sends it.
        Ok(Some(judge_prompt(doc.str("query")?, response)))
    }

    fn judge_prompt_version(&self) -> Option<String> {
        Some(crate::judge::prompt_version(
            "lmms-eval-0.7.3-mathvista",
            DEMO_PROMPT,
        ))
    }

    fn score(&self, docs: &[&Row], responses: &[&str]) -> Result<TaskScores, TaskError> {
        self.score_judged(docs, responses, &vec![None; docs.len()])
    }

    fn score_judged(
        &self,
        docs: &[&Row],
        responses: &[&str],
        judged: &[Option<String>],
    ) -> Result<TaskScores, TaskError> {
        let mut samples = Vec::with_capacity(docs.len());
        let mut correct_flags = Vec::with_capacity(docs.len());
        for (i, (doc, response)) in docs.iter().zip(responses).enumerate() {
            let p = self.problem(doc)?;
            let extraction = match extract_by_rules(response, &p) {
                Some(e) => e,
                // lmms-eval strips the judge's reply; none at all reads as "".
                None => judged
                    .get(i)
                    .cloned()
                    .flatten()
                    .map(|r| py_strip(&r).to_string())
                    .ok_or_else(|| row_error(doc, "the judge was not asked about this answer"))?,
            };
            let prediction = normalize(&extraction, &p);
            let answer = doc.str("answer")?;
            let true_false = safe_equal(prediction.as_deref(), answer);
            correct_flags.push(true_false);
            let pid = doc.str("pid")?;
            let metadata = doc
                .get("metadata")
                .and_then(Cell::to_json)
                .unwrap_or(Value::Null);
            let item = json!({
                "question_id": pid,
                "query": doc.str("query")?,
                "choices": p.choices,
                "answer": answer,
                "extraction": extraction,
                "prediction": prediction,
                "true_false": true_false,
                "question_type": p.question_type,
                "answer_type": p.answer_type,
                "precision": doc.get("precision").and_then(Cell::to_json),
                "metadata": metadata,
            });
            let mut fields = Map::new();
            fields.insert(METRIC.into(), item);
            samples.push(SampleScore {
                id: pid.to_string(),
                target: answer.to_string(),
                parsed: json!(prediction),
                score: if true_false { 1.0 } else { 0.0 },
                fields,
            });
        }
        let total = docs.len();
        let correct = correct_flags.iter().filter(|&&c| c).count();
        let accuracy = if total == 0 {
            0.0
        } else {
            py_round(correct as f64 / total as f64 * 100.0, 2)
        };
        // lmms-eval returns None for an accuracy of 0 (null in results.json).
        let value = if accuracy == 0.0 { f64::NAN } else { accuracy };
        let mut breakdown = Vec::new();
        let mut summary = format!(
            "{} accuracy: {accuracy:.2} ({correct}/{total})\n",
            self.name()
        );
        for key in KEYS {
            let mut values: Vec<String> = Vec::new();
            for doc in docs {
                for v in key_values(doc, key) {
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
            }
            let mut rows: Vec<(String, Value, f64)> = Vec::new();
            for value in values {
                let members: Vec<usize> = (0..docs.len())
                    .filter(|&i| key_values(docs[i], key).contains(&value))
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let right = members.iter().filter(|&&i| correct_flags[i]).count();
                let acc = format!("{:.2}", right as f64 / members.len() as f64 * 100.0);
                let sort_key: f64 = acc.parse().unwrap_or(0.0);
                rows.push((
                    value,
                    json!({"accuracy": acc, "correct": right, "total": members.len()}),
                    sort_key,
                ));
            }
            // Python's sorted(..., reverse=True) is stable: ties keep their order.
            rows.sort_by(|a, b| b.2.total_cmp(&a.2));
            for (v, entry, _) in &rows {
                summary += &format!(
                    "  {key:<14} {v:<32} {}\n",
                    entry["accuracy"].as_str().unwrap_or("")
                );
            }
            breakdown.push(json!([
                key,
                rows.into_iter()
                    .map(|(v, e, _)| json!([v, e]))
                    .collect::<Vec<_>>()
            ]));
        }
        Ok(TaskScores {
            samples,
            metrics: vec![Metric::unfiltered(METRIC, value, None)],
            details: json!({
                "average": {"accuracy": accuracy, "correct": correct, "total": total},
                "breakdown": breakdown,
            }),
            summary,
        })
    }
}
