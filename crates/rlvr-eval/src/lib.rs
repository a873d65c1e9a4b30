//! Evaluation: building blocks shared by `rlvr train` (held-out evaluation) and `rlvr eval`.
//!
//! - [`prompts`]: an example's prompt as text and token ids (chat template or plain text);
//! - [`jobs`]: completions → verifier jobs for [`rlvr_rewards`]' pool (the verifiers of a
//!   run per `data_source`, concurrent verification with per-call timeouts, which moved there);
//! - [`backend`]: where samples come from ([`Backend`]; [`EngineBackend`] is the in-process
//!   rollout engine, an OpenAI-compatible HTTP client is another);
//! - [`evaluator`]: sample `n` per problem, verify, cache per problem ([`evaluate`]);
//! - [`results`], [`summary`]: per-sample records, and pass@K / maj@K / mean@K, status counts,
//!   lengths and per-subset breakdowns ([`summarize`]);
//! - [`rerank`]: best-of-N reranking with a second verifier (a reward model), `rerank@K`;
//! - [`config`], [`run`], [`report`]: an evaluation run on disk (`rlvr eval`): settings,
//!   run directory and resume, `samples.jsonl`, `summary.json`, `report.md`, plots.

#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod error;
pub mod evaluator;
pub mod http_backend;
pub mod jobs;
pub mod prompts;
pub mod report;
pub mod rerank;
pub mod results;
pub mod run;
pub mod summary;

pub use backend::{
    Backend, EngineBackend, EvalPrompt, GenerateParams, PromptFailure, PromptOutcome, SampleOut,
};
pub use config::EvalConfig;
pub use error::{EvalError, Result};
pub use evaluator::{evaluate, EvalOutput, EvalSettings, NoCache, ProblemCache, StoreCache};
pub use http_backend::HttpBackend;
pub use results::{ProblemResult, SampleRecord};
pub use summary::summarize;
