//! Tasks defined by a file (TOML) instead of code: the dataset split, the prompt as a
//! template over a row's columns, generation settings, a built-in scorer ([`scorers`]),
//! and metrics aggregated as lmms-eval aggregates them. The shipped benchmarks (POPE,
//! ScienceQA-IMG, AI2D, ChartQA, TextVQA, DocVQA) are such files; a user's file works the
//! same way (`vlm-eval --tasks path/to/task.toml`).
//!
//! [`scorers`]: super::scorers

mod aggregate;
mod breakdown;
mod error;
mod sample;
mod spec;
mod template;

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::Environment;
use serde_json::{json, Map, Value};

pub use error::TaskFileError;
use spec::{ScorerSpec, TaskSpec};

use self::aggregate::{aggregate, Item};
use self::spec::{FilterKind, MetricSection};
use super::scorers::leading_option_letter;
use super::task::{row_error, Metric, SampleScore, Task, TaskError, TaskScores};
use crate::dataset::{Cell, DatasetSpec, Row};
use crate::prompt::{Prompt, PromptPart};
use crate::python::stderr_clt;

const TEXT: &str = "prompt.text";
const TARGET: &str = "scoring.target";
const JUDGE: &str = "scoring.scorer.prompt";

/// A task read from a task file.
pub struct FileTask {
    spec: TaskSpec,
    /// The file's text, hashed into run identities.
    source: String,
    /// Shipped in the binary: known by name everywhere, like the tasks written in Rust.
    built_in: bool,
    env: Environment<'static>,
    /// `pre_prompt`, `post_prompt` and `vars`, as the templates see them.
    prompt_vars: BTreeMap<String, minijinja::Value>,
}

impl std::fmt::Debug for FileTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTask")
            .field("task", &self.spec.task)
            .finish()
    }
}

impl FileTask {
    /// Reads and checks the task file at `path`.
    pub fn load(path: &Path) -> Result<Self, TaskFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| TaskFileError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    /// Checks a task file's text; `path` is only for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TaskFileError> {
        let spec: TaskSpec =
            toml::from_str(text).map_err(|e| TaskFileError::parse(path, text, &e))?;
        let invalid = |key: &str, problem: String| TaskFileError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem,
        };
        spec.validate().map_err(|p| invalid(&p.key, p.problem))?;
        let mut env = template::environment();
        for (key, source) in [(TEXT, &spec.prompt.text), (TARGET, &spec.scoring.target)] {
            env.add_template_owned(key, source.clone())
                .map_err(|e| invalid(key, first_line(&e)))?;
        }
        if let ScorerSpec::Judge { prompt, .. } = &spec.scoring.scorer {
            env.add_template_owned(JUDGE, prompt.clone())
                .map_err(|e| invalid(JUDGE, first_line(&e)))?;
        }
        let mut prompt_vars: BTreeMap<String, minijinja::Value> = spec
            .prompt
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), minijinja::Value::from_serialize(v)))
            .collect();
        prompt_vars.insert("pre_prompt".into(), spec.prompt.pre_prompt.clone().into());
        prompt_vars.insert("post_prompt".into(), spec.prompt.post_prompt.clone().into());
        Ok(Self {
            spec,
            source: text.to_string(),
            built_in: false,
            env,
            prompt_vars,
        })
    }

    /// A task file shipped in the binary (found by name; its definition is not carried).
    pub fn shipped(mut self) -> Self {
        self.built_in = true;
        self
    }

    fn render(&self, key: &str, doc: &Row) -> Result<String, TaskError> {
        self.render_with(key, doc, &self.prompt_vars)
    }

    fn render_with(
        &self,
        key: &str,
        doc: &Row,
        vars: &BTreeMap<String, minijinja::Value>,
    ) -> Result<String, TaskError> {
        let ctx = template::row_context(doc, vars);
        self.env
            .get_template(key)
            .and_then(|t| t.render(ctx))
            .map_err(|e| row_error(doc, format!("`{key}`: {}", first_line(&e))))
    }

    /// The row's own id as text (the id column), or its index.
    fn row_id(&self, doc: &Row) -> Result<(String, Value), TaskError> {
        let Some(column) = &self.spec.dataset.id else {
            return Ok((doc.doc_id.to_string(), json!(doc.doc_id)));
        };
        let cell = doc
            .get(column)
            .ok_or_else(|| row_error(doc, format!("id column `{column}` is missing")))?;
        let value = cell.to_json().unwrap_or(Value::Null);
        let text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok((text, value))
    }

    fn applies(&self, metric: &MetricSection, doc: &Row) -> Result<bool, TaskError> {
        let Some(when) = &metric.when else {
            return Ok(true);
        };
        let text = match doc.get(&when.column) {
            Some(Cell::Str(s)) => s.clone(),
            Some(Cell::Int(i)) => i.to_string(),
            Some(Cell::Bool(b)) => b.to_string(),
            Some(Cell::Null) => String::new(),
            Some(other) => {
                return Err(row_error(
                    doc,
                    format!("column `{}` is not a plain value: {other:?}", when.column),
                ))
            }
            None => {
                return Err(row_error(
                    doc,
                    format!(
                        "column `{}` (in `{}`'s `when`) is missing",
                        when.column, metric.name
                    ),
                ))
            }
        };
        Ok(match (&when.equals, &when.not_equals) {
            (Some(v), _) => &text == v,
            (None, Some(v)) => &text != v,
            (None, None) => true,
        })
    }
}

fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

impl Task for FileTask {
    fn name(&self) -> &str {
        &self.spec.task
    }

    fn dataset(&self) -> DatasetSpec {
        let d = &self.spec.dataset;
        DatasetSpec {
            repo: d.repo.clone(),
            aliases: d.aliases.clone(),
            config: d.config.clone(),
            split: d.split.clone(),
        }
    }

    fn max_new_tokens(&self) -> usize {
        self.spec.generation.max_new_tokens
    }

    fn stop(&self) -> &[String] {
        &self.spec.generation.until
    }

    fn temperature(&self) -> f32 {
        self.spec.generation.temperature
    }

    fn metric_names(&self) -> Vec<&str> {
        self.spec.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    fn primary_metric(&self) -> &str {
        self.spec
            .scoring
            .primary
            .as_deref()
            .unwrap_or_else(|| self.spec.metrics[0].name.as_str())
    }

    fn description(&self) -> Option<&str> {
        (!self.spec.description.is_empty()).then_some(self.spec.description.as_str())
    }

    /// A user's file; a shipped one is part of the code, like MME (its `version` says it).
    fn definition(&self) -> Option<&str> {
        (!self.built_in).then_some(self.source.as_str())
    }

    /// The first row renders its prompt and target, and has every column the file names.
    fn check(&self, rows: &[Row]) -> Result<(), TaskError> {
        let Some(doc) = rows.first() else {
            return Ok(());
        };
        for key in [TEXT, TARGET, JUDGE] {
            // The judge's prompt also sees the response and the target.
            let given: &[&str] = if key == JUDGE {
                &["response", "target"]
            } else {
                &[]
            };
            let used = self
                .env
                .get_template(key)
                .map(|t| t.undeclared_variables(false))
                .unwrap_or_default();
            let mut unknown: Vec<&String> = used
                .iter()
                .filter(|v| {
                    doc.get(v).is_none()
                        && !self.prompt_vars.contains_key(*v)
                        && !given.contains(&v.as_str())
                })
                .collect();
            unknown.sort();
            if let Some(name) = unknown.first() {
                return Err(row_error(
                    doc,
                    format!("`{key}` uses `{name}`, which is neither a column of the dataset nor a prompt variable"),
                ));
            }
        }
        self.prompt(doc)?;
        self.render(TARGET, doc)?;
        self.row_id(doc)?;
        let s = &self.spec;
        let named = |key: &str, column: &str| -> Result<(), TaskError> {
            match doc.get(column) {
                Some(_) => Ok(()),
                None => Err(row_error(
                    doc,
                    format!("`{key}` names column `{column}`, which the dataset lacks"),
                )),
            }
        };
        for column in &s.prompt.optional_images {
            named("prompt.optional_images", column)?;
        }
        if let ScorerSpec::VqaAccuracy { answers } | ScorerSpec::Anls { answers, .. } =
            &s.scoring.scorer
        {
            named("scoring.scorer.answers", answers)?;
            doc.str_list(answers)?;
        }
        for (i, m) in s.metrics.iter().enumerate() {
            if let Some(when) = &m.when {
                named(&format!("metrics[{i}].when.column"), &when.column)?;
            }
        }
        for column in &s.scoring.breakdown {
            named("scoring.breakdown", column)?;
        }
        Ok(())
    }

    fn filter_name(&self) -> &str {
        self.spec
            .scoring
            .filter
            .as_ref()
            .map_or("none", |f| f.name.as_str())
    }

    fn filter(&self, response: &str) -> String {
        match self.spec.scoring.filter.as_ref().map(|f| f.kind) {
            Some(FilterKind::LeadingOptionLetter) => leading_option_letter(response),
            None => response.to_string(),
        }
    }

    fn version(&self) -> Value {
        json!(self.spec.version)
    }

    fn config(&self) -> Value {
        let s = &self.spec;
        let mut generation = json!({
            "max_new_tokens": s.generation.max_new_tokens,
            "temperature": s.generation.temperature,
            "do_sample": s.generation.temperature > 0.0,
        });
        if !s.generation.until.is_empty() {
            generation["until"] = json!(s.generation.until);
        }
        let mut kwargs =
            json!({"pre_prompt": s.prompt.pre_prompt, "post_prompt": s.prompt.post_prompt});
        for (k, v) in &s.prompt.vars {
            kwargs[k] = serde_json::to_value(v).unwrap_or(Value::Null);
        }
        let mut config = json!({
            "task": s.task,
            "dataset_path": s.dataset.repo,
            "test_split": s.dataset.split,
            "output_type": "generate_until",
            "doc_to_text": s.prompt.text,
            "doc_to_target": s.scoring.target,
            "generation_kwargs": generation,
            "lmms_eval_specific_kwargs": kwargs,
            "scorer": s.scoring.scorer.name(),
            "metric_list": s.metrics.iter().map(|m| json!({
                "metric": m.name, "aggregation": m.aggregation.name(), "higher_is_better": true,
            })).collect::<Vec<_>>(),
            "task_file_blake3": blake3::hash(self.source.as_bytes()).to_hex().to_string(),
        });
        if let Some(c) = &s.dataset.config {
            config["dataset_name"] = json!(c);
        }
        if let Some(f) = &s.scoring.filter {
            config["filter_list"] = json!([{"name": f.name, "filter": format!("{:?}", f.kind)}]);
        }
        config
    }

    fn prompt(&self, doc: &Row) -> Result<Prompt, TaskError> {
        let text = self.render(TEXT, doc)?;
        let mut parts = Vec::new();
        for column in &self.spec.prompt.images {
            if doc.get(column).is_none() {
                return Err(row_error(
                    doc,
                    format!("`prompt.images` names column `{column}`, which the dataset lacks"),
                ));
            }
            let bytes = doc
                .image(column)?
                .ok_or_else(|| row_error(doc, format!("image column `{column}` is empty")))?;
            parts.push(PromptPart::Image {
                column: column.clone(),
                bytes,
            });
        }
        for column in &self.spec.prompt.optional_images {
            if let Some(bytes) = doc.image(column)? {
                parts.push(PromptPart::Image {
                    column: column.clone(),
                    bytes,
                });
            }
        }
        parts.push(PromptPart::Text(text.clone()));
        Ok(Prompt { input: text, parts })
    }

    fn judge_prompt(&self, doc: &Row, response: &str) -> Result<Option<String>, TaskError> {
        self.judge_prompt_for(doc, response)
    }

    fn judge_prompt_version(&self) -> Option<String> {
        match &self.spec.scoring.scorer {
            ScorerSpec::Judge {
                prompt, verdict, ..
            } => Some(crate::judge::prompt_version(
                &format!("{}:{verdict:?}", self.spec.task),
                prompt,
            )),
            _ => None,
        }
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
        let mut per_sample: Vec<Vec<(usize, Item)>> = Vec::with_capacity(docs.len());
        for (i, (doc, response)) in docs.iter().zip(responses).enumerate() {
            let target = self.render(TARGET, doc)?;
            let (id, id_value) = self.row_id(doc)?;
            let reply = judged.get(i).and_then(Option::as_deref);
            let outcome = self.score_one(doc, response, &target, reply)?;
            let mut fields = Map::new();
            let mut items = Vec::new();
            for (mi, metric) in self.spec.metrics.iter().enumerate() {
                if self.applies(metric, doc)? {
                    fields.insert(metric.name.clone(), self.field(&id_value, &outcome.item));
                    items.push((mi, outcome.item.clone()));
                }
            }
            samples.push(SampleScore {
                id,
                target,
                parsed: outcome.parsed,
                score: outcome.item.score,
                fields,
            });
            per_sample.push(items);
        }
        let mut metrics = Vec::new();
        for (mi, metric) in self.spec.metrics.iter().enumerate() {
            let items: Vec<Item> = per_sample
                .iter()
                .flatten()
                .filter(|(m, _)| *m == mi)
                .map(|(_, item)| item.clone())
                .collect();
            // lmms-eval reports only metrics some sample produced.
            if items.is_empty() {
                continue;
            }
            let (value, stderr) = aggregate(metric.aggregation, &items);
            let scores: Vec<f64> = items.iter().map(|i| i.score).collect();
            metrics.push(Metric {
                name: metric.name.clone(),
                filter: self.filter_name().to_string(),
                value,
                stderr,
                stderr_clt: stderr_clt(&scores),
            });
        }
        let (details, summary) = self.breakdown(docs, &per_sample)?;
        Ok(TaskScores {
            samples,
            metrics,
            details,
            summary,
        })
    }
}
