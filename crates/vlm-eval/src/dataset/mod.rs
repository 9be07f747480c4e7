//! Benchmark datasets as the hub publishes them: parquet shards of one split, read row by
//! row into plain values. `doc_id` is the row index within the split, as in lmms-eval.

mod error;
mod locate;
mod rows;
mod spec;

use std::path::Path;

pub use error::DatasetError;
pub use locate::{locate, Located, Origin};
pub use rows::{read_rows, Cell, Row};
pub use spec::DatasetSpec;

/// One split of a dataset, loaded.
#[derive(Debug)]
pub struct Dataset {
    pub repo: String,
    pub split: String,
    pub located: Located,
    pub rows: Vec<Row>,
}

impl Dataset {
    /// Finds (see [`locate`]) and reads the split `spec` names.
    pub fn load(spec: &DatasetSpec, data_dir: Option<&Path>) -> Result<Self, DatasetError> {
        let located = locate(spec, data_dir)?;
        let mut rows = Vec::new();
        for file in &located.files {
            rows.extend(read_rows(file, rows.len())?);
        }
        Ok(Self {
            repo: spec.repo.clone(),
            split: spec.split.clone(),
            located,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_datasets() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval-datasets")
    }

    #[test]
    fn reads_the_shipped_mme_sample_in_the_hub_schema() {
        let ds = Dataset::load(
            &DatasetSpec::new("lmms-lab/MME", "test"),
            Some(&eval_datasets()),
        )
        .unwrap();
        assert_eq!(ds.rows.len(), 20);
        let first = &ds.rows[0];
        assert_eq!(first.doc_id, 0);
        let names: Vec<&str> = first.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["question_id", "image", "question", "answer", "category"]
        );
        assert!(first
            .str("question")
            .unwrap()
            .ends_with("Please answer yes or no."));
        let png = first.image("image").unwrap().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(ds.rows.last().unwrap().doc_id, ds.rows.len() - 1);
        let err = first.str("image").unwrap_err().to_string();
        assert!(
            err.contains("row 0: column `image` is not a string"),
            "{err}"
        );
        assert!(first
            .str("nope")
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }

    #[test]
    fn reads_mmmu_image_columns_with_nulls() {
        let ds = Dataset::load(
            &DatasetSpec::new("lmms-lab/MMMU", "validation"),
            Some(&eval_datasets()),
        )
        .unwrap();
        let multi = ds
            .rows
            .iter()
            .find(|r| r.image("image_2").unwrap().is_some())
            .expect("a multi-image item");
        assert!(multi.image("image_1").unwrap().is_some());
        assert_eq!(multi.image("image_7").unwrap(), None);
        assert!(multi.str("options").unwrap().starts_with('['));
        let doc = multi.to_json_without_images();
        assert!(doc.get("image_1").is_none() && doc.get("id").is_some());
    }

    #[test]
    fn a_missing_dataset_says_where_it_looked_and_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: the only test in this crate that reads or writes these variables.
        unsafe {
            std::env::set_var("HF_HUB_CACHE", dir.path());
            std::env::set_var("HF_HUB_OFFLINE", "1");
        }
        let err =
            Dataset::load(&DatasetSpec::new("lmms-lab/MME", "test"), Some(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().join("lmms-lab/MME").display().to_string()));
        assert!(msg.contains("datasets--lmms-lab--MME"), "{msg}");
        assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
        assert!(
            msg.contains("huggingface-cli download lmms-lab/MME"),
            "{msg}"
        );

        // A cached snapshot, laid out as huggingface_hub writes it, is found next.
        let repo = dir.path().join("datasets--lmms-lab--MME");
        let snapshot = repo.join("snapshots/abc123/data");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let shipped = eval_datasets().join("lmms-lab/MME/data/test-00000-of-00001.parquet");
        std::fs::copy(&shipped, snapshot.join("test-00000-of-00001.parquet")).unwrap();
        let ds = Dataset::load(&DatasetSpec::new("lmms-lab/MME", "test"), None).unwrap();
        assert_eq!(ds.located.revision.as_deref(), Some("abc123"));
        assert!(matches!(ds.located.origin, Origin::HfCache(_)));
        assert!(!ds.rows.is_empty());

        // The same data under an alias id is found locally before the hub is tried.
        let data_dir = dir.path().join("data");
        let alias = data_dir.join("lmms-lab-encoder/MMMU/data");
        std::fs::create_dir_all(&alias).unwrap();
        let shipped = eval_datasets().join("lmms-lab/MMMU/data/validation-00000-of-00001.parquet");
        std::fs::copy(&shipped, alias.join("validation-00000-of-00001.parquet")).unwrap();
        let spec = DatasetSpec {
            aliases: vec!["lmms-lab-encoder/MMMU".into()],
            ..DatasetSpec::new("lmms-lab/MMMU", "validation")
        };
        let ds = Dataset::load(&spec, Some(&data_dir)).unwrap();
        assert_eq!(
            ds.located.origin,
            Origin::DataDir(data_dir.join("lmms-lab-encoder/MMMU"))
        );
    }
}
