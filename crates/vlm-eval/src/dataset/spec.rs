//! Which split of which hub dataset a task reads: repository, the same data's other ids,
//! the config (a subfolder of the repository, `datasets`' `name`), and the split.

/// A dataset split as the hub names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    /// `lmms-lab/POPE`.
    pub repo: String,
    /// Other repository ids the same data is published under, looked for locally too
    /// (lmms-eval 0.7.3 names `lmms-lab-encoder/*`).
    pub aliases: Vec<String>,
    /// The config whose folder holds the split (`ScienceQA-IMG` in `lmms-lab/ScienceQA`);
    /// `None` for repositories with one config (`data/<split>-*.parquet`).
    pub config: Option<String>,
    pub split: String,
}

impl DatasetSpec {
    pub fn new(repo: &str, split: &str) -> Self {
        Self {
            repo: repo.into(),
            aliases: Vec::new(),
            config: None,
            split: split.into(),
        }
    }

    /// The ids to look under locally, the repository's own first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.repo.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// `repo` with its config, for messages: `lmms-lab/ScienceQA (ScienceQA-IMG)`.
    pub fn describe(&self) -> String {
        match &self.config {
            Some(c) => format!("{} ({c})", self.repo),
            None => self.repo.clone(),
        }
    }
}
