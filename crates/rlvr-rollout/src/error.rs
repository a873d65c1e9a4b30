//! Errors of the rollout engine.

/// What went wrong while sampling.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The model (forward pass, tokenizer) failed.
    #[error(transparent)]
    Model(#[from] rlvr_model::ModelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Sampling parameters out of range.
    #[error("invalid sampling parameters: {0}")]
    Params(String),
    /// Bad prompts (e.g. an empty one).
    #[error("invalid input: {0}")]
    Input(String),
    /// The model produced NaN or infinite logits.
    #[error("non-finite logits (row {row}, step {step})")]
    NonFinite { row: usize, step: usize },
}

pub type Result<T> = std::result::Result<T, RolloutError>;
