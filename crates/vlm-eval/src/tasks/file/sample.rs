//! Scoring one response of a task file: its scorer's rule (or the judge's verdict) and
//! the per-sample value lmms-eval stores under each metric.

use serde_json::{json, Value};

use super::aggregate::Item;
use super::spec::{ScorerSpec, Verdict};
use super::{FileTask, JUDGE, TARGET};
use crate::dataset::Row;
use crate::python::{py_lower, py_strip};
use crate::tasks::scorers::{
    anls, hf_exact_match, pope_prediction, relaxed_correctness, sqa_letter_correct, vqa_accuracy,
};
use crate::tasks::task::{row_error, TaskError};

/// What the scorer made of one response.
pub(super) struct Outcome {
    pub parsed: Value,
    pub item: Item,
}

impl FileTask {
    /// The judge's prompt for a response, or `None` where the scorer needs no judge (or a
    /// response equal to the target is let through by `skip_exact`).
    pub(super) fn judge_prompt_for(
        &self,
        doc: &Row,
        response: &str,
    ) -> Result<Option<String>, TaskError> {
        let ScorerSpec::Judge { skip_exact, .. } = &self.spec.scoring.scorer else {
            return Ok(None);
        };
        let target = self.render(TARGET, doc)?;
        if *skip_exact && exact(response, &target) {
            return Ok(None);
        }
        let mut vars = self.prompt_vars.clone();
        vars.insert("response".into(), response.into());
        vars.insert("target".into(), target.into());
        self.render_with(JUDGE, doc, &vars).map(Some)
    }

    pub(super) fn score_one(
        &self,
        doc: &Row,
        response: &str,
        target: &str,
        judged: Option<&str>,
    ) -> Result<Outcome, TaskError> {
        let plain = |score: bool| Item {
            score: if score { 1.0 } else { 0.0 },
            prediction: String::new(),
            ground_truth: String::new(),
        };
        Ok(match &self.spec.scoring.scorer {
            ScorerSpec::YesNo => {
                let truth = pope_prediction(target);
                if truth != "yes" && truth != "no" {
                    return Err(row_error(
                        doc,
                        format!("a yes/no target must be `yes` or `no`, not `{target}`"),
                    ));
                }
                let prediction = pope_prediction(response);
                Outcome {
                    parsed: json!(prediction),
                    item: Item {
                        score: if prediction == truth { 1.0 } else { 0.0 },
                        prediction,
                        ground_truth: truth,
                    },
                }
            }
            ScorerSpec::OptionLetter => Outcome {
                parsed: json!(response),
                item: plain(sqa_letter_correct(response, target)),
            },
            ScorerSpec::ExactMatch(options) => Outcome {
                parsed: json!(response),
                item: plain(hf_exact_match(response, target, *options)),
            },
            ScorerSpec::RelaxedAccuracy {
                max_relative_change,
            } => Outcome {
                parsed: json!(response),
                item: plain(relaxed_correctness(response, target, *max_relative_change)),
            },
            ScorerSpec::VqaAccuracy { answers } => {
                let list = doc.str_list(answers)?;
                let (parsed, score) = vqa_accuracy(response, &list)
                    .ok_or_else(|| row_error(doc, format!("column `{answers}` is empty")))?;
                Outcome {
                    parsed: json!(parsed),
                    item: Item {
                        score,
                        prediction: String::new(),
                        ground_truth: String::new(),
                    },
                }
            }
            ScorerSpec::Anls { answers, threshold } => {
                let list = doc.str_list(answers)?;
                let score = anls(response, &list, *threshold)
                    .ok_or_else(|| row_error(doc, format!("column `{answers}` is empty")))?;
                Outcome {
                    parsed: json!(response),
                    item: Item {
                        score,
                        prediction: String::new(),
                        ground_truth: String::new(),
                    },
                }
            }
            ScorerSpec::Judge {
                verdict,
                skip_exact,
                ..
            } => {
                let (parsed, score) = if *skip_exact && exact(response, target) {
                    (json!({"exact": true}), 1.0)
                } else {
                    let reply = judged.ok_or_else(|| {
                        row_error(doc, "the judge was not asked about this answer")
                    })?;
                    (json!({"judge": reply}), verdict_score(*verdict, reply))
                };
                Outcome {
                    parsed,
                    item: Item {
                        score,
                        prediction: String::new(),
                        ground_truth: String::new(),
                    },
                }
            }
        })
    }

    /// The per-sample value lmms-eval stores under a metric's name.
    pub(super) fn field(&self, id: &Value, item: &Item) -> Value {
        if self.spec.scoring.scorer == ScorerSpec::YesNo {
            let id_key = self.spec.dataset.id.as_deref().unwrap_or("doc_id");
            json!({id_key: id, "score": item.score, "prediction": item.prediction,
                   "ground_truth": item.ground_truth})
        } else {
            json!(item.score)
        }
    }
}

/// A response equal to the target, case and surrounding space aside.
fn exact(response: &str, target: &str) -> bool {
    py_lower(py_strip(response)) == py_lower(py_strip(target))
}

/// A judge reply's score: `yes` as its first word (1) or not (0), or a number in 0..1.
fn verdict_score(verdict: Verdict, reply: &str) -> f64 {
    let reply = py_strip(reply);
    match verdict {
        Verdict::YesNo => {
            let first: String = reply.chars().take_while(|c| c.is_alphanumeric()).collect();
            if py_lower(&first) == "yes" {
                1.0
            } else {
                0.0
            }
        }
        Verdict::Number => crate::python::py_float(reply)
            .filter(|v| v.is_finite())
            .map_or(0.0, |v| v.clamp(0.0, 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_is_read_from_the_reply() {
        for (reply, yes_no) in [
            ("Yes", 1.0),
            ("  yes.", 1.0),
            ("YES, because the answer matches", 1.0),
            ("No.", 0.0),
            ("yesterday", 0.0),
            ("", 0.0),
        ] {
            assert_eq!(verdict_score(Verdict::YesNo, reply), yes_no, "{reply:?}");
        }
        for (reply, number) in [
            ("0.7", 0.7),
            (" 1 ", 1.0),
            ("2", 1.0),
            ("-3", 0.0),
            ("nan", 0.0),
            ("abc", 0.0),
        ] {
            assert_eq!(verdict_score(Verdict::Number, reply), number, "{reply:?}");
        }
    }
}
