//! Columnar tables and their parquet files (the only module that knows arrow and parquet).
//!
//! Written files use snappy compression, one row group per call, and arrow types as LeRobot
//! writes them: vectors as `fixed_size_list<float32>[N]`, scalars as plain columns, indices as
//! int64. Reading is lenient: vectors may be fixed-size or variable lists of float32/float64,
//! integers of any width, and unknown column types (image structs …) are skipped.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::durable;
use crate::error::{DatasetError, Result};

/// One column's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Fixed-length float vectors, row-major: `values.len() == rows * dim`.
    F32Vec {
        /// Components per row.
        dim: usize,
        /// Values.
        values: Vec<f32>,
    },
    /// float32 scalars.
    F32(Vec<f32>),
    /// float64 scalars.
    F64(Vec<f64>),
    /// Integers.
    I64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    Str(Vec<String>),
    /// Lists of strings.
    StrList(Vec<Vec<String>>),
}

impl Column {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Column::F32Vec { dim, values } => values.len() / (*dim).max(1),
            Column::F32(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Str(v) => v.len(),
            Column::StrList(v) => v.len(),
        }
    }

    /// Appends `other` (same variant and dim) to `self`.
    pub fn extend(&mut self, other: &Column) -> bool {
        match (self, other) {
            (Column::F32Vec { dim: a, values: v }, Column::F32Vec { dim: b, values: w }) if a == b => {
                v.extend_from_slice(w)
            }
            (Column::F32(v), Column::F32(w)) => v.extend_from_slice(w),
            (Column::F64(v), Column::F64(w)) => v.extend_from_slice(w),
            (Column::I64(v), Column::I64(w)) => v.extend_from_slice(w),
            (Column::Bool(v), Column::Bool(w)) => v.extend_from_slice(w),
            (Column::Str(v), Column::Str(w)) => v.extend_from_slice(w),
            (Column::StrList(v), Column::StrList(w)) => v.extend_from_slice(w),
            _ => return false,
        }
        true
    }

    /// Row `i` as f64 components (vectors: all components; scalars: one).
    pub fn row_f64(&self, i: usize) -> Vec<f64> {
        match self {
            Column::F32Vec { dim, values } => values[i * dim..(i + 1) * dim].iter().map(|x| f64::from(*x)).collect(),
            Column::F32(v) => vec![f64::from(v[i])],
            Column::F64(v) => vec![v[i]],
            Column::I64(v) => vec![v[i] as f64],
            Column::Bool(v) => vec![f64::from(u8::from(v[i]))],
            Column::Str(_) | Column::StrList(_) => Vec::new(),
        }
    }

    /// Integer view (ints as-is, floats truncated); `None` for other types.
    pub fn as_i64(&self) -> Option<Vec<i64>> {
        match self {
            Column::I64(v) => Some(v.clone()),
            Column::F32(v) => Some(v.iter().map(|x| *x as i64).collect()),
            Column::F64(v) => Some(v.iter().map(|x| *x as i64).collect()),
            Column::F32Vec { dim: 1, values } => Some(values.iter().map(|x| *x as i64).collect()),
            _ => None,
        }
    }

    /// Float view of a scalar column (`None` for vectors and strings).
    pub fn as_f64(&self) -> Option<Vec<f64>> {
        match self {
            Column::F32(v) => Some(v.iter().map(|x| f64::from(*x)).collect()),
            Column::F64(v) => Some(v.clone()),
            Column::I64(v) => Some(v.iter().map(|x| *x as f64).collect()),
            Column::Bool(v) => Some(v.iter().map(|x| f64::from(u8::from(*x))).collect()),
            Column::F32Vec { dim: 1, values } => Some(values.iter().map(|x| f64::from(*x)).collect()),
            _ => None,
        }
    }

    /// Boolean view (bools as-is, numbers ≠ 0).
    pub fn as_bool(&self) -> Option<Vec<bool>> {
        match self {
            Column::Bool(v) => Some(v.clone()),
            other => other.as_f64().map(|v| v.iter().map(|x| *x != 0.0).collect()),
        }
    }
}

/// Named columns of equal length, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Columns in file order.
    pub columns: Vec<(String, Column)>,
}

impl Table {
    /// Number of rows (of the first column).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.rows())
    }

    /// The column called `name`.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Appends a column.
    pub fn push(&mut self, name: &str, column: Column) {
        self.columns.push((name.to_string(), column));
    }

    /// Appends `other`'s rows (columns matched by name; both must have the same columns).
    pub fn append(&mut self, other: &Table) -> bool {
        if self.columns.is_empty() {
            *self = other.clone();
            return true;
        }
        if self.columns.len() != other.columns.len() {
            return false;
        }
        for (name, col) in &mut self.columns {
            match other.get(name) {
                Some(o) if col.extend(o) => {}
                _ => return false,
            }
        }
        true
    }
}

fn to_arrow(name: &str, col: &Column) -> Result<(Field, ArrayRef), String> {
    let err = |e: arrow_schema::ArrowError| format!("column {name}: {e}");
    Ok(match col {
        Column::F32Vec { dim, values } => {
            let item = Arc::new(Field::new("element", DataType::Float32, true));
            let size = i32::try_from(*dim).map_err(|e| e.to_string())?;
            let arr =
                FixedSizeListArray::try_new(item.clone(), size, Arc::new(Float32Array::from(values.clone())), None)
                    .map_err(err)?;
            (Field::new(name, DataType::FixedSizeList(item, size), true), Arc::new(arr))
        }
        Column::F32(v) => (Field::new(name, DataType::Float32, true), Arc::new(Float32Array::from(v.clone()))),
        Column::F64(v) => (Field::new(name, DataType::Float64, true), Arc::new(Float64Array::from(v.clone()))),
        Column::I64(v) => (Field::new(name, DataType::Int64, true), Arc::new(Int64Array::from(v.clone()))),
        Column::Bool(v) => (Field::new(name, DataType::Boolean, true), Arc::new(BooleanArray::from(v.clone()))),
        Column::Str(v) => (Field::new(name, DataType::Utf8, true), Arc::new(StringArray::from(v.clone()))),
        Column::StrList(v) => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for row in v {
                for s in row {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            let arr = b.finish();
            (Field::new(name, arr.data_type().clone(), true), Arc::new(arr))
        }
    })
}

/// Writes `table` to `path` atomically (temporary sibling, fsync, rename), snappy-compressed,
/// with `metadata` as schema key-value metadata.
pub fn write_parquet(path: &Path, table: &Table, metadata: HashMap<String, String>) -> Result<()> {
    durable::ensure_parent(path)?;
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (name, col) in &table.columns {
        let (f, a) = to_arrow(name, col).map_err(|e| DatasetError::parquet(path, e))?;
        fields.push(f);
        arrays.push(a);
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| DatasetError::parquet(path, e))?;
    let tmp = durable::temp_sibling(path);
    {
        let file = File::create(&tmp).map_err(|e| DatasetError::io(&tmp, e))?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| DatasetError::parquet(&tmp, e))?;
        w.write(&batch).map_err(|e| DatasetError::parquet(&tmp, e))?;
        let file = w.into_inner().map_err(|e| DatasetError::parquet(&tmp, e))?;
        file.sync_all().map_err(|e| DatasetError::io(&tmp, e))?;
    }
    durable::commit(&tmp, path)
}

fn floats(a: &dyn Array) -> Option<Vec<f32>> {
    match a.data_type() {
        DataType::Float32 => Some(a.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => Some(a.as_primitive::<Float64Type>().values().iter().map(|x| *x as f32).collect()),
        _ => None,
    }
}

fn from_arrow(a: &dyn Array) -> Option<Column> {
    Some(match a.data_type() {
        DataType::FixedSizeList(_, size) => {
            let l = a.as_fixed_size_list();
            let dim = *size as usize;
            let values = floats(l.values().as_ref())?;
            let start = l.offset() * dim;
            Column::F32Vec { dim, values: values[start..start + l.len() * dim].to_vec() }
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let (offsets, values): (Vec<usize>, ArrayRef) = match a.data_type() {
                DataType::List(_) => {
                    let l = a.as_list::<i32>();
                    (l.value_offsets().iter().map(|o| *o as usize).collect(), l.values().clone())
                }
                _ => {
                    let l = a.as_list::<i64>();
                    (l.value_offsets().iter().map(|o| *o as usize).collect(), l.values().clone())
                }
            };
            if let Some(s) = values.as_string_opt::<i32>() {
                let rows = offsets.windows(2).map(|w| (w[0]..w[1]).map(|i| s.value(i).to_string()).collect()).collect();
                return Some(Column::StrList(rows));
            }
            let v = floats(values.as_ref())?;
            let lens: Vec<usize> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
            let dim = lens.first().copied().unwrap_or(0);
            if lens.iter().any(|l| *l != dim) {
                return None;
            }
            let start = offsets.first().copied().unwrap_or(0);
            Column::F32Vec { dim, values: v[start..start + lens.len() * dim].to_vec() }
        }
        DataType::Float32 => Column::F32(a.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => Column::F64(a.as_primitive::<Float64Type>().values().to_vec()),
        DataType::Int64 => Column::I64(a.as_primitive::<Int64Type>().values().to_vec()),
        DataType::Int32 => Column::I64(a.as_primitive::<Int32Type>().values().iter().map(|x| i64::from(*x)).collect()),
        DataType::Int16 => Column::I64(a.as_primitive::<Int16Type>().values().iter().map(|x| i64::from(*x)).collect()),
        DataType::Int8 => Column::I64(a.as_primitive::<Int8Type>().values().iter().map(|x| i64::from(*x)).collect()),
        DataType::UInt32 => {
            Column::I64(a.as_primitive::<UInt32Type>().values().iter().map(|x| i64::from(*x)).collect())
        }
        DataType::UInt64 => Column::I64(a.as_primitive::<UInt64Type>().values().iter().map(|x| *x as i64).collect()),
        DataType::Boolean => Column::Bool(a.as_boolean().iter().map(|x| x.unwrap_or(false)).collect()),
        DataType::Utf8 => Column::Str(a.as_string::<i32>().iter().map(|x| x.unwrap_or("").to_string()).collect()),
        DataType::LargeUtf8 => Column::Str(a.as_string::<i64>().iter().map(|x| x.unwrap_or("").to_string()).collect()),
        _ => return None,
    })
}

/// A parquet file read into memory, with its schema metadata.
#[derive(Clone, Debug, Default)]
pub struct ParquetFile {
    /// Columns of supported types, in file order.
    pub table: Table,
    /// Schema key-value metadata (`pandas`, `huggingface` …).
    pub metadata: HashMap<String, String>,
    /// Columns skipped because their type is not supported (name, arrow type).
    pub skipped: Vec<(String, String)>,
}

/// Reads a whole parquet file. Truncated or non-parquet files give an error naming the file.
pub fn read_parquet(path: &Path) -> Result<ParquetFile> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| DatasetError::parquet(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(65536).build().map_err(|e| DatasetError::parquet(path, e))?;
    let mut out = ParquetFile { metadata: schema.metadata().clone().into_iter().collect(), ..Default::default() };
    let mut first = true;
    for batch in reader {
        let batch = batch.map_err(|e| DatasetError::parquet(path, e))?;
        let mut part = Table::default();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            match from_arrow(array.as_ref()) {
                Some(c) => part.push(field.name(), c),
                None if first => out.skipped.push((field.name().clone(), field.data_type().to_string())),
                None => {}
            }
        }
        first = false;
        if !out.table.append(&part) {
            return Err(DatasetError::parquet(path, "row groups disagree on column types"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_column_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        let mut t = Table::default();
        t.push("v", Column::F32Vec { dim: 2, values: vec![1.0, 2.0, 3.0, 4.0] });
        t.push("f", Column::F32(vec![0.5, 1.5]));
        t.push("d", Column::F64(vec![0.25, 2.5]));
        t.push("i", Column::I64(vec![7, -1]));
        t.push("b", Column::Bool(vec![true, false]));
        t.push("s", Column::Str(vec!["a".into(), "b".into()]));
        t.push("l", Column::StrList(vec![vec!["x".into(), "y".into()], vec![]]));
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        write_parquet(&path, &t, meta).expect("write");
        let back = read_parquet(&path).expect("read");
        assert_eq!(back.table, t);
        assert_eq!(back.metadata.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn truncated_file_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        let mut t = Table::default();
        t.push("i", Column::I64((0..1000).collect()));
        write_parquet(&path, &t, HashMap::new()).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        let err = read_parquet(&path).expect_err("truncated").to_string();
        assert!(err.contains("t.parquet"), "{err}");
    }
}
