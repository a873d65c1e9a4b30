//! The end-to-end RLVR loop behind `rlvr train`: the built-in policy and its supervised
//! warm-up, prompt sources, the RL step (rollout → verify → advantages → update), held-out
//! evaluation, checkpoints and resume.
//!
//! Module map:
//! - [`config`]: `TrainConfig` (TOML + `--set`), presets through `[algorithm] preset`;
//! - [`builtin`]: the built-in byte-level tokenizer and small Qwen2 policy;
//! - [`warmup`]: supervised warm-up on worked solutions, cached;
//! - [`prompts`]: prompt streams and rendering;
//! - [`progress`]: progress bars;
//! - [`batch`]: packing (prompt, response) rows; response log-probs;
//! - [`trainer`]: one RL step as named phases over one [`trainer::StepBatch`]: [`collect`]
//!   (prompts → rollouts → rewards → filtering), [`logprobs`] (old, reference, values),
//!   [`advantage`], [`update`]; [`metrics`] times the phases and holds the data metrics;
//! - [`evaluate`]: held-out evaluation;
//! - [`checkpoint`]: checkpoints and resume state;
//! - [`run`]: a whole run.

#![warn(missing_docs)]

pub mod advantage;
pub mod batch;
pub mod builtin;
pub mod checkpoint;
pub mod collect;
pub mod config;
pub mod critic;
pub mod device_check;
pub mod error;
pub mod evaluate;
pub mod logprobs;
pub mod memory;
pub mod metrics;
pub mod progress;
pub mod prompts;
pub mod run;
pub mod step_rewards;
pub mod trainer;
pub mod update;
pub mod warmup;

pub use config::TrainConfig;
pub use error::{LoopError, Result};
pub use run::{train, RunOptions};
