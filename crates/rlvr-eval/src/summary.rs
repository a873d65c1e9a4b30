//! The evaluation summary (keys fixed in interfaces.md, "Evaluation summaries"):
//! `pass@K`, `maj@K`, `mean@K` for each requested K, `n`, `num_problems`, the per-status
//! sample counts `correct`, `incorrect`, `invalid`, `error`, `mean_response_tokens`,
//! `truncation_rate`; plus `num_samples`, `mean_score`, `skipped_problems` and `subsets`:
//! the same metrics per `data_source` and per value of each `--group-by` field of
//! `extra_info`.
//!
//! - pass@K: the unbiased estimator `1 − C(n−c, K)/C(n, K)` per problem
//!   ([`rlvr_train::metrics::pass_at_k`], computed as a stable product), averaged over
//!   problems.
//! - maj@K: per problem, the most common answer among the first K samples wins (ties: the
//!   answer that appeared first; samples without an extracted answer do not vote); the
//!   problem counts when a sample with that answer is correct
//!   ([`rlvr_train::metrics::maj_at_k`]). Answers are the verifier's `details.extracted`,
//!   normalised ([`vote_key`]).
//! - mean@K: the mean score of the first K samples, averaged over problems.
//! - rerank@K (only when the samples carry a `rerank_score`, `--rerank`): per problem, the
//!   sample the reranker scores highest among the first K (ties: the earlier sample) is
//!   correct ([`crate::rerank::rerank_at_k`]), averaged over problems.
//!
//! Problems left out as too long (`skipped`) are counted but not part of any metric. A
//! mean over no problems or samples is `null`.

use std::collections::BTreeMap;

use rlvr_train::metrics::{maj_at_k, mean_at_k, pass_at_k};
use serde_json::{json, Map, Value};

use crate::error::{EvalError, Result};
use crate::rerank::rerank_at_k;
use crate::results::ProblemResult;

/// The statuses, in report order.
pub const STATUSES: [&str; 4] = ["correct", "incorrect", "invalid", "error"];

/// Checks the requested ks against `n`: each must be in `1..=n`. The message names `--k` and
/// `--n`.
pub fn check_ks(ks: &[usize], n: usize) -> Result<()> {
    if n == 0 {
        return Err(EvalError::Other(
            "--n must be at least 1 (samples per problem)".into(),
        ));
    }
    if ks.is_empty() {
        return Err(EvalError::Other("--k needs at least one value".into()));
    }
    for &k in ks {
        if k == 0 || k > n {
            return Err(EvalError::Other(format!(
                "--k {k}: every k must be between 1 and --n {n} (the samples per problem)"
            )));
        }
    }
    Ok(())
}

/// The vote of a sample for maj@K: the verifier's `details.extracted` answer, normalised
/// like the math verifier's comparison keys; `None` when there is none. Composed verifiers
/// are searched too: the parts of a `weighted_sum` (in order) and the `inner` verifier of a
/// `gated` one.
pub fn vote_key(details: &Value) -> Option<String> {
    let raw = extracted(details)?;
    let k = rlvr_verify::normalize::key(&rlvr_verify::normalize::normalize(raw, false));
    (!k.is_empty()).then_some(k)
}

fn extracted(details: &Value) -> Option<&str> {
    if let Some(s) = details.get("extracted").and_then(Value::as_str) {
        return Some(s);
    }
    if let Some(parts) = details.get("parts").and_then(Value::as_array) {
        if let Some(s) = parts
            .iter()
            .find_map(|p| p.get("details").and_then(extracted))
        {
            return Some(s);
        }
    }
    details.get("inner").and_then(extracted)
}

fn mean(xs: impl Iterator<Item = f64>) -> Value {
    let (mut sum, mut count) = (0.0, 0usize);
    for x in xs {
        sum += x;
        count += 1;
    }
    if count == 0 {
        Value::Null
    } else {
        json!(sum / count as f64)
    }
}

fn train_err(e: rlvr_train::TrainError) -> EvalError {
    EvalError::Other(e.to_string())
}

/// The metrics of a set of problems (skipped ones are counted, not measured).
pub fn metrics(problems: &[&ProblemResult], n: usize, ks: &[usize]) -> Result<Map<String, Value>> {
    let measured: Vec<&ProblemResult> = problems
        .iter()
        .copied()
        .filter(|p| p.skipped.is_none())
        .collect();
    let reranked = measured
        .iter()
        .any(|p| p.samples.iter().any(|s| s.rerank_score.is_some()));
    let mut m = Map::new();
    for &k in ks {
        let mut pass = Vec::with_capacity(measured.len());
        let mut rerank = Vec::with_capacity(measured.len());
        let mut maj = Vec::with_capacity(measured.len());
        let mut meank = Vec::with_capacity(measured.len());
        for p in &measured {
            let got = p.samples.len();
            if k > got {
                return Err(EvalError::Other(format!(
                    "problem {} ({}) has {got} samples, fewer than k = {k}",
                    p.index, p.id
                )));
            }
            pass.push(pass_at_k(got as u64, p.correct() as u64, k as u64).map_err(train_err)?);
            let votes: Vec<Option<String>> =
                p.samples.iter().map(|s| vote_key(&s.details)).collect();
            let correct: Vec<bool> = p.samples.iter().map(|s| s.is_correct()).collect();
            maj.push(maj_at_k(&votes, &correct, k).map_err(train_err)?);
            let scores: Vec<f64> = p.samples.iter().map(|s| s.score).collect();
            meank.push(mean_at_k(&scores, k).map_err(train_err)?);
            if reranked {
                let r: Vec<Option<f64>> = p.samples.iter().map(|s| s.rerank_score).collect();
                rerank.push(rerank_at_k(&r, &correct, k)?);
            }
        }
        m.insert(format!("pass@{k}"), mean(pass.into_iter()));
        m.insert(format!("maj@{k}"), mean(maj.into_iter()));
        m.insert(format!("mean@{k}"), mean(meank.into_iter()));
        if reranked {
            m.insert(format!("rerank@{k}"), mean(rerank.into_iter()));
        }
    }
    m.insert("n".into(), json!(n));
    m.insert("num_problems".into(), json!(measured.len()));
    m.insert(
        "skipped_problems".into(),
        json!(problems.len() - measured.len()),
    );
    let samples: Vec<_> = measured.iter().flat_map(|p| p.samples.iter()).collect();
    m.insert("num_samples".into(), json!(samples.len()));
    for st in STATUSES {
        m.insert(
            st.into(),
            json!(samples.iter().filter(|s| s.status == st).count()),
        );
    }
    m.insert("mean_score".into(), mean(samples.iter().map(|s| s.score)));
    // Length statistics are over generated samples (a failed prompt's stand-ins have none).
    let generated: Vec<_> = samples.iter().filter(|s| s.generated()).collect();
    m.insert(
        "mean_response_tokens".into(),
        mean(generated.iter().map(|s| s.tokens as f64)),
    );
    m.insert(
        "truncation_rate".into(),
        mean(generated.iter().map(|s| f64::from(u8::from(s.truncated)))),
    );
    Ok(m)
}

/// A subset label of a JSON value: strings as they are, other values as JSON.
fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The summary: [`metrics`] of all problems, plus `subsets`: `{"data_source": {source:
/// metrics}, FIELD: {value: metrics}}` for each field of `group_by` (looked up in each
/// problem's `extra_info`; problems without it are grouped under `(missing)`).
pub fn summarize(
    problems: &[ProblemResult],
    n: usize,
    ks: &[usize],
    group_by: &[String],
) -> Result<Map<String, Value>> {
    check_ks(ks, n)?;
    let all: Vec<&ProblemResult> = problems.iter().collect();
    let mut out = metrics(&all, n, ks)?;
    let mut subsets = Map::new();
    let mut fields: Vec<&str> = vec!["data_source"];
    fields.extend(
        group_by
            .iter()
            .map(String::as_str)
            .filter(|f| *f != "data_source"),
    );
    for field in fields {
        let mut groups: BTreeMap<String, Vec<&ProblemResult>> = BTreeMap::new();
        for p in problems {
            let key = if field == "data_source" {
                p.data_source.clone()
            } else {
                p.extra_info
                    .get(field)
                    .filter(|v| !v.is_null())
                    .map(label)
                    .unwrap_or_else(|| "(missing)".into())
            };
            groups.entry(key).or_default().push(p);
        }
        let mut by = Map::new();
        for (key, ps) in groups {
            by.insert(key, Value::Object(metrics(&ps, n, ks)?));
        }
        subsets.insert(field.to_string(), Value::Object(by));
    }
    out.insert("subsets".into(), Value::Object(subsets));
    Ok(out)
}
