//! Errors of the reward-model crate. Data errors name the file, the line and the field.

use std::path::PathBuf;

/// What went wrong while loading, training, scoring or saving a reward model.
#[derive(Debug, thiserror::Error)]
pub enum RmError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data line is malformed: `FILE:LINE: field `F`: why` (`FILE:LINE: why` when the
    /// line as a whole is at fault, `field` = `-`).
    #[error("{path}:{line}: {}{msg}", field_prefix(field))]
    Data {
        path: PathBuf,
        line: usize,
        field: String,
        msg: String,
    },
    /// A setting is missing or has a value rlvr does not support.
    #[error("reward model setting `{field}`: {msg}")]
    Config { field: String, msg: String },
    /// Bad input to a scoring or training call.
    #[error("reward model input: {0}")]
    Input(String),
    /// From the model crate (checkpoint, tokenizer, forward pass).
    #[error(transparent)]
    Model(#[from] rlvr_model::ModelError),
    /// From the optimiser.
    #[error(transparent)]
    Train(#[from] rlvr_train::TrainError),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl RmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RmError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(field: impl Into<String>, msg: impl Into<String>) -> Self {
        RmError::Config {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RmError> = std::result::Result<T, E>;

/// `field `F`: ` for a field at fault, nothing for the whole line (`-`).
fn field_prefix(field: &str) -> String {
    if field == "-" {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}
