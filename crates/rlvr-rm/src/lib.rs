//! Reward models for rlvr: an outcome reward model (ORM) scores a whole response, a process
//! reward model (PRM) scores every step. Both are the policy architecture (rlvr-model's
//! differentiable decoder) with a scalar head `score.weight` — Hugging Face's
//! `*ForSequenceClassification` layout with one label — so HF reward-model checkpoints load
//! and rlvr's load in transformers.
//!
//! - [`model`]: [`RewardModel`] (load, save atomically, encode, score; batched);
//! - [`data`]: the JSONL shapes (`{prompt, chosen, rejected}`, `{prompt, response, label}`,
//!   `{prompt, steps, labels}`), errors naming `FILE:LINE` and the field;
//! - [`train`]: Bradley–Terry, pointwise and per-step BCE with AdamW; metrics (pairwise
//!   accuracy, AUC, per-step accuracy, first-wrong-step accuracy);
//! - [`aggregate`]: step scores → response score (`min`, `product`, `last`, `mean`);
//! - [`shepherd`]: Math-Shepherd automatic step labels from Monte-Carlo completions;
//! - [`arith`]: data from the built-in arithmetic task, with corrupted solutions;
//! - [`verifier`]: `orm:DIR` / `prm:DIR` verifiers ([`register`]).
//!
//! ```no_run
//! use rlvr_rm::{RewardModel, ScoreInput};
//! # fn main() -> Result<(), rlvr_rm::RmError> {
//! let rm = RewardModel::load("runs/rm".as_ref(), &candle_core::Device::Cpu)?;
//! let prompt = serde_json::json!("2+2=");
//! let s = rm.score(&[ScoreInput { prompt: &prompt, response: "4" }])?;
//! println!("{}", s[0].score);
//! # Ok(()) }
//! ```

pub mod aggregate;
pub mod arith;
pub mod data;
pub mod error;
pub mod job;
pub mod model;
pub mod shepherd;
pub mod train;
pub mod verifier;

pub use aggregate::Aggregation;
pub use data::{read_jsonl, Example, Record};
pub use error::{Result, RmError};
pub use model::{RewardModel, RmKind, RmScore, RmSettings, ScoreInput};
pub use train::{evaluate, train, RmMetrics, RmTrainConfig, TrainReport};
pub use verifier::{register, RmVerifier, RmVerifierConfig};
