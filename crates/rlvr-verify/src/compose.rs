//! Composition of verifiers: weighted sums, gates, and a wall-clock deadline that needs no
//! signals.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::json;

use crate::{Outcome, RewardMapping, Status, Verifier, VerifyInput};

/// `Σ wᵢ · scoreᵢ` over parts. The status is the worst part status in the order
/// `error` > `invalid` > `incorrect` > `correct`, so failures of any part stay visible; each
/// part's outcome is kept in `details.parts`.
pub struct WeightedSum {
    /// The parts and their weights.
    pub parts: Vec<(f32, Arc<dyn Verifier>)>,
}

fn severity(s: Status) -> u8 {
    match s {
        Status::Correct => 0,
        Status::Incorrect => 1,
        Status::Invalid => 2,
        Status::Error => 3,
    }
}

impl Verifier for WeightedSum {
    fn name(&self) -> &str {
        "weighted_sum"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let mut score = 0.0f32;
        let mut status = Status::Correct;
        let mut parts = Vec::with_capacity(self.parts.len());
        for (w, v) in &self.parts {
            let o = v.verify(input);
            score += w * o.score;
            if severity(o.status) > severity(status) {
                status = o.status;
            }
            parts.push(json!({"verifier": v.name(), "weight": w, "score": o.score,
                "status": o.status, "details": o.details}));
        }
        Outcome {
            score,
            status,
            details: json!({ "parts": parts }),
        }
    }
}

/// The `inner` verifier counts only when the `gate` verifier's status is `correct` (e.g. the
/// answer counts only if the format is right). A failed gate gives the `gate_failed` score with
/// the gate's status (`incorrect` when the gate said `incorrect`).
pub struct Gated {
    /// Must pass first.
    pub gate: Arc<dyn Verifier>,
    /// Scored when the gate passes.
    pub inner: Arc<dyn Verifier>,
    /// Score when the gate fails.
    pub gate_failed: f32,
}

impl Verifier for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let g = self.gate.verify(input);
        if g.status != Status::Correct {
            return Outcome {
                score: self.gate_failed,
                status: g.status,
                details: json!({"gate": self.gate.name(), "gate_passed": false,
                    "gate_details": g.details}),
            };
        }
        let o = self.inner.verify(input);
        Outcome {
            score: o.score,
            status: o.status,
            details: json!({"gate": self.gate.name(), "gate_passed": true,
                "gate_details": g.details, "inner": o.details}),
        }
    }
}

/// Bounds any verifier's wall-clock time per call: the call runs on a worker thread and, past
/// the deadline, an `error` outcome is returned while the worker finishes in the background
/// (no signals, no cancellation of the verifier). A panicking verifier also yields `error`.
/// Works from async code: wrap the call in `spawn_blocking`.
pub struct Deadline {
    /// The bounded verifier.
    pub inner: Arc<dyn Verifier>,
    /// The bound per call.
    pub limit: Duration,
    /// Scores for the `error` produced on timeout.
    pub mapping: RewardMapping,
}

impl Verifier for Deadline {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let (tx, rx) = mpsc::channel();
        let inner = Arc::clone(&self.inner);
        let response = input.response.to_owned();
        let gt = input.ground_truth.clone();
        let meta = input.metadata.clone();
        let spawned = std::thread::Builder::new()
            .name("rlvr-verify".into())
            .spawn(move || {
                let o = inner.verify(&VerifyInput {
                    response: &response,
                    ground_truth: &gt,
                    metadata: &meta,
                });
                let _ = tx.send(o);
            });
        if let Err(e) = spawned {
            return Outcome::error(&self.mapping, format!("could not start a worker: {e}"));
        }
        match rx.recv_timeout(self.limit) {
            Ok(o) => o,
            Err(mpsc::RecvTimeoutError::Timeout) => Outcome {
                score: self.mapping.error,
                status: Status::Error,
                details: json!({"reason": "deadline exceeded",
                    "limit_ms": self.limit.as_secs_f64() * 1e3}),
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Outcome::error(&self.mapping, "verifier panicked")
            }
        }
    }
}

/// Runs a verifier over many inputs; convenience for callers that only need outcomes in order.
pub fn verify_all(v: &dyn Verifier, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
    inputs.iter().map(|i| v.verify(i)).collect()
}
