//! Best-of-N reranking (`rlvr eval --rerank SPEC`): every sample is scored by a second
//! verifier — typically a reward model, `orm:DIR` / `prm:DIR` — and `rerank@K` is the
//! accuracy of the sample it ranks highest among the first K of each problem.
//!
//! - The reranker is any verifier spec; its [`Outcome::score`](rlvr_verify::Outcome) ranks.
//!   All samples of a run are scored with one [`Verifier::verify_batch`] call (a reward model
//!   scores them in batched forward passes).
//! - The reranker sees the same metadata as the verifier plus the problem's `prompt` (chat
//!   messages or text), which a reward model scores the response against.
//! - rerank@K per problem: the sample with the highest score among the first K wins; ties go
//!   to the earlier sample; samples without a score (a reranker error, the stand-ins of a
//!   failed prompt) rank below every scored one. The problem counts when the winner is
//!   correct (by the run's verifier). Averaged over the measured problems.
//! - Scores are not cached: reranking a continued run rescores every sample, so `--rerank`
//!   may change between runs on the same samples.

use std::sync::Arc;

use rlvr_data::{Example, Prompt};
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::Value;

use crate::error::{EvalError, Result};
use crate::prompts::metadata;
use crate::results::ProblemResult;

/// Builds the reranker of `spec`: a verifier name or spec string (`orm:DIR`, `format`), or a
/// JSON object when it starts with `{`.
pub fn build_reranker(spec: &str) -> Result<Arc<dyn Verifier>> {
    let text = spec.trim();
    let value: Value = if text.starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| EvalError::Other(format!("--rerank: invalid JSON spec: {e}")))?
    } else {
        Value::String(text.to_string())
    };
    rlvr_verify::registry::from_spec(&value)
        .map_err(|e| EvalError::Other(format!("--rerank {text}: {e}")))
}

/// The metadata the reranker sees: the verifier's ([`metadata`]) plus `prompt` (the
/// example's chat messages, or its text).
pub fn rerank_metadata(ex: &Example) -> Value {
    let mut m = metadata(ex);
    m["prompt"] = match &ex.prompt {
        Prompt::Text(t) => Value::String(t.clone()),
        Prompt::Messages(msgs) => Value::Array(msgs.clone()),
    };
    m
}

/// Scores every generated sample of `problems` with `reranker` (one batched call), setting
/// each sample's `rerank_score`; samples the reranker fails on (status `error`, or a
/// non-finite score) and stand-ins of failed prompts get none. `examples[p.index]` is each
/// problem's example.
pub fn score_samples(
    problems: &mut [ProblemResult],
    examples: &[Example],
    reranker: &dyn Verifier,
) -> Result<()> {
    let mut metas = Vec::with_capacity(problems.len());
    for p in problems.iter() {
        let ex = examples.get(p.index).ok_or_else(|| {
            EvalError::Other(format!(
                "rerank: problem {} has no example ({} loaded)",
                p.index,
                examples.len()
            ))
        })?;
        metas.push((rerank_metadata(ex), ex.ground_truth.clone()));
    }
    let mut at = Vec::new();
    let mut inputs = Vec::new();
    for (pi, (p, (meta, gt))) in problems.iter().zip(&metas).enumerate() {
        for (si, s) in p.samples.iter().enumerate() {
            if s.generated() {
                at.push((pi, si));
                inputs.push(VerifyInput {
                    response: &s.response,
                    ground_truth: gt,
                    metadata: meta,
                });
            }
        }
    }
    let outcomes = if inputs.is_empty() {
        Vec::new()
    } else {
        reranker.verify_batch(&inputs)
    };
    if outcomes.len() != inputs.len() {
        return Err(EvalError::Other(format!(
            "rerank: the reranker {} answered {} of {} samples",
            reranker.name(),
            outcomes.len(),
            inputs.len()
        )));
    }
    drop(inputs);
    for p in problems.iter_mut() {
        for s in &mut p.samples {
            s.rerank_score = None;
        }
    }
    for ((pi, si), o) in at.into_iter().zip(outcomes) {
        let score = f64::from(o.score);
        if o.status != Status::Error && score.is_finite() {
            problems[pi].samples[si].rerank_score = Some(score);
        }
    }
    Ok(())
}

/// The sample a reranker picks among the first `k`: the highest score, ties to the earlier
/// sample, unscored samples (`None`, NaN) below every scored one; the first sample when none
/// is scored. `None` when there are no samples or `k == 0`.
pub fn pick(scores: &[Option<f64>], k: usize) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.iter().take(k).enumerate() {
        let v = s.filter(|v| !v.is_nan()).unwrap_or(f64::NEG_INFINITY);
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// rerank@K of one problem: 1 when the sample [`pick`]ed among the first `k` is correct, else
/// 0. An error when the problem has fewer than `k` samples or `k == 0`.
pub fn rerank_at_k(scores: &[Option<f64>], correct: &[bool], k: usize) -> Result<f64> {
    if scores.len() != correct.len() {
        return Err(EvalError::Other(format!(
            "rerank@{k}: {} scores for {} samples",
            scores.len(),
            correct.len()
        )));
    }
    if k == 0 || k > scores.len() {
        return Err(EvalError::Other(format!(
            "rerank@{k}: needs 1..={} samples",
            scores.len()
        )));
    }
    let i = pick(scores, k).expect("k samples");
    Ok(if correct[i] { 1.0 } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_scored_sample_among_the_first_k_decides() {
        let correct = [false, true, false, true];
        // A scorer that prefers correct samples: rerank@K is 1 once a correct one is in reach.
        let good = [Some(0.1), Some(0.9), Some(0.2), Some(0.8)];
        assert_eq!(rerank_at_k(&good, &correct, 1).unwrap(), 0.0);
        for k in 2..=4 {
            assert_eq!(rerank_at_k(&good, &correct, k).unwrap(), 1.0, "k={k}");
        }
        // One that prefers wrong samples: always 0.
        let bad = [Some(0.9), Some(0.1), Some(0.8), Some(0.2)];
        for k in 1..=4 {
            assert_eq!(rerank_at_k(&bad, &correct, k).unwrap(), 0.0, "k={k}");
        }
        // Ties go to the earlier sample.
        let tie = [Some(0.5); 4];
        assert_eq!(pick(&tie, 4), Some(0));
        assert_eq!(
            rerank_at_k(&tie, &[true, false, false, false], 4).unwrap(),
            1.0
        );
        assert_eq!(
            rerank_at_k(&tie, &[false, true, true, true], 4).unwrap(),
            0.0
        );
        // Unscored samples rank last; none scored: the first.
        assert_eq!(pick(&[None, Some(-5.0), Some(f64::NAN)], 3), Some(1));
        assert_eq!(pick(&[None, None], 2), Some(0));
        assert_eq!(pick(&[], 2), None);
        assert!(rerank_at_k(&good, &correct, 0).is_err());
        assert!(rerank_at_k(&good, &correct, 5).is_err());
        assert!(rerank_at_k(&good, &correct[..2], 1).is_err());
    }
}
