//! Evaluation building blocks shared by `rlvr train` (held-out evaluation) and `rlvr eval`:
//! - [`prompts`]: an example's prompt as text and token ids (chat template or plain text);
//! - [`verify_pool`]: the verifiers of a run (per `data_source`) and concurrent verification
//!   with per-call timeouts.

#![warn(missing_docs)]

pub mod error;
pub mod prompts;
pub mod verify_pool;

pub use error::{EvalError, Result};
