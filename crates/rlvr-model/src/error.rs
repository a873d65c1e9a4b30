//! Typed errors of the model crate. Every variant that comes from a file names it.

use std::path::PathBuf;

/// What went wrong while loading, running or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON (line and column are those of serde_json).
    #[error("{path}:{line}:{column}: invalid JSON: {msg}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    /// A field of a configuration file is missing, has the wrong type, or a value rlvr does not support.
    #[error("{path}: field `{field}`: {msg}")]
    Config {
        path: PathBuf,
        field: String,
        msg: String,
    },
    /// A tensor the architecture needs is absent from the checkpoint.
    #[error("{path}: missing tensor `{tensor}`")]
    MissingTensor { path: PathBuf, tensor: String },
    /// A tensor is present but has the wrong shape.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        path: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    /// A safetensors file could not be read or written.
    #[error("{path}: safetensors: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    /// The tokenizer could not be loaded or failed on an input.
    #[error("{path}: tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    /// A chat template failed to compile or to render.
    #[error("chat template ({source_name}): {msg}")]
    Template { source_name: String, msg: String },
    /// A device that cannot be opened (not compiled in, no such GPU, no driver).
    #[error("device `{spec}`: {msg}")]
    Device { spec: String, msg: String },
    /// Bad arguments to a model call (shapes, ids out of the vocabulary, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// An error raised by candle while computing.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the model crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        ModelError::Config {
            path: path.into(),
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Reads a JSON file into a `serde_json::Value`, with file/line/column on error.
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}
