//! Rewards: the verification pool that training (`rlvr train`'s RL step and held-out
//! evaluation) and `rlvr eval` share.
//!
//! - [`Verifiers`]: the verifiers of a run, one per `data_source` where configured, else the
//!   default (registry specs, see [`rlvr_verify::registry`]);
//! - [`verify_all`]: [`Job`]s verified with a bounded number of calls in flight on tokio's
//!   blocking pool, jobs of one verifier chunked by its [`rlvr_verify::Verifier::batch_hint`],
//!   each call bounded by a timeout; a timeout, a panic or a wrong number of outcomes is an
//!   `error` outcome and the run goes on.
//!
//! Where it sits: after the rollout (which makes completions) and before the trainer (which
//! turns outcomes into advantages). Turning rollout completions into jobs
//! (`rlvr_eval::jobs::verify_jobs`) is not here: completions are rlvr-rollout's type, and this
//! crate must never depend on the model (the workspace's architecture test checks it), so that
//! verification can be built, tested and reused without candle.
//!
//! The pool is hand-written over tokio (a semaphore and `spawn_blocking`) because verifiers
//! are synchronous, CPU-bound calls of very different costs (a regex, a sandboxed program, a
//! reward model's forward pass): what it adds over a plain thread pool is batching per
//! verifier, per-chunk deadlines and outcomes returned in job order.

#![warn(missing_docs)]

pub mod pool;

pub use pool::{verify_all, Job, Verifiers};
