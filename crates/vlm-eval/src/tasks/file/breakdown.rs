//! A task file's metrics broken down by the values of its `scoring.breakdown` columns.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::aggregate::{aggregate, Item};
use super::FileTask;
use crate::dataset::{Cell, Row};
use crate::tasks::task::{row_error, Task, TaskError};

impl FileTask {
    /// Every metric broken down by each `scoring.breakdown` column's values (`details.by`,
    /// with the primary metric's name for the dashboard's bars).
    pub(super) fn breakdown(
        &self,
        docs: &[&Row],
        per_sample: &[Vec<(usize, Item)>],
    ) -> Result<(Value, String), TaskError> {
        let mut details = Map::new();
        let mut summary = String::new();
        for column in &self.spec.scoring.breakdown {
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, doc) in docs.iter().enumerate() {
                let value = doc.get(column).and_then(Cell::to_json).ok_or_else(|| {
                    row_error(doc, format!("breakdown column `{column}` is missing"))
                })?;
                let key = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                groups.entry(key).or_default().push(i);
            }
            summary += &format!("{} by {column}:\n", self.spec.task);
            let mut by_value = Map::new();
            for (value, members) in groups {
                let mut entry = Map::new();
                entry.insert("n".into(), json!(members.len()));
                summary += &format!("  {value:<24} {:>5}", members.len());
                for (mi, metric) in self.spec.metrics.iter().enumerate() {
                    let items: Vec<Item> = members
                        .iter()
                        .flat_map(|&i| per_sample[i].iter())
                        .filter(|(m, _)| *m == mi)
                        .map(|(_, item)| item.clone())
                        .collect();
                    if !items.is_empty() {
                        let (v, _) = aggregate(metric.aggregation, &items);
                        entry.insert(metric.name.clone(), json!(v));
                        summary += &format!("  {} {v:.4}", metric.name);
                    }
                }
                summary.push('\n');
                by_value.insert(value, Value::Object(entry));
            }
            details.insert(column.clone(), Value::Object(by_value));
        }
        let primary = self.primary_metric();
        Ok((json!({ "by": details, "primary_metric": primary }), summary))
    }
}
