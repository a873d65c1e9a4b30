//! Errors of evaluation.

/// Errors of prompt rendering, sampling, verification and data.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Model or tokenizer.
    #[error(transparent)]
    Model(#[from] rlvr_model::ModelError),
    /// Sampling.
    #[error(transparent)]
    Rollout(#[from] rlvr_rollout::RolloutError),
    /// Verifier configuration.
    #[error(transparent)]
    Verify(#[from] rlvr_verify::VerifyError),
    /// Data loading.
    #[error(transparent)]
    Data(#[from] rlvr_data::DataError),
    /// The run directory or its store.
    #[error(transparent)]
    Store(#[from] rlvr_store::StoreError),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// Result with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;
