//! Parquet rows as JSON objects, through the parquet crate's record API (no arrow).

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Number, Value};

use crate::error::{DataError, Location, Result, Unit};

/// Feeds every row of `path` to `sink` as a JSON object. Nested lists, structs and maps are
/// converted recursively; binary values that are valid UTF-8 become strings, others lists of
/// bytes; non-finite floats become `null`; decimals become strings; dates and timestamps
/// their integer value (days, milliseconds or microseconds since the epoch).
pub(crate) fn read(path: &Path, sink: &mut dyn FnMut(Location, Value) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let perr = |message: String| DataError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    // The record API panics on a few physical/logical type combinations it does not
    // implement; a malformed or unusual file must be an error, never a crash.
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
        let reader = SerializedFileReader::new(file).map_err(|e| perr(message(&e)))?;
        let rows = reader.get_row_iter(None).map_err(|e| perr(message(&e)))?;
        for (i, row) in rows.enumerate() {
            let at = Location {
                file: path.to_path_buf(),
                unit: Unit::Row,
                index: i + 1,
            };
            let row = row.map_err(|e| DataError::Record {
                at: at.clone(),
                problem: format!("parquet: {}", message(&e)),
            })?;
            sink(at, row_to_json(&row))?;
        }
        Ok(())
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unsupported file".to_string());
            Err(perr(format!("cannot decode: {what}")))
        }
    }
}

/// The parquet crate's message without its "Parquet error: " prefix.
fn message(e: &parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    text.strip_prefix("Parquet error: ")
        .unwrap_or(&text)
        .to_string()
}

fn row_to_json(row: &Row) -> Value {
    let mut out = Map::new();
    for (name, field) in row.get_column_iter() {
        out.insert(name.clone(), field_to_json(field));
    }
    Value::Object(out)
}

fn float(x: f64) -> Value {
    Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn field_to_json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => Value::from(*n),
        Field::Short(n) => Value::from(*n),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => Value::from(*n),
        Field::UByte(n) => Value::from(*n),
        Field::UShort(n) => Value::from(*n),
        Field::UInt(n) => Value::from(*n),
        Field::ULong(n) => Value::from(*n),
        Field::Float16(x) => float(f64::from(*x)),
        Field::Float(x) => float(f64::from(*x)),
        Field::Double(x) => float(*x),
        Field::Decimal(_) => Value::String(field.to_string()),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Array(b.data().iter().map(|&x| Value::from(x)).collect()),
        },
        Field::Date(d) => Value::from(*d),
        Field::TimeMillis(t) => Value::from(*t),
        Field::TimeMicros(t) => Value::from(*t),
        Field::TimestampMillis(t) => Value::from(*t),
        Field::TimestampMicros(t) => Value::from(*t),
        Field::Group(row) => row_to_json(row),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_to_json).collect())
        }
        Field::MapInternal(map) => {
            let mut out = Map::new();
            for (k, v) in map.entries() {
                let key = match field_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, field_to_json(v));
            }
            Value::Object(out)
        }
    }
}
