//! Parquet rows as plain values: strings, numbers, lists (the `datasets` `Sequence` /
//! `List` features, one parquet list either way), and HF `Image` structs
//! (`struct<bytes: binary, path: string>`).

use std::path::Path;
use std::sync::Arc;

use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;

use super::error::DatasetError;

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
    /// A list column's values.
    List(Vec<Cell>),
    /// A struct column's fields, in order (MathVista's `metadata`).
    Struct(Vec<(String, Cell)>),
    /// Anything else (maps, dates), kept as its display text.
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
                    return Cell::Struct(
                        columns
                            .into_iter()
                            .map(|(name, field)| (name, Cell::from_field(field)))
                            .collect(),
                    );
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
            Field::ListInternal(list) => Cell::List(
                list.elements()
                    .iter()
                    .cloned()
                    .map(Cell::from_field)
                    .collect(),
            ),
            other => Cell::Other(other.to_string()),
        }
    }

    /// The cell as JSON, binary cells (images, bytes) left out (`None`).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => (*b).into(),
            Cell::Int(i) => (*i).into(),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Cell::Str(s) | Cell::Other(s) => s.clone().into(),
            Cell::List(items) => Value::Array(items.iter().filter_map(Cell::to_json).collect()),
            Cell::Struct(fields) => Value::Object(
                fields
                    .iter()
                    .filter_map(|(k, c)| Some((k.clone(), c.to_json()?)))
                    .collect(),
            ),
            Cell::Bytes(_) | Cell::Image { .. } => return None,
        })
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

    /// A list-of-strings column's values (`Sequence(Value("string"))` or
    /// `List(Value("string"))` in the dataset card).
    pub fn str_list(&self, column: &str) -> Result<Vec<&str>, DatasetError> {
        match self.get(column) {
            Some(Cell::List(items)) => items
                .iter()
                .map(|c| match c {
                    Cell::Str(s) => Ok(s.as_str()),
                    other => Err(self.problem(column, format!("holds a non-string: {other:?}"))),
                })
                .collect(),
            Some(other) => Err(self.problem(column, format!("is not a list: {other:?}"))),
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
        let map = self
            .columns
            .iter()
            .filter_map(|(name, cell)| Some((name.clone(), cell.to_json()?)))
            .collect();
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
