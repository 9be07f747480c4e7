//! Parquet rows as plain values: strings, numbers, and HF `Image` structs
//! (`struct<bytes: binary, path: string>`).

use std::path::Path;
use std::sync::Arc;

use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;

use super::DatasetError;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Arc<[u8]>),
    /// The `datasets` `Image` feature: encoded bytes, and the file name it came from.
    Image {
        bytes: Option<Arc<[u8]>>,
        path: Option<String>,
    },
    /// Anything else (lists, maps, dates), kept as its display text.
    Other(String),
}

impl Cell {
    fn from_field(field: Field) -> Cell {
        match field {
            Field::Null => Cell::Null,
            Field::Bool(b) => Cell::Bool(b),
            Field::Byte(v) => Cell::Int(v.into()),
            Field::Short(v) => Cell::Int(v.into()),
            Field::Int(v) => Cell::Int(v.into()),
            Field::Long(v) => Cell::Int(v),
            Field::UByte(v) => Cell::Int(v.into()),
            Field::UShort(v) => Cell::Int(v.into()),
            Field::UInt(v) => Cell::Int(v.into()),
            Field::ULong(v) => i64::try_from(v).map_or(Cell::Float(v as f64), Cell::Int),
            Field::Float(v) => Cell::Float(v.into()),
            Field::Double(v) => Cell::Float(v),
            Field::Str(s) => Cell::Str(s),
            Field::Bytes(b) => Cell::Bytes(Arc::from(b.data())),
            Field::Group(row) => {
                let columns = row.into_columns();
                let is_image = columns.len() == 2
                    && columns.iter().any(|(n, _)| n == "bytes")
                    && columns.iter().any(|(n, _)| n == "path");
                if !is_image {
                    return Cell::Other(format!("{columns:?}"));
                }
                let mut bytes = None;
                let mut path = None;
                for (name, value) in columns {
                    match (name.as_str(), value) {
                        ("bytes", Field::Bytes(b)) => bytes = Some(Arc::from(b.data())),
                        ("path", Field::Str(s)) => path = Some(s),
                        _ => {}
                    }
                }
                Cell::Image { bytes, path }
            }
            other => Cell::Other(other.to_string()),
        }
    }
}

/// One row: its index within the split and its columns in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub doc_id: usize,
    pub columns: Vec<(String, Cell)>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&Cell> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, c)| c)
    }

    fn problem(&self, column: &str, problem: impl Into<String>) -> DatasetError {
        DatasetError::Column {
            doc_id: self.doc_id,
            column: column.to_string(),
            problem: problem.into(),
        }
    }

    /// A string column's value.
    pub fn str(&self, column: &str) -> Result<&str, DatasetError> {
        match self.get(column) {
            Some(Cell::Str(s)) => Ok(s),
            Some(other) => Err(self.problem(column, format!("is not a string: {other:?}"))),
            None => Err(self.problem(column, "is missing")),
        }
    }

    /// An image column's encoded bytes; `None` where the cell is empty (MMMU's unused
    /// `image_k` columns).
    pub fn image(&self, column: &str) -> Result<Option<Arc<[u8]>>, DatasetError> {
        match self.get(column) {
            Some(Cell::Image { bytes, .. }) => Ok(bytes.clone()),
            Some(Cell::Bytes(b)) => Ok(Some(b.clone())),
            Some(Cell::Null) => Ok(None),
            Some(other) => Err(self.problem(column, format!("is not an image: {other:?}"))),
            None => Err(self.problem(column, "is missing")),
        }
    }

    /// The row without binary cells, as JSON (for the samples file's `doc`).
    pub fn to_json_without_images(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, cell) in &self.columns {
            let value = match cell {
                Cell::Null => serde_json::Value::Null,
                Cell::Bool(b) => (*b).into(),
                Cell::Int(i) => (*i).into(),
                Cell::Float(f) => serde_json::Number::from_f64(*f)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Cell::Str(s) | Cell::Other(s) => s.clone().into(),
                Cell::Bytes(_) | Cell::Image { .. } => continue,
            };
            map.insert(name.clone(), value);
        }
        serde_json::Value::Object(map)
    }
}

/// Every row of one parquet file; `first_doc_id` is the split index of its first row.
pub fn read_rows(file: &Path, first_doc_id: usize) -> Result<Vec<Row>, DatasetError> {
    let fail = |reason: String| DatasetError::Parquet {
        file: file.to_path_buf(),
        reason,
    };
    let handle = std::fs::File::open(file).map_err(|e| fail(e.to_string()))?;
    let reader = SerializedFileReader::new(handle).map_err(|e| fail(e.to_string()))?;
    let expected = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut rows = Vec::with_capacity(expected);
    for (i, row) in reader.into_iter().enumerate() {
        let row = row.map_err(|e| fail(e.to_string()))?;
        rows.push(Row {
            doc_id: first_doc_id + i,
            columns: row
                .into_columns()
                .into_iter()
                .map(|(name, field)| (name, Cell::from_field(field)))
                .collect(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::super::Dataset;
    use super::*;

    fn eval_datasets() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval-datasets")
    }

    #[test]
    fn reads_the_shipped_mme_sample_in_the_hub_schema() {
        let ds = Dataset::load("lmms-lab/MME", &[], "test", Some(&eval_datasets())).unwrap();
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
        let ds = Dataset::load("lmms-lab/MMMU", &[], "validation", Some(&eval_datasets())).unwrap();
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
        let err = Dataset::load("lmms-lab/MME", &[], "test", Some(dir.path())).unwrap_err();
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
        let ds = Dataset::load("lmms-lab/MME", &[], "test", None).unwrap();
        assert_eq!(ds.located.revision.as_deref(), Some("abc123"));
        assert!(matches!(
            ds.located.origin,
            crate::dataset::Origin::HfCache(_)
        ));
        assert!(!ds.rows.is_empty());

        // The same data under an alias id is found locally before the hub is tried.
        let data_dir = dir.path().join("data");
        let alias = data_dir.join("lmms-lab-encoder/MMMU/data");
        std::fs::create_dir_all(&alias).unwrap();
        let shipped = eval_datasets().join("lmms-lab/MMMU/data/validation-00000-of-00001.parquet");
        std::fs::copy(&shipped, alias.join("validation-00000-of-00001.parquet")).unwrap();
        let ds = Dataset::load(
            "lmms-lab/MMMU",
            &["lmms-lab-encoder/MMMU"],
            "validation",
            Some(&data_dir),
        )
        .unwrap();
        assert_eq!(
            ds.located.origin,
            crate::dataset::Origin::DataDir(data_dir.join("lmms-lab-encoder/MMMU"))
        );
    }
}
