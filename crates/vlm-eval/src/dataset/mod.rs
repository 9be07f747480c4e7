//! Benchmark datasets as the hub publishes them: parquet shards of one split, read row by
//! row into plain values. `doc_id` is the row index within the split, as in lmms-eval.

mod locate;
mod rows;

use std::path::{Path, PathBuf};

pub use locate::{locate, shards_in, Located, Origin};
pub use rows::{read_rows, Cell, Row};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "dataset {repo} (split `{split}`) not found; looked in: {}. Get it with \
         `huggingface-cli download {repo} --repo-type dataset --local-dir DIR/{repo}` and pass \
         `--data-dir DIR`, or run online to download it into the Hugging Face cache",
        looked.join("; ")
    )]
    NotFound {
        repo: String,
        split: String,
        looked: Vec<String>,
    },
    #[error("cannot read {}: {reason}", file.display())]
    Parquet { file: PathBuf, reason: String },
    #[error("row {doc_id}: column `{column}` {problem}")]
    Column {
        doc_id: usize,
        column: String,
        problem: String,
    },
}

/// One split of a dataset, loaded.
#[derive(Debug)]
pub struct Dataset {
    pub repo: String,
    pub split: String,
    pub located: Located,
    pub rows: Vec<Row>,
}

impl Dataset {
    /// Finds (see [`locate`]) and reads `split` of `repo`.
    pub fn load(
        repo: &str,
        aliases: &[&str],
        split: &str,
        data_dir: Option<&Path>,
    ) -> Result<Self, DatasetError> {
        let located = locate(repo, aliases, split, data_dir)?;
        let mut rows = Vec::new();
        for file in &located.files {
            rows.extend(read_rows(file, rows.len())?);
        }
        Ok(Self {
            repo: repo.to_string(),
            split: split.to_string(),
            located,
            rows,
        })
    }
}
