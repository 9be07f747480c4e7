//! What every benchmark provides: the [`Task`] trait (dataset split, prompt per row,
//! generation length, scoring) and the scores it returns.

use serde_json::{Map, Value};

use crate::dataset::{DatasetError, Row};
use crate::prompt::Prompt;

/// One aggregated metric, as lmms-eval reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    /// lmms-eval's CLT standard error, where its items carry a numeric `score`.
    pub stderr_clt: Option<f64>,
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

pub trait Task: Send + Sync {
    /// lmms-eval's task name (`mme`, `mmmu_val`).
    fn name(&self) -> &'static str;
    /// Hub dataset repository and split.
    fn dataset(&self) -> (&'static str, &'static str);
    /// Other repository ids the same data is published under, looked for locally too.
    fn dataset_aliases(&self) -> &'static [&'static str] {
        &[]
    }
    fn max_new_tokens(&self) -> usize;
    /// Metric names, in lmms-eval's spelling.
    fn metric_names(&self) -> &'static [&'static str];
    /// The metric leaderboards rank by (one of [`metric_names`](Self::metric_names)).
    fn primary_metric(&self) -> &'static str {
        self.metric_names().first().copied().unwrap_or_default()
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
}

/// A problem with one row, naming it.
pub(crate) fn row_error(doc: &Row, problem: impl Into<String>) -> TaskError {
    TaskError::Row {
        doc_id: doc.doc_id,
        problem: problem.into(),
    }
}
