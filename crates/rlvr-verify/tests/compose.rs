//! Compositions: part normalisation (`none`, `{"min", "max"}`, `running` z-scores with a clip),
//! its spec errors, and whole batches forwarded through `weighted_sum` and `gated`.

use std::sync::{Arc, Mutex};

use rlvr_verify::compose::{Affine, Gated, Normalize, Part, WeightedSum};
use rlvr_verify::{registry, Outcome, Status, Verifier, VerifyInput};
use serde_json::{json, Value};

/// Scores the response parsed as a number (an `error` for "err"); records batch sizes.
struct Num(Mutex<Vec<usize>>);

impl Num {
    fn new() -> Arc<Self> {
        Arc::new(Num(Mutex::new(Vec::new())))
    }
}

impl Verifier for Num {
    fn name(&self) -> &str {
        "num"
    }
    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        self.verify_batch(std::slice::from_ref(input)).remove(0)
    }
    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        self.0.lock().unwrap().push(inputs.len());
        inputs
            .iter()
            .map(|i| match i.response.parse::<f32>() {
                Ok(x) => Outcome {
                    score: x,
                    status: if x > 0.0 {
                        Status::Correct
                    } else {
                        Status::Incorrect
                    },
                    details: json!({}),
                },
                Err(_) => Outcome {
                    score: -100.0,
                    status: Status::Error,
                    details: json!({}),
                },
            })
            .collect()
    }
    fn batch_hint(&self) -> usize {
        16
    }
}

fn batch(v: &dyn Verifier, responses: &[&str]) -> Vec<Outcome> {
    let (gt, meta) = (json!("1"), Value::Null);
    let inputs: Vec<VerifyInput<'_>> = responses
        .iter()
        .map(|r| VerifyInput {
            response: r,
            ground_truth: &gt,
            metadata: &meta,
        })
        .collect();
    v.verify_batch(&inputs)
}

#[test]
fn range_normalisation_maps_and_clips() {
    let n = Num::new();
    let sum = WeightedSum {
        parts: vec![Part {
            weight: 2.0,
            verifier: n.clone(),
            normalize: Normalize::Range {
                min: -4.0,
                max: 4.0,
            },
        }],
    };
    let out = batch(&sum, &["0", "2", "10", "-9", "err"]);
    let scores: Vec<f32> = out.iter().map(|o| o.score).collect();
    // 2 × (s + 4) / 8, clipped to [0, 1]; an error keeps its mapped score.
    assert_eq!(scores, [1.0, 1.5, 2.0, 0.0, -200.0]);
    assert_eq!(out[1].details["parts"][0]["raw_score"], 2.0);
    assert_eq!(out[1].details["parts"][0]["score"], 0.75);
    let map = Affine::from_json(&out[1].details["parts"][0]["norm"]).unwrap();
    assert_eq!(map.apply(2.0), 0.75);
    assert!(out[4].details["parts"][0].get("norm").is_none());
    assert_eq!(out[4].status, Status::Error);
    // One batch call reached the part.
    assert_eq!(*n.0.lock().unwrap(), [5]);
}

#[test]
fn running_normalisation_z_scores_over_what_it_has_seen() {
    let sum = WeightedSum {
        parts: vec![Part {
            weight: 1.0,
            verifier: Num::new(),
            normalize: Normalize::running(Some(1.5)),
        }],
    };
    // First batch: mean 2, sample std 1 → z = −1, 0, 1; the error stays out.
    let out = batch(&sum, &["1", "2", "3", "err"]);
    let z: Vec<f32> = out.iter().map(|o| o.score).collect();
    assert!((z[0] + 1.0).abs() < 1e-5 && z[1].abs() < 1e-5 && (z[2] - 1.0).abs() < 1e-5);
    assert_eq!(z[3], -100.0);
    // Second batch: the statistics fold it in with the first: (1, 2, 3, 10, 10, −20), n = 6,
    // mean 1, sample std ≈ 11.03; 10 → 0.82; −20 → −1.90, clipped to −1.5.
    let out = batch(&sum, &["10", "10", "-20"]);
    let std = (((1.0f64 - 1.0).powi(2)
        + (2.0f64 - 1.0).powi(2)
        + (3.0f64 - 1.0).powi(2)
        + 2.0 * (10.0f64 - 1.0).powi(2)
        + (-20.0f64 - 1.0).powi(2))
        / 5.0)
        .sqrt();
    assert!((out[0].score as f64 - 9.0 / std).abs() < 1e-4, "{out:?}");
    assert_eq!(out[2].score, -1.5, "clipped");
    // Per-item calls update the statistics one at a time.
    let one = sum.verify(&VerifyInput {
        response: "1",
        ground_truth: &json!("1"),
        metadata: &Value::Null,
    });
    assert!(one.score.abs() < 0.2, "{one:?}");
}

#[test]
fn normalisation_specs_are_checked_and_errors_name_the_field() {
    let v = registry::from_spec(&json!({"type": "weighted_sum", "parts": [
        {"weight": 1.0, "verifier": "format", "normalize": {"min": 0, "max": 2}},
        {"weight": 0.5, "verifier": "math", "normalize": "running", "clip": 3},
        {"weight": 0.5, "verifier": "math", "normalize": "none"},
    ]}))
    .unwrap();
    assert_eq!(v.name(), "weighted_sum");
    for (part, want) in [
        (
            json!({"weight": 1, "verifier": "math", "normalize": "zscore"}),
            "parts[0].normalize",
        ),
        (
            json!({"weight": 1, "verifier": "math", "normalize": {"min": 1, "max": 1}}),
            "parts[0].normalize",
        ),
        (
            json!({"weight": 1, "verifier": "math", "normalize": {"min": 0}}),
            "parts[0].normalize.max",
        ),
        (
            json!({"weight": 1, "verifier": "math", "normalize": {"min": 0, "max": 1, "lo": 2}}),
            "parts[0].normalize.lo",
        ),
        (
            json!({"weight": 1, "verifier": "math", "clip": 2}),
            "parts[0].clip",
        ),
        (
            json!({"weight": 1, "verifier": "math", "normalize": "running", "clip": -1}),
            "parts[0].clip",
        ),
        (
            json!({"weight": 1, "verifier": "math", "normalise": "running"}),
            "parts[0].normalise",
        ),
    ] {
        let e = registry::from_spec(&json!({"type": "weighted_sum", "parts": [part]}))
            .err()
            .unwrap_or_else(|| panic!("{want} accepted"))
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn gated_batches_match_item_by_item_and_reach_the_inner_verifier_once() {
    let inner = Num::new();
    let gate = Num::new();
    let g = Gated {
        gate: gate.clone(),
        inner: inner.clone(),
        gate_failed: -1.0,
    };
    let responses = ["3", "-1", "2", "err", "0.5"];
    let out = batch(&g, &responses);
    let one: Vec<Outcome> = responses
        .iter()
        .map(|r| {
            g.verify(&VerifyInput {
                response: r,
                ground_truth: &json!("1"),
                metadata: &Value::Null,
            })
        })
        .collect();
    assert_eq!(out, one);
    let scores: Vec<f32> = out.iter().map(|o| o.score).collect();
    assert_eq!(scores, [3.0, -1.0, 2.0, -1.0, 0.5]);
    assert_eq!(out[3].status, Status::Error);
    // The batched call: one gate call of 5, one inner call of the 3 that passed.
    assert_eq!(gate.0.lock().unwrap()[0], 5);
    assert_eq!(inner.0.lock().unwrap()[0], 3);
    assert_eq!(g.batch_hint(), 16);
}
