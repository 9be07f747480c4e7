//! The task file format (TOML): what each key means, read with serde (unknown keys are
//! errors), then checked as a whole ([`TaskSpec::validate`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::tasks::scorers::ExactMatchOptions;

/// A whole task file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The name `--tasks` takes and results.json reports (`pope`).
    pub task: String,
    /// One line for `vlm-eval tasks`.
    #[serde(default)]
    pub description: String,
    /// `versions.<task>` in results.json; lmms-eval reports `Yaml` for its yaml tasks.
    #[serde(default = "default_version")]
    pub version: String,
    pub dataset: DatasetSection,
    pub prompt: PromptSection,
    pub generation: GenerationSection,
    pub scoring: ScoringSection,
    pub metrics: Vec<MetricSection>,
}

fn default_version() -> String {
    "Yaml".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// Hub repository id (`lmms-lab/POPE`).
    pub repo: String,
    /// Other ids of the same data, looked for locally too (`lmms-lab-encoder/POPE`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// lmms-eval's `dataset_name`: the config folder (`ScienceQA-IMG`).
    pub config: Option<String>,
    pub split: String,
    /// The column holding the row's own id (samples' `id`); the row index if absent.
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSection {
    /// Image columns, shown before the text in this order; an empty cell is an error.
    #[serde(default)]
    pub images: Vec<String>,
    /// Image columns that may be empty (skipped then), after `images`.
    #[serde(default)]
    pub optional_images: Vec<String>,
    /// The prompt text: a minijinja template over the row's columns and `pre_prompt`,
    /// `post_prompt` and `vars` (lmms-eval's `lmms_eval_specific_kwargs.default`).
    pub text: String,
    #[serde(default)]
    pub pre_prompt: String,
    #[serde(default)]
    pub post_prompt: String,
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSection {
    pub max_new_tokens: usize,
    /// Strings that end generation (lmms-eval's `until`), sent as `stop`.
    #[serde(default)]
    pub until: Vec<String>,
    /// 0 (the default) is greedy.
    #[serde(default)]
    pub temperature: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringSection {
    /// The expected answer as a template (`{{ answer }}`); the samples file's `target`.
    pub target: String,
    /// lmms-eval's filter step on the raw response.
    pub filter: Option<FilterSpec>,
    pub scorer: ScorerSpec,
    /// The metric leaderboards rank by; the first metric if absent.
    pub primary: Option<String>,
    /// Columns to break every metric down by (per category, per type).
    #[serde(default)]
    pub breakdown: Vec<String>,
}

/// A filter of the raw response, with the name results.json keys carry
/// (`exact_match,flexible-extract`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    pub kind: FilterKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// AI2D's `MultiChoiceRegexFilter`: a leading `X.` becomes `X`.
    LeadingOptionLetter,
}

/// How one response is scored against the row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScorerSpec {
    /// POPE: `response.lower().strip()` equals the target (`yes` / `no`).
    YesNo,
    /// ScienceQA: the option letter alone, or `X.` with an uppercase `X`.
    OptionLetter,
    /// lmms-eval's `exact_match` (Hugging Face `evaluate`).
    ExactMatch(ExactMatchOptions),
    /// ChartQA's relaxed accuracy.
    RelaxedAccuracy {
        #[serde(default = "default_relative_change")]
        max_relative_change: f64,
    },
    /// TextVQA's VQA accuracy over a list column of human answers.
    VqaAccuracy { answers: String },
    /// DocVQA's ANLS over a list column of answers.
    Anls {
        answers: String,
        #[serde(default = "default_anls_threshold")]
        threshold: f64,
    },
    /// A judge model reads the response: `prompt` is a template over the row's columns,
    /// `response` and `target`; the reply's `verdict` is the score.
    Judge {
        prompt: String,
        verdict: Verdict,
        /// A response equal to the target (case and surrounding space aside) scores 1
        /// without asking the judge.
        #[serde(default)]
        skip_exact: bool,
    },
}

/// How a judge's reply becomes a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// 1 when the reply's first word is `yes` (any case, punctuation after it aside), else 0.
    YesNo,
    /// The reply read as a number (Python's `float()` of the stripped reply), clamped to
    /// 0..1; 0 when it is not one.
    Number,
}

fn default_relative_change() -> f64 {
    0.05
}

fn default_anls_threshold() -> f64 {
    0.5
}

impl ScorerSpec {
    pub fn name(&self) -> &'static str {
        match self {
            ScorerSpec::YesNo => "yes_no",
            ScorerSpec::OptionLetter => "option_letter",
            ScorerSpec::ExactMatch(_) => "exact_match",
            ScorerSpec::RelaxedAccuracy { .. } => "relaxed_accuracy",
            ScorerSpec::VqaAccuracy { .. } => "vqa_accuracy",
            ScorerSpec::Anls { .. } => "anls",
            ScorerSpec::Judge { .. } => "judge",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSection {
    /// The metric's name in results.json (`pope_accuracy`).
    pub name: String,
    pub aggregation: Aggregation,
    /// Only rows whose column has (or has not) a value count (ChartQA's splits).
    pub when: Option<When>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// lmms-eval's registered `mean`, which also reports `_stderr` (`mean_stderr`).
    Mean,
    /// A task's own mean (POPE's `pope_aggregate_accuracy`): no `_stderr`.
    Accuracy,
    /// POPE's yes/no aggregations over predictions and ground truths.
    Precision,
    Recall,
    F1,
    YesRatio,
}

impl Aggregation {
    pub fn needs_yes_no(self) -> bool {
        matches!(
            self,
            Aggregation::Precision | Aggregation::Recall | Aggregation::F1 | Aggregation::YesRatio
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Accuracy => "accuracy",
            Aggregation::Precision => "precision",
            Aggregation::Recall => "recall",
            Aggregation::F1 => "f1",
            Aggregation::YesRatio => "yes_ratio",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub column: String,
    pub equals: Option<String>,
    pub not_equals: Option<String>,
}

/// A problem with a well-formed task file: the key and what is wrong.
pub struct Problem {
    pub key: String,
    pub problem: String,
}

fn problem(key: impl Into<String>, problem: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        problem: problem.into(),
    }
}

impl TaskSpec {
    /// Checks what serde cannot: names, references between keys, ranges.
    pub fn validate(&self) -> Result<(), Problem> {
        // It names output files, which `vlm-eval sync` reads back.
        let name_ok = crate::tasks::is_plain_name(&self.task)
            && self.task.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !name_ok {
            return Err(problem(
                "task",
                format!(
                    "`{}` must start with a letter or digit and hold only letters, digits, `_`, \
                     `-` or `.` (it names output files)",
                    self.task
                ),
            ));
        }
        if !vlm_models::loader::is_repo_id(&self.dataset.repo) {
            return Err(problem(
                "dataset.repo",
                "must be a hub id like `lmms-lab/POPE`",
            ));
        }
        if self.dataset.split.is_empty() {
            return Err(problem("dataset.split", "must not be empty"));
        }
        if self.generation.max_new_tokens == 0 {
            return Err(problem("generation.max_new_tokens", "must be at least 1"));
        }
        let t = self.generation.temperature;
        if !t.is_finite() || t < 0.0 {
            return Err(problem("generation.temperature", "must be 0 or more"));
        }
        if self.generation.until.iter().any(String::is_empty) {
            return Err(problem("generation.until", "a stop string cannot be empty"));
        }
        if self.metrics.is_empty() {
            return Err(problem(
                "metrics",
                "a task needs at least one [[metrics]] entry",
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if m.name.is_empty() || m.name.contains(',') {
                return Err(problem(
                    format!("metrics[{i}].name"),
                    "must be non-empty and without commas",
                ));
            }
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return Err(problem(
                    format!("metrics[{i}].name"),
                    format!("`{}` is listed twice", m.name),
                ));
            }
            if m.aggregation.needs_yes_no() && self.scoring.scorer != ScorerSpec::YesNo {
                return Err(problem(
                    format!("metrics[{i}].aggregation"),
                    format!(
                        "`{}` counts yes/no answers and needs scorer kind `yes_no`, not `{}`",
                        m.aggregation.name(),
                        self.scoring.scorer.name()
                    ),
                ));
            }
            if let Some(w) = &m.when {
                if w.equals.is_some() == w.not_equals.is_some() {
                    return Err(problem(
                        format!("metrics[{i}].when"),
                        "give exactly one of `equals` and `not_equals`",
                    ));
                }
            }
        }
        if let Some(primary) = &self.scoring.primary {
            if !self.metrics.iter().any(|m| &m.name == primary) {
                return Err(problem(
                    "scoring.primary",
                    format!("`{primary}` is not one of the [[metrics]] names"),
                ));
            }
        }
        if let Some(f) = &self.scoring.filter {
            if f.name.is_empty() || f.name.contains(',') {
                return Err(problem(
                    "scoring.filter.name",
                    "must be non-empty and without commas",
                ));
            }
        }
        match &self.scoring.scorer {
            ScorerSpec::RelaxedAccuracy {
                max_relative_change,
            } if !(max_relative_change.is_finite() && *max_relative_change >= 0.0) => {
                return Err(problem(
                    "scoring.scorer.max_relative_change",
                    "must be 0 or more",
                ));
            }
            ScorerSpec::Anls { threshold, .. } if !(0.0..=1.0).contains(threshold) => {
                return Err(problem(
                    "scoring.scorer.threshold",
                    "must be between 0 and 1",
                ));
            }
            ScorerSpec::VqaAccuracy { answers } | ScorerSpec::Anls { answers, .. }
                if answers.is_empty() =>
            {
                return Err(problem("scoring.scorer.answers", "must name a list column"));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHARTQA: &str = include_str!("../../../tasks/chartqa.toml");

    /// The key `validate` names for the shipped ChartQA file with `from` replaced by `to`.
    fn refused(from: &str, to: &str) -> String {
        assert!(CHARTQA.contains(from), "{from}");
        let spec: TaskSpec = toml::from_str(&CHARTQA.replacen(from, to, 1)).unwrap();
        spec.validate()
            .map(|()| "accepted".into())
            .unwrap_or_else(|p| p.key)
    }

    #[test]
    fn each_bad_value_is_named_by_its_key() {
        let spec: TaskSpec = toml::from_str(CHARTQA).unwrap();
        assert!(spec.validate().is_ok());
        // A scorer's options are checked like every other key.
        let exact = "{ kind = \"exact_match\", ignore_case = true }";
        let relaxed = "{ kind = \"relaxed_accuracy\", max_relative_change = 0.05 }";
        let spec: TaskSpec = toml::from_str(&CHARTQA.replace(relaxed, exact)).unwrap();
        assert!(matches!(
            spec.scoring.scorer,
            ScorerSpec::ExactMatch(ExactMatchOptions {
                ignore_case: true,
                ignore_punctuation: false,
                ignore_numbers: false
            })
        ));
        let typo = CHARTQA.replace(relaxed, &exact.replace("ignore_case", "ignore_cases"));
        let err = toml::from_str::<TaskSpec>(&typo).unwrap_err().to_string();
        assert!(err.contains("unknown field `ignore_cases`"), "{err}");
        for (from, to, key) in [
            ("task = \"chartqa\"", "task = \"_chartqa\"", "task"),
            ("task = \"chartqa\"", "task = \"chart qa\"", "task"),
            (
                "repo = \"lmms-lab/ChartQA\"",
                "repo = \"lmms-lab/\"",
                "dataset.repo",
            ),
            (
                "repo = \"lmms-lab/ChartQA\"",
                "repo = \"../ChartQA\"",
                "dataset.repo",
            ),
            ("split = \"test\"", "split = \"\"", "dataset.split"),
            (
                "max_new_tokens = 16",
                "max_new_tokens = 0",
                "generation.max_new_tokens",
            ),
            (
                "max_new_tokens = 16",
                "max_new_tokens = 16\ntemperature = -1.0",
                "generation.temperature",
            ),
            (
                "max_new_tokens = 16",
                "max_new_tokens = 16\nuntil = [\"\"]",
                "generation.until",
            ),
            (
                "name = \"relaxed_human_split\"",
                "name = \"a,b\"",
                "metrics[1].name",
            ),
            (
                "name = \"relaxed_human_split\"",
                "name = \"relaxed_overall\"",
                "metrics[1].name",
            ),
            (
                "aggregation = \"mean\"\nwhen = { column = \"type\", equals",
                "aggregation = \"f1\"\nwhen = { column = \"type\", equals",
                "metrics[1].aggregation",
            ),
            (
                "equals = \"human_test\" }",
                "equals = \"human_test\", not_equals = \"x\" }",
                "metrics[1].when",
            ),
            (
                "primary = \"relaxed_overall\"",
                "primary = \"overall\"",
                "scoring.primary",
            ),
            (
                "primary = \"relaxed_overall\"",
                "primary = \"relaxed_overall\"\nfilter = { kind = \"leading_option_letter\", name = \"\" }",
                "scoring.filter.name",
            ),
            (
                "max_relative_change = 0.05",
                "max_relative_change = -0.05",
                "scoring.scorer.max_relative_change",
            ),
            (
                "{ kind = \"relaxed_accuracy\", max_relative_change = 0.05 }",
                "{ kind = \"anls\", answers = \"answers\", threshold = 1.5 }",
                "scoring.scorer.threshold",
            ),
            (
                "{ kind = \"relaxed_accuracy\", max_relative_change = 0.05 }",
                "{ kind = \"vqa_accuracy\", answers = \"\" }",
                "scoring.scorer.answers",
            ),
        ] {
            assert_eq!(refused(from, to), key, "{to}");
        }
    }
}
