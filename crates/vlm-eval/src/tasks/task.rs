//! What every benchmark provides: the [`Task`] trait (dataset split, prompt per row,
//! generation length, scoring) and the scores it returns.

use serde_json::{Map, Value};

use crate::dataset::{DatasetError, DatasetSpec, Row};
use crate::prompt::Prompt;

/// One aggregated metric, as lmms-eval reports it (`"<name>,<filter>"` in results.json).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    /// The filter whose output was scored: `none`, or a named one (`flexible-extract`).
    pub filter: String,
    pub value: f64,
    /// lmms-eval's `_stderr`: `mean_stderr` where the aggregation is its registered
    /// `mean`; `None` ("N/A") for a task's own aggregation function.
    pub stderr: Option<f64>,
    /// lmms-eval's CLT standard error, where its items carry a numeric `score`.
    pub stderr_clt: Option<f64>,
}

impl Metric {
    /// A metric of the unfiltered responses with no `_stderr` (a task's own aggregation).
    pub fn unfiltered(name: &str, value: f64, stderr_clt: Option<f64>) -> Self {
        Self {
            name: name.into(),
            filter: "none".into(),
            value,
            stderr: None,
            stderr_clt,
        }
    }
}

/// One scored sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleScore {
    /// The dataset's own id of the row (`question_id`, `id`).
    pub id: String,
    pub target: String,
    /// The answer the parser read from the response.
    pub parsed: Value,
    /// 1.0 when correct, else 0.0.
    pub score: f64,
    /// The per-sample dicts lmms-eval stores under its metric names, and task extras.
    pub fields: Map<String, Value>,
}

/// A task's results over the samples it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskScores {
    pub samples: Vec<SampleScore>,
    pub metrics: Vec<Metric>,
    /// Breakdown (categories, subjects, domains) and counters (random fallbacks).
    pub details: Value,
    /// The same breakdown as text for stdout, laid out as lmms-eval logs it.
    pub summary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("row {doc_id}: {problem}")]
    Row { doc_id: usize, problem: String },
    /// The task's own aggregation refused the scored samples (MME's unpaired images).
    #[error("{0}")]
    Aggregate(Box<dyn std::error::Error + Send + Sync>),
}

/// A metric's key in the runs store: as results.json keys it, without a `,none` suffix
/// (`mme_perception_score`, `exact_match,flexible-extract`).
pub fn store_metric_key(metric: &str, filter: &str) -> String {
    match filter {
        "none" => metric.to_string(),
        filter => format!("{metric},{filter}"),
    }
}

pub trait Task: Send + Sync {
    /// lmms-eval's task name (`mme`, `mmmu_val`).
    fn name(&self) -> &str;
    /// The hub dataset split the task reads.
    fn dataset(&self) -> DatasetSpec;
    fn max_new_tokens(&self) -> usize;
    /// Strings that end generation (lmms-eval's `until`), sent as `stop`.
    fn stop(&self) -> &[String] {
        &[]
    }
    /// Sampling temperature; 0 (greedy) for every lmms-eval task shipped.
    fn temperature(&self) -> f32 {
        0.0
    }
    /// Metric names, in lmms-eval's spelling.
    fn metric_names(&self) -> Vec<&str>;
    /// The metric leaderboards rank by (one of [`metric_names`](Self::metric_names)).
    fn primary_metric(&self) -> &str {
        self.metric_names().first().copied().unwrap_or_default()
    }
    /// The task file's text where the task comes from one: hashed into run identities (a
    /// changed file is a different run) and carried in queued runs' configs, so a worker
    /// without the file runs the same task. `None` for tasks written in Rust.
    fn definition(&self) -> Option<&str> {
        None
    }
    /// One line saying what the task measures, where its file gives one (`vlm-eval tasks`).
    fn description(&self) -> Option<&str> {
        None
    }
    /// The filter results.json keys carry (`none`, or AI2D's `flexible-extract`).
    fn filter_name(&self) -> &str {
        "none"
    }
    /// A metric's key in the runs store: as in results.json, without a `,none` suffix
    /// (`mme_perception_score`, `exact_match,flexible-extract`).
    fn metric_key(&self, metric: &str) -> String {
        store_metric_key(metric, self.filter_name())
    }
    /// The primary metric's key in the runs store (see [`metric_key`](Self::metric_key)).
    fn primary_key(&self) -> String {
        self.metric_key(self.primary_metric())
    }
    /// Checks, on the split's rows, what would otherwise fail on every row only once
    /// generation has run (a task file naming a column the dataset lacks).
    fn check(&self, _rows: &[Row]) -> Result<(), TaskError> {
        Ok(())
    }
    /// lmms-eval's filter step, run on the raw response before reasoning blocks are
    /// stripped (AI2D's option-letter extraction); the response itself by default.
    fn filter(&self, response: &str) -> String {
        response.to_string()
    }
    /// `versions.<task>` in lmms-eval's results.
    fn version(&self) -> Value;
    /// The task's `configs` entry (prompts and generation settings).
    fn config(&self) -> Value;

    fn prompt(&self, doc: &Row) -> Result<Prompt, TaskError>;

    /// The first `n` rows to evaluate, widened where the task needs whole groups.
    fn limit(&self, docs: &[Row], n: usize) -> Vec<usize> {
        (0..n.min(docs.len())).collect()
    }

    /// Scores responses (reasoning tags already stripped), given in document order: parsers
    /// may share state across documents (MMMU's random fallback stream).
    fn score(&self, docs: &[&Row], responses: &[&str]) -> Result<TaskScores, TaskError>;

    /// The prompt for the judge model where this task's rules cannot read a response
    /// (`None`: the rules suffice, or the task has no judge).
    fn judge_prompt(&self, _doc: &Row, _response: &str) -> Result<Option<String>, TaskError> {
        Ok(None)
    }

    /// Whether the task scores without a judge when none is given (MMMU's judged open
    /// questions are an extra figure); else answers needing one stop the scoring.
    fn judge_optional(&self) -> bool {
        false
    }

    /// Which judge prompt the task sends, recorded in results.json.
    fn judge_prompt_version(&self) -> Option<String> {
        None
    }

    /// [`score`](Self::score), given the judge's reply for each sample it was asked about.
    fn score_judged(
        &self,
        docs: &[&Row],
        responses: &[&str],
        _judged: &[Option<String>],
    ) -> Result<TaskScores, TaskError> {
        self.score(docs, responses)
    }
}

/// A problem with one row, naming it.
pub(crate) fn row_error(doc: &Row, problem: impl Into<String>) -> TaskError {
    TaskError::Row {
        doc_id: doc.doc_id,
        problem: problem.into(),
    }
}
