//! Token-level rewards from per-step scores: a process reward model (`prm:DIR`) scores every
//! reasoning step, and instead of one aggregated score on the last token its step scores can be
//! placed on the tokens where the steps end (Math-Shepherd's step-by-step PPO), so that
//! REINFORCE++ returns (and GAE) credit each step with what follows it.
//!
//! Any verifier whose outcome details carry `steps` (one score per step) and `step_end_bytes`
//! (the byte offset in the response where each step ends, same length) supplies step scores;
//! the PRM verifier does. They are found at the top of the outcome, inside `weighted_sum`
//! parts (times the part's weight, through the part's normalisation map) and behind a passed
//! `gated` check. The part's aggregated contribution is taken off the last token's reward, so
//! the rest of the reward (verifiable parts, shaping) stays where it was.

use rlvr_model::Tokenizer;
use rlvr_rollout::detok::IncrementalText;
use rlvr_rollout::SamplingParams;
use rlvr_verify::compose::Affine;
use rlvr_verify::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// Where a step-scoring verifier's reward goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRewardMode {
    /// Its aggregated score, on the last token, like any other reward (default).
    #[default]
    Outcome,
    /// Every step's score (weighted, normalised like its part) on the token where the step
    /// ends: a response's rewards add up to the sum of its step scores.
    Sum,
    /// The same divided by the number of steps: the rewards add up to the mean step score,
    /// whatever the number of steps (no reward for splitting a solution into more steps).
    Mean,
}

/// A reward at a step end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReward {
    /// Byte offset in the response where the step ends.
    pub end_byte: usize,
    /// The reward placed there.
    pub value: f64,
}

/// What to move from the last token to the step ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// Rewards at step ends.
    pub steps: Vec<StepReward>,
    /// The part of the outcome's score they replace (taken off the last token).
    pub replaced: f64,
}

/// The step rewards in `outcome` under `mode` (empty for [`StepRewardMode::Outcome`] or when
/// no part reports step scores).
pub fn placement(outcome: &Outcome, mode: StepRewardMode) -> Placement {
    let mut p = Placement::default();
    if mode != StepRewardMode::Outcome {
        walk(
            &outcome.details,
            outcome.score as f64,
            1.0,
            Affine::IDENTITY,
            mode,
            &mut p,
        );
    }
    p
}

fn numbers(v: Option<&Value>) -> Option<Vec<f64>> {
    v?.as_array()?.iter().map(Value::as_f64).collect()
}

fn walk(
    details: &Value,
    score: f64,
    weight: f64,
    map: Affine,
    mode: StepRewardMode,
    out: &mut Placement,
) {
    if let (Some(steps), Some(ends)) = (
        numbers(details.get("steps")),
        numbers(details.get("step_end_bytes")),
    ) {
        if steps.len() == ends.len() && !steps.is_empty() {
            let per = if mode == StepRewardMode::Mean {
                1.0 / steps.len() as f64
            } else {
                1.0
            };
            out.replaced += weight * score;
            out.steps
                .extend(steps.iter().zip(&ends).map(|(s, e)| StepReward {
                    end_byte: *e as usize,
                    value: weight * per * map.apply(*s as f32) as f64,
                }));
        }
        return;
    }
    if let Some(parts) = details.get("parts").and_then(Value::as_array) {
        for part in parts {
            let (Some(w), Some(s)) = (
                part.get("weight").and_then(Value::as_f64),
                part.get("score").and_then(Value::as_f64),
            ) else {
                continue;
            };
            let inner = part.get("details").unwrap_or(&Value::Null);
            match part.get("norm") {
                // A normalised part: its map applies to a step-scoring leaf directly below it
                // only (a normalised composite is not linear in its leaves).
                Some(n) => {
                    if let Some(m) = Affine::from_json(n) {
                        if inner.get("steps").is_some() {
                            walk(inner, s, weight * w, m, mode, out);
                        }
                    }
                }
                None => walk(inner, s, weight * w, map, mode, out),
            }
        }
        return;
    }
    if details.get("gate_passed") == Some(&Value::Bool(true)) {
        if let Some(inner) = details.get("inner") {
            walk(inner, score, weight, map, mode, out);
        }
    }
}

/// Each token's end offset in the text the rollout decoded (`ends[j]` = the text's length
/// after token `j`), with the rollout's incremental detokenizer and its special-token rule.
pub fn token_ends(tok: &Tokenizer, tokens: &[u32]) -> Result<Vec<usize>> {
    let skip = SamplingParams::default().skip_special_tokens;
    let mut text = IncrementalText::default();
    let mut ends = Vec::with_capacity(tokens.len());
    for j in 0..tokens.len() {
        text.update(tok, &tokens[..=j], skip)?;
        ends.push(text.text.len());
    }
    Ok(ends)
}

/// The index of the token holding byte `end_byte − 1` of the text, given each token's end
/// offset in the decoded text (`ends[j]` = text length after token `j`); the last token when
/// the offset lies past the text.
pub fn token_of(ends: &[usize], end_byte: usize) -> Option<usize> {
    if ends.is_empty() {
        return None;
    }
    let target = end_byte.max(1);
    Some(ends.partition_point(|&e| e < target).min(ends.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlvr_verify::Status;
    use serde_json::json;

    fn prm(score: f32, steps: &[f32], ends: &[usize]) -> Value {
        json!({"kind": "prm", "probability": score, "steps": steps, "step_end_bytes": ends})
    }

    #[test]
    fn a_bare_prm_moves_its_steps() {
        let o = Outcome {
            score: 0.2,
            status: Status::Incorrect,
            details: prm(0.2, &[0.9, 0.2], &[5, 11]),
        };
        assert_eq!(placement(&o, StepRewardMode::Outcome), Placement::default());
        let p = placement(&o, StepRewardMode::Sum);
        assert!((p.replaced - 0.2).abs() < 1e-6);
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[0].end_byte, 5);
        assert!((p.steps[0].value - 0.9).abs() < 1e-6);
        assert!((p.steps[1].value - 0.2).abs() < 1e-6);
        let p = placement(&o, StepRewardMode::Mean);
        assert!((p.steps[0].value - 0.45).abs() < 1e-6);
        assert!((p.steps[1].value - 0.1).abs() < 1e-6);
    }

    #[test]
    fn weights_norms_and_gates_are_followed() {
        // weighted_sum(1.0 × math, 0.5 × prm normalised by (s − 0.5) · 2), behind a passed gate.
        let inner = json!({"parts": [
            {"verifier": "math", "weight": 1.0, "score": 1.0, "status": "correct",
             "details": {"extracted": "3"}},
            {"verifier": "prm", "weight": 0.5, "score": -0.6, "raw_score": 0.2,
             "norm": {"shift": 0.5, "scale": 2.0, "lo": null, "hi": null},
             "status": "incorrect", "details": prm(0.2, &[0.75, 0.2], &[4, 9])},
        ]});
        let o = Outcome {
            score: 0.7,
            status: Status::Incorrect,
            details: json!({"gate": "format", "gate_passed": true, "gate_details": {},
                "inner": inner}),
        };
        let p = placement(&o, StepRewardMode::Sum);
        // The PRM part contributed 0.5 × −0.6 = −0.3.
        assert!((p.replaced + 0.3).abs() < 1e-6, "{p:?}");
        assert!((p.steps[0].value - 0.25).abs() < 1e-6, "{p:?}");
        assert!((p.steps[1].value + 0.3).abs() < 1e-6, "{p:?}");
        // A failed gate scores nothing from the PRM.
        let o = Outcome {
            score: 0.0,
            status: Status::Incorrect,
            details: json!({"gate": "format", "gate_passed": false, "gate_details": {}}),
        };
        assert!(placement(&o, StepRewardMode::Sum).steps.is_empty());
        // No step scores anywhere: nothing moves.
        let o = Outcome {
            score: 1.0,
            status: Status::Correct,
            details: json!({"parts": [{"weight": 1.0, "score": 1.0, "details": {}}]}),
        };
        assert_eq!(placement(&o, StepRewardMode::Mean), Placement::default());
        // Malformed step lists are ignored.
        let o = Outcome {
            score: 1.0,
            status: Status::Correct,
            details: json!({"steps": [0.5, "x"], "step_end_bytes": [1, 2]}),
        };
        assert_eq!(placement(&o, StepRewardMode::Sum), Placement::default());
    }

    #[test]
    fn byte_offsets_map_to_tokens() {
        // Tokens "ab", "c\n", "de": ends 2, 4, 6.
        let ends = [2, 4, 6];
        assert_eq!(token_of(&ends, 1), Some(0));
        assert_eq!(token_of(&ends, 2), Some(0));
        assert_eq!(token_of(&ends, 3), Some(1));
        assert_eq!(token_of(&ends, 6), Some(2));
        assert_eq!(token_of(&ends, 60), Some(2));
        assert_eq!(token_of(&ends, 0), Some(0));
        assert_eq!(token_of(&[], 3), None);
    }
}
