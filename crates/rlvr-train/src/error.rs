//! Typed errors of the training crate: bad input is an error, never a panic.

/// What went wrong in a trainer computation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Tensors or slices whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A group (of completions of one prompt, or of responses to rank) with no member, or a
    /// batch with nothing in it.
    #[error("empty input: {0}")]
    Empty(String),
    /// A name (estimator, loss, aggregation mode, preset, ...) rlvr does not know.
    #[error("unknown {kind} `{name}` (known: {known})")]
    UnknownName {
        /// What kind of name (e.g. `advantage estimator`).
        kind: &'static str,
        /// The name given.
        name: String,
        /// The accepted names, comma-separated.
        known: String,
    },
    /// An out-of-range or otherwise invalid argument or configuration value.
    #[error("invalid input: {0}")]
    Input(String),
    /// A configuration (preset plus overrides) that does not deserialize.
    #[error("config: {0}")]
    Config(String),
    /// An error raised by candle while computing.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    pub(crate) fn unknown(kind: &'static str, name: &str, known: &[&str]) -> Self {
        TrainError::UnknownName {
            kind,
            name: name.to_string(),
            known: known.join(", "),
        }
    }
}
