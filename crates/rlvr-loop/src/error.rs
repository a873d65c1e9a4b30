//! Errors of the loop: each names the file, field or step at fault.

use std::path::PathBuf;

/// Errors of configuration, data, model and training.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// A configuration file or override is wrong.
    #[error("{path}: {msg}")]
    Config {
        /// The file (or `--set` for overrides).
        path: String,
        /// What is wrong, naming the field.
        msg: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Model loading or computation.
    #[error(transparent)]
    Model(#[from] rlvr_model::ModelError),
    /// Sampling.
    #[error(transparent)]
    Rollout(#[from] rlvr_rollout::RolloutError),
    /// The algorithms.
    #[error(transparent)]
    Train(#[from] rlvr_train::TrainError),
    /// The verifiers.
    #[error(transparent)]
    Verify(#[from] rlvr_verify::VerifyError),
    /// Data loading.
    #[error(transparent)]
    Data(#[from] rlvr_data::DataError),
    /// Prompt rendering and evaluation (boxed: it nests the other crates' errors).
    #[error(transparent)]
    Eval(Box<rlvr_eval::EvalError>),
    /// The run store.
    #[error(transparent)]
    Store(#[from] rlvr_store::StoreError),
    /// Tensor computation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl From<rlvr_eval::EvalError> for LoopError {
    fn from(e: rlvr_eval::EvalError) -> Self {
        LoopError::Eval(Box::new(e))
    }
}

impl LoopError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LoopError::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error in `path`.
    pub fn config(path: impl Into<String>, msg: impl Into<String>) -> Self {
        LoopError::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Result with [`LoopError`].
pub type Result<T> = std::result::Result<T, LoopError>;
