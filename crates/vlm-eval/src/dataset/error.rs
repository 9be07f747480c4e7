//! Why a dataset split could not be found or read.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "dataset {repo} ({}split `{split}`) not found; looked in: {}. Get it with \
         `huggingface-cli download {repo} --repo-type dataset --local-dir DIR/{repo}` and pass \
         `--data-dir DIR`, or run online to download it into the Hugging Face cache",
        config.as_ref().map(|c| format!("config `{c}`, ")).unwrap_or_default(),
        looked.join("; ")
    )]
    NotFound {
        repo: String,
        config: Option<String>,
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
