//! Evaluation metrics over k samples per problem: pass@k (unbiased estimator of Chen et al.
//! 2021), maj@k and mean@k.

use std::collections::HashMap;
use std::hash::Hash;

use crate::error::{Result, TrainError};

/// Unbiased pass@k from `n` samples of which `c` are correct:
/// `1 − Π_{i=n−c+1}^{n} (1 − k/i)`, or 1 when `n − c < k`. Errors if `c > n` or `k > n` or `k = 0`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> Result<f64> {
    if c > n || k > n || k == 0 {
        return Err(TrainError::Input(format!(
            "pass@k needs 0 < k <= n and c <= n (n={n}, c={c}, k={k})"
        )));
    }
    if n - c < k {
        return Ok(1.0);
    }
    let kf = k as f64;
    let prod: f64 = (n - c + 1..=n).map(|i| 1.0 - kf / i as f64).product();
    Ok(1.0 - prod)
}

/// mean@k: the average reward of the first `k` samples.
pub fn mean_at_k(rewards: &[f64], k: usize) -> Result<f64> {
    if k == 0 || k > rewards.len() {
        return Err(TrainError::Input(format!(
            "mean@k needs 0 < k <= {} samples, got k={k}",
            rewards.len()
        )));
    }
    Ok(rewards[..k].iter().sum::<f64>() / k as f64)
}

/// maj@k: whether the majority answer among the first `k` samples is correct. `answers[i]` is
/// the extracted, normalised answer (None if none was extracted, which never wins) and
/// `correct[i]` whether sample i is correct; ties go to the answer that appeared first.
pub fn maj_at_k<A: Eq + Hash>(answers: &[Option<A>], correct: &[bool], k: usize) -> Result<f64> {
    if answers.len() != correct.len() {
        return Err(TrainError::Shape(format!(
            "{} answers vs {} correctness flags",
            answers.len(),
            correct.len()
        )));
    }
    if k == 0 || k > answers.len() {
        return Err(TrainError::Input(format!(
            "maj@k needs 0 < k <= {} samples, got k={k}",
            answers.len()
        )));
    }
    let mut counts: HashMap<&A, (usize, usize)> = HashMap::new(); // answer → (count, first index)
    for (i, a) in answers[..k].iter().enumerate() {
        if let Some(a) = a {
            counts.entry(a).or_insert((0, i)).0 += 1;
        }
    }
    let best = counts
        .values()
        .max_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)))
        .map(|&(_, first)| first);
    Ok(match best {
        Some(i) if correct[i] => 1.0,
        _ => 0.0,
    })
}
