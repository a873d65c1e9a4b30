//! Errors: every one names the file, the record (line, item or row, 1-based) and the field
//! where that applies, e.g. `data.jsonl:17: field "answer": missing`.

use std::fmt;
use std::path::PathBuf;

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What a [`Location`]'s number counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A line of a JSONL file (blank lines count too): shown as `file:N`.
    Line,
    /// An element of a JSON array: shown as `file: item N`.
    Item,
    /// A row of a Parquet file: shown as `file: row N`.
    Row,
}

/// A record inside a file; `index` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as given to the loader.
    pub file: PathBuf,
    /// What `index` counts.
    pub unit: Unit,
    /// 1-based line, item or row number.
    pub index: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.unit {
            Unit::Line => write!(f, "{file}:{}", self.index),
            Unit::Item => write!(f, "{file}: item {}", self.index),
            Unit::Row => write!(f, "{file}: row {}", self.index),
        }
    }
}

/// A prompt template that cannot be parsed or cannot be filled from a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Unbalanced or empty braces.
    #[error("prompt template {template:?}: {problem} at byte {position} (write {{{{ and }}}} for literal braces)")]
    Syntax {
        /// The template (shortened when long).
        template: String,
        /// Byte offset of the problem.
        position: usize,
        /// What is wrong.
        problem: String,
    },
    /// A placeholder names a field the record does not have.
    #[error(
        "prompt template {template:?}: unknown field \"{field}\" (the record has: {available})"
    )]
    UnknownField {
        /// The template (shortened when long).
        template: String,
        /// The placeholder's field name.
        field: String,
        /// The record's top-level fields, comma separated.
        available: String,
    },
    /// A placeholder names a field that is neither a string nor a number.
    #[error(
        "prompt template {template:?}: field \"{field}\" is {found}, not a string or a number"
    )]
    NotText {
        /// The template (shortened when long).
        template: String,
        /// The placeholder's field name.
        field: String,
        /// The JSON kind found (`an object`, `null`, ...).
        found: String,
    },
}

/// Everything that can go wrong while loading or splitting datasets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line (JSONL) or the whole file (JSON) is not valid JSON.
    #[error("{at}: invalid JSON: {message}")]
    Json {
        /// Where.
        at: Location,
        /// serde_json's message.
        message: String,
    },
    /// A whole JSON file is not valid JSON or not an array of objects.
    #[error("{}: {message}", path.display())]
    JsonFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A record is not a JSON object, or a row could not be decoded.
    #[error("{at}: {problem}")]
    Record {
        /// Where.
        at: Location,
        /// What is wrong.
        problem: String,
    },
    /// A field is missing or has the wrong shape.
    #[error("{at}: field \"{field}\": {problem}")]
    Field {
        /// Where.
        at: Location,
        /// The field (dotted path for nested fields).
        field: String,
        /// What is wrong (`missing`, `expected a string, found an object`, ...).
        problem: String,
    },
    /// The prompt template could not be filled from a record.
    #[error("{at}: {source}")]
    Template {
        /// Where.
        at: Location,
        /// The template problem.
        source: TemplateError,
    },
    /// A prompt template given in a configuration does not parse.
    #[error(transparent)]
    TemplateSyntax(#[from] TemplateError),
    /// A [`crate::FieldMapping`] whose options contradict each other.
    #[error("invalid field mapping: {0}")]
    InvalidMapping(String),
    /// The Parquet file could not be opened or decoded.
    #[error("{}: parquet: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The parquet crate's message.
        message: String,
    },
    /// The file's extension is not one the loader reads.
    #[error("{}: unsupported file type (expected .jsonl, .ndjson, .json or .parquet)", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// Neither a built-in dataset name nor an existing file.
    #[error("unknown dataset \"{name}\": not a built-in ({known}) and no such file")]
    UnknownDataset {
        /// What was asked for.
        name: String,
        /// The built-in names, comma separated.
        known: String,
    },
    /// A built-in dataset has no such split.
    #[error("dataset \"{name}\" has no split \"{split}\" (available: {known})")]
    UnknownSplit {
        /// The built-in name.
        name: String,
        /// The split asked for.
        split: String,
        /// Its splits, comma separated.
        known: String,
    },
    /// No shared folder was found by [`crate::default_shared_dir`].
    #[error("cannot find the shared folder (datasets, fixtures): set RLVR_SHARED; tried {tried}")]
    SharedDirNotFound {
        /// The places looked at, comma separated.
        tried: String,
    },
    /// A hold-out size that does not fit the dataset.
    #[error("invalid hold-out: {0}")]
    InvalidHoldout(String),
}

/// `a string`, `an object`, ... for messages.
pub(crate) fn kind_of(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
