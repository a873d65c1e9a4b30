//! Verifiers: score a completion against a ground truth, honestly.
//!
//! A [`Verifier`] returns an [`Outcome`] with a score, a [`Status`] (`correct`, `incorrect`,
//! `invalid` when nothing could be judged from the response, `error` when the verifier itself
//! could not decide) and structured details. `invalid` and `error` are never folded silently
//! into a 0: [`RewardMapping`] decides what they are worth and callers count them apart.
//!
//! Built-in verifiers: [`math::MathVerifier`] (`math`) and [`format::FormatVerifier`]
//! (`format`); [`registry::build`] makes them by name or from a JSON spec, including weighted
//! sums and gates ([`compose`]). Every verifier is bounded without signals: the math verifier
//! counts work against a budget, and [`compose::Deadline`] bounds any verifier's wall-clock time
//! from a worker thread.

pub mod compose;
pub mod error;
pub mod expr;
pub mod extract;
pub mod format;
pub mod math;
pub mod normalize;
pub mod registry;

pub use error::VerifyError;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a verifier concluded about one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The response's answer matches the ground truth.
    Correct,
    /// An answer was found and judged different from the ground truth.
    Incorrect,
    /// The response holds nothing that can be judged (no answer extracted, answer too long…).
    Invalid,
    /// The verifier could not judge (work budget or deadline exhausted, bad ground truth…).
    Error,
}

impl Status {
    /// All statuses, in report order.
    pub const ALL: [Status; 4] = [
        Status::Correct,
        Status::Incorrect,
        Status::Invalid,
        Status::Error,
    ];

    /// The lowercase name used in JSON lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Correct => "correct",
            Status::Incorrect => "incorrect",
            Status::Invalid => "invalid",
            Status::Error => "error",
        }
    }
}

/// A verifier's verdict: score, status and details (what was extracted, compared, and why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The reward.
    pub score: f32,
    /// The verdict.
    pub status: Status,
    /// Structured details (always a JSON object).
    pub details: Value,
}

impl Outcome {
    /// An outcome whose score is `mapping`'s value for `status`.
    pub fn with_status(status: Status, mapping: &RewardMapping, details: Value) -> Self {
        Outcome {
            score: mapping.score(status),
            status,
            details,
        }
    }

    /// An `error` outcome with a reason, scored by `mapping`.
    pub fn error(mapping: &RewardMapping, reason: impl Into<String>) -> Self {
        Self::with_status(
            Status::Error,
            mapping,
            serde_json::json!({ "reason": reason.into() }),
        )
    }
}

/// The reward given for each status. `invalid` and `error` have their own entries so that a
/// trainer can, e.g., penalise unparsable answers or drop samples whose verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardMapping {
    /// Score of `correct`.
    pub correct: f32,
    /// Score of `incorrect`.
    pub incorrect: f32,
    /// Score of `invalid`.
    pub invalid: f32,
    /// Score of `error`.
    pub error: f32,
}

impl Default for RewardMapping {
    fn default() -> Self {
        RewardMapping {
            correct: 1.0,
            incorrect: 0.0,
            invalid: 0.0,
            error: 0.0,
        }
    }
}

impl RewardMapping {
    /// The score of a status.
    pub fn score(&self, status: Status) -> f32 {
        match status {
            Status::Correct => self.correct,
            Status::Incorrect => self.incorrect,
            Status::Invalid => self.invalid,
            Status::Error => self.error,
        }
    }
}

/// One item to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyInput<'a> {
    /// The completion text.
    pub response: &'a str,
    /// The ground truth: a string or a JSON object (verifier-specific).
    pub ground_truth: &'a Value,
    /// Task metadata (`prompt`, `data_source`, `extra_info` and any other fields); an object or
    /// `Null`.
    pub metadata: &'a Value,
}

/// A reward function. Implementations must be cheap to share across threads and must return
/// (never panic, never hang) on any input.
pub trait Verifier: Send + Sync {
    /// The registry name (`math`, `format`, …).
    fn name(&self) -> &str;
    /// Judges one response.
    fn verify(&self, input: &VerifyInput<'_>) -> Outcome;
    /// Judges many responses: exactly one outcome per input, in the same order. The default
    /// calls [`verify`](Self::verify) on each input in turn; implementations may judge the
    /// batch at once (one call of a Python worker for the whole batch, concurrent sandbox
    /// runs…). Wrappers that bound each call (e.g. [`compose::Deadline`]) keep the default,
    /// so their bound stays per item.
    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        inputs.iter().map(|i| self.verify(i)).collect()
    }
    /// How many items this verifier would like per [`verify_batch`](Self::verify_batch) call
    /// when a caller (training, evaluation) groups its work: 1 (the default) means one item
    /// per call is as fast and keeps per-item timeouts; batching verifiers (reward models,
    /// Python workers, sandboxes) ask for more.
    fn batch_hint(&self) -> usize {
        1
    }
}

/// Counts of outcomes per status, and their score sum: the summary every caller should report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// `correct` outcomes.
    pub correct: u64,
    /// `incorrect` outcomes.
    pub incorrect: u64,
    /// `invalid` outcomes.
    pub invalid: u64,
    /// `error` outcomes.
    pub error: u64,
    /// Sum of scores.
    pub score_sum: f64,
}

impl Tally {
    /// Adds an outcome.
    pub fn add(&mut self, o: &Outcome) {
        match o.status {
            Status::Correct => self.correct += 1,
            Status::Incorrect => self.incorrect += 1,
            Status::Invalid => self.invalid += 1,
            Status::Error => self.error += 1,
        }
        self.score_sum += o.score as f64;
    }

    /// Number of outcomes.
    pub fn total(&self) -> u64 {
        self.correct + self.incorrect + self.invalid + self.error
    }

    /// Mean score (0 when empty).
    pub fn mean_score(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            self.score_sum / self.total() as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Scores the response's length; counts its calls.
    struct Len(AtomicUsize);

    impl Verifier for Len {
        fn name(&self) -> &str {
            "len"
        }
        fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
            self.0.fetch_add(1, Ordering::Relaxed);
            Outcome {
                score: input.response.len() as f32,
                status: Status::Correct,
                details: serde_json::json!({}),
            }
        }
    }

    #[test]
    fn the_default_batch_is_one_verify_per_input_in_order() {
        let v = Len(AtomicUsize::new(0));
        let (gt, meta) = (Value::Null, Value::Null);
        let texts = ["a", "abc", "", "ab"];
        let inputs: Vec<VerifyInput> = texts
            .iter()
            .map(|t| VerifyInput {
                response: t,
                ground_truth: &gt,
                metadata: &meta,
            })
            .collect();
        let dynv: &dyn Verifier = &v;
        let scores: Vec<f32> = dynv.verify_batch(&inputs).iter().map(|o| o.score).collect();
        assert_eq!(scores, [1.0, 3.0, 0.0, 2.0]);
        assert_eq!(v.0.load(Ordering::Relaxed), 4);
        assert!(dynv.verify_batch(&[]).is_empty());
    }
}
