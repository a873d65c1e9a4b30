//! Typed errors of the verifier crate: configuration problems, naming the field at fault.
//! (Problems with a single response are never errors: they are `invalid`/`error` outcomes.)

/// A verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No verifier has this name.
    #[error("unknown verifier `{0}` (built in: math, format; composites via a JSON spec)")]
    UnknownVerifier(String),
    /// A field of a verifier spec or configuration is missing or has a bad value.
    #[error("verifier spec: field `{field}`: {msg}")]
    Config { field: String, msg: String },
    /// A regular expression of a format rule does not compile.
    #[error("format rule `{rule}`: bad regex: {msg}")]
    Regex { rule: String, msg: String },
}

/// Result alias of the verifier crate.
pub type Result<T, E = VerifyError> = std::result::Result<T, E>;
