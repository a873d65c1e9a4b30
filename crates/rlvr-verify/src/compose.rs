//! Composition of verifiers: weighted sums, gates, and a wall-clock deadline that needs no
//! signals.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{Outcome, RewardMapping, Status, Verifier, VerifyInput};

/// How a part's raw score is put on a common scale before it is weighted (reward models
/// score on their own scale; a verifiable reward is 0/1).
#[derive(Debug, Default)]
pub enum Normalize {
    /// The raw score (the default).
    #[default]
    None,
    /// `(s − min) / (max − min)`, clipped to `[0, 1]`.
    Range {
        /// Maps to 0.
        min: f32,
        /// Maps to 1.
        max: f32,
    },
    /// `(s − mean) / std` over every non-error score this part has produced so far in the
    /// process (the current batch included; OpenRLHF's `normalize_reward`), optionally
    /// clipped to `±clip`. The statistics start afresh with the process.
    Running {
        /// Bound on the normalised score.
        clip: Option<f32>,
        /// Count, mean and sum of squared deviations (Welford).
        stats: Mutex<(u64, f64, f64)>,
    },
}

/// The affine map a part applied: `clamp((s − shift) · scale, lo, hi)`. Reported in the
/// part's details (`norm`) so that consumers of per-step scores (token-level rewards) can
/// put them on the same scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Subtracted first.
    pub shift: f32,
    /// Then multiplied.
    pub scale: f32,
    /// Lower clip.
    pub lo: f32,
    /// Upper clip.
    pub hi: f32,
}

impl Affine {
    /// The identity.
    pub const IDENTITY: Affine = Affine {
        shift: 0.0,
        scale: 1.0,
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
    };

    /// Applies the map.
    pub fn apply(&self, s: f32) -> f32 {
        ((s - self.shift) * self.scale).clamp(self.lo, self.hi)
    }

    /// As JSON (infinite bounds as `null`).
    pub fn to_json(&self) -> Value {
        let b = |x: f32| if x.is_finite() { json!(x) } else { Value::Null };
        json!({"shift": self.shift, "scale": self.scale, "lo": b(self.lo), "hi": b(self.hi)})
    }

    /// From [`to_json`](Self::to_json)'s form; `None` when malformed.
    pub fn from_json(v: &Value) -> Option<Affine> {
        let b = |k: &str, inf: f32| match v.get(k) {
            None | Some(Value::Null) => Some(inf),
            Some(x) => x.as_f64().map(|x| x as f32),
        };
        Some(Affine {
            shift: v.get("shift")?.as_f64()? as f32,
            scale: v.get("scale")?.as_f64()? as f32,
            lo: b("lo", f32::NEG_INFINITY)?,
            hi: b("hi", f32::INFINITY)?,
        })
    }
}

impl Normalize {
    /// Running z-scores, clipped to `±clip` when given.
    pub fn running(clip: Option<f32>) -> Self {
        Normalize::Running {
            clip,
            stats: Mutex::new((0, 0.0, 0.0)),
        }
    }

    /// Folds a batch of raw scores into the statistics (running mode) and returns the map to
    /// apply to them.
    pub fn observe(&self, scores: &[f32]) -> Affine {
        match self {
            Normalize::None => Affine::IDENTITY,
            Normalize::Range { min, max } => Affine {
                shift: *min,
                scale: 1.0 / (max - min),
                lo: 0.0,
                hi: 1.0,
            },
            Normalize::Running { clip, stats } => {
                let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
                for &s in scores.iter().filter(|s| s.is_finite()) {
                    st.0 += 1;
                    let d = s as f64 - st.1;
                    st.1 += d / st.0 as f64;
                    st.2 += d * (s as f64 - st.1);
                }
                let std = if st.0 > 1 {
                    (st.2 / (st.0 - 1) as f64).sqrt()
                } else {
                    0.0
                };
                let c = clip.unwrap_or(f32::INFINITY);
                Affine {
                    shift: st.1 as f32,
                    scale: 1.0 / std.max(1e-6) as f32,
                    lo: -c,
                    hi: c,
                }
            }
        }
    }
}

/// One part of a [`WeightedSum`].
pub struct Part {
    /// Its weight.
    pub weight: f32,
    /// The verifier.
    pub verifier: Arc<dyn Verifier>,
    /// How its score is normalised before weighting (`error` outcomes are never normalised:
    /// they keep their mapped score and stay out of running statistics).
    pub normalize: Normalize,
}

impl Part {
    /// A part with its raw score.
    pub fn new(weight: f32, verifier: Arc<dyn Verifier>) -> Self {
        Part {
            weight,
            verifier,
            normalize: Normalize::None,
        }
    }
}

/// `Σ wᵢ · norm(scoreᵢ)` over parts. The status is the worst part status in the order
/// `error` > `invalid` > `incorrect` > `correct`, so failures of any part stay visible; each
/// part's outcome is kept in `details.parts` (`score` normalised, `raw_score`, `norm` the map
/// applied when the part normalises). `verify_batch` forwards whole batches to every part.
pub struct WeightedSum {
    /// The parts.
    pub parts: Vec<Part>,
}

fn severity(s: Status) -> u8 {
    match s {
        Status::Correct => 0,
        Status::Incorrect => 1,
        Status::Invalid => 2,
        Status::Error => 3,
    }
}

impl WeightedSum {
    fn combine(&self, per_part: Vec<Vec<Outcome>>, n: usize) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = (0..n)
            .map(|_| Outcome {
                score: 0.0,
                status: Status::Correct,
                details: json!({"parts": []}),
            })
            .collect();
        for (part, outcomes) in self.parts.iter().zip(per_part) {
            let valid: Vec<f32> = outcomes
                .iter()
                .filter(|o| o.status != Status::Error)
                .map(|o| o.score)
                .collect();
            let map = part.normalize.observe(&valid);
            let normalises = !matches!(part.normalize, Normalize::None);
            for (acc, o) in out.iter_mut().zip(outcomes) {
                let s = if o.status == Status::Error || !normalises {
                    o.score
                } else {
                    map.apply(o.score)
                };
                acc.score += part.weight * s;
                if severity(o.status) > severity(acc.status) {
                    acc.status = o.status;
                }
                let mut d = json!({"verifier": part.verifier.name(), "weight": part.weight,
                    "score": s, "status": o.status, "details": o.details});
                if normalises && o.status != Status::Error {
                    d["raw_score"] = json!(o.score);
                    d["norm"] = map.to_json();
                }
                if let Some(parts) = acc.details["parts"].as_array_mut() {
                    parts.push(d);
                }
            }
        }
        out
    }
}

impl Verifier for WeightedSum {
    fn name(&self) -> &str {
        "weighted_sum"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let per_part = self
            .parts
            .iter()
            .map(|p| vec![p.verifier.verify(input)])
            .collect();
        self.combine(per_part, 1).pop().expect("one outcome")
    }

    fn batch_hint(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.verifier.batch_hint())
            .max()
            .unwrap_or(1)
    }

    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        let per_part = self
            .parts
            .iter()
            .map(|p| p.verifier.verify_batch(inputs))
            .collect();
        self.combine(per_part, inputs.len())
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
            return self.failed(g);
        }
        let o = self.inner.verify(input);
        self.passed(g, o)
    }

    fn batch_hint(&self) -> usize {
        self.gate.batch_hint().max(self.inner.batch_hint())
    }

    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        let gates = self.gate.verify_batch(inputs);
        let open: Vec<usize> = (0..inputs.len())
            .filter(|&i| gates[i].status == Status::Correct)
            .collect();
        let sub: Vec<VerifyInput<'_>> = open.iter().map(|&i| inputs[i]).collect();
        let mut inner = self.inner.verify_batch(&sub).into_iter();
        gates
            .into_iter()
            .map(|g| {
                if g.status == Status::Correct {
                    let o = inner.next().unwrap_or_else(|| {
                        Outcome::error(&RewardMapping::default(), "no outcome for an item")
                    });
                    self.passed(g, o)
                } else {
                    self.failed(g)
                }
            })
            .collect()
    }
}

impl Gated {
    fn failed(&self, g: Outcome) -> Outcome {
        Outcome {
            score: self.gate_failed,
            status: g.status,
            details: json!({"gate": self.gate.name(), "gate_passed": false,
                "gate_details": g.details}),
        }
    }

    fn passed(&self, g: Outcome, o: Outcome) -> Outcome {
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
