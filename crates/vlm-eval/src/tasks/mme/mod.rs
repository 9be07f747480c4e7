//! lmms-eval's `mme`: yes/no questions, two per image; `acc + acc+` per image, averaged per
//! category, summed into perception (max 2000) and cognition (max 800).

mod rules;

use serde_json::{json, Map, Value};

pub use rules::*;

use super::task::{row_error, Metric, SampleScore, Task, TaskError, TaskScores};
use crate::dataset::{DatasetSpec, Row};
use crate::prompt::{Prompt, PromptPart};
use crate::python::stderr_clt;

pub struct Mme;

const PERCEPTION_METRIC: &str = "mme_perception_score";
const COGNITION_METRIC: &str = "mme_cognition_score";

fn metric_for(category: &str) -> &'static str {
    if PERCEPTION.contains(&category) {
        PERCEPTION_METRIC
    } else {
        COGNITION_METRIC
    }
}

impl Task for Mme {
    fn name(&self) -> &str {
        "mme"
    }

    /// lmms-eval 0.7.3 reads the same data from `lmms-lab-encoder/MME`.
    fn dataset(&self) -> DatasetSpec {
        DatasetSpec {
            aliases: vec!["lmms-lab-encoder/MME".into()],
            ..DatasetSpec::new("lmms-lab/MME", "test")
        }
    }

    fn max_new_tokens(&self) -> usize {
        16
    }

    fn metric_names(&self) -> Vec<&str> {
        vec![COGNITION_METRIC, PERCEPTION_METRIC]
    }

    fn primary_metric(&self) -> &str {
        PERCEPTION_METRIC
    }

    fn version(&self) -> Value {
        // The yaml's metadata is a list, so lmms-eval reports its placeholder.
        json!("Yaml")
    }

    fn config(&self) -> Value {
        let dataset = self.dataset();
        json!({
            "task": "mme",
            "dataset_path": dataset.repo,
            "test_split": dataset.split,
            "output_type": "generate_until",
            "doc_to_target": "answer",
            "generation_kwargs": {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0,
                                  "num_beams": 1, "do_sample": false},
            "lmms_eval_specific_kwargs": {"pre_prompt": "", "post_prompt": POST_PROMPT},
            "metric_list": [
                {"metric": PERCEPTION_METRIC, "aggregation": "mme_aggregate_results",
                 "higher_is_better": true},
                {"metric": COGNITION_METRIC, "aggregation": "mme_aggregate_results",
                 "higher_is_better": true},
            ],
        })
    }

    fn prompt(&self, doc: &Row) -> Result<Prompt, TaskError> {
        let input = prompt(doc.str("question")?);
        let image = doc
            .image("image")?
            .ok_or_else(|| row_error(doc, "column `image` is empty"))?;
        // lmms-eval's chat path for tasks without their own messages: images, then text.
        Ok(Prompt {
            parts: vec![
                PromptPart::Image {
                    column: "image".into(),
                    bytes: image,
                },
                PromptPart::Text(input.clone()),
            ],
            input,
        })
    }

    /// Whole image pairs: every row sharing an image (and category) with the first `n`.
    fn limit(&self, docs: &[Row], n: usize) -> Vec<usize> {
        let key = |d: &Row| {
            (
                d.str("question_id").unwrap_or_default().to_string(),
                d.str("category").unwrap_or_default().to_string(),
            )
        };
        let wanted: std::collections::HashSet<_> = docs.iter().take(n).map(key).collect();
        (0..docs.len())
            .filter(|&i| i < n || wanted.contains(&key(&docs[i])))
            .collect()
    }

    fn score(&self, docs: &[&Row], responses: &[&str]) -> Result<TaskScores, TaskError> {
        let mut samples = Vec::with_capacity(docs.len());
        for (doc, response) in docs.iter().zip(responses) {
            let question_id = doc.str("question_id")?;
            let category = doc.str("category")?;
            let answer = doc.str("answer")?;
            let parsed = parse_yes_no(response);
            // lmms-eval compares the parsed word with the normalised gold text.
            let score = if parsed.as_str() == gold_text(answer) {
                1.0
            } else {
                0.0
            };
            let mut fields = Map::new();
            fields.insert(
                metric_for(category).into(),
                json!({"question_id": question_id, "category": category, "score": score}),
            );
            samples.push(SampleScore {
                id: question_id.to_string(),
                target: answer.to_string(),
                parsed: json!(parsed.as_str()),
                score,
                fields,
            });
        }
        let scored: Vec<Scored<'_>> = docs
            .iter()
            .zip(&samples)
            .map(|(doc, s)| Scored {
                question_id: &s.id,
                category: doc.str("category").unwrap_or_default(),
                correct: s.score == 1.0,
            })
            .collect();
        let scores = aggregate(&scored).map_err(|e| TaskError::Aggregate(Box::new(e)))?;
        let mut metrics = Vec::new();
        for (name, value) in [
            (COGNITION_METRIC, scores.cognition),
            (PERCEPTION_METRIC, scores.perception),
        ] {
            let items: Vec<f64> = samples
                .iter()
                .filter(|s| s.fields.contains_key(name))
                .map(|s| s.score)
                .collect();
            // lmms-eval only reports a metric some sample produced.
            if !items.is_empty() {
                metrics.push(Metric::unfiltered(name, value, stderr_clt(&items)));
            }
        }
        Ok(TaskScores {
            samples,
            metrics,
            summary: std::iter::once("mme categories:\n".to_string())
                .chain(
                    scores
                        .categories
                        .iter()
                        .map(|(name, score)| format!("  {name:<24} {score:>8.2}\n")),
                )
                .collect(),
            details: json!({ "categories": scores.categories }),
        })
    }
}
