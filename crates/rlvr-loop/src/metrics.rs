//! The metrics of one RL step: one map filled by the phases, the timer every phase runs under
//! (`timing/{phase}_s`, summed when a phase runs several times, as the sampling rounds of
//! dynamic sampling do), and the data metrics of the samples (verl's `compute_data_metrics`).

use std::time::Instant;

use rlvr_verify::Status;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::trainer::Sample;

/// The metrics of one step.
#[derive(Debug, Default)]
pub struct StepMetrics {
    map: Map<String, Value>,
}

impl StepMetrics {
    /// Runs `f` as the phase `name`; its wall time is added to `timing/{name}_s`.
    pub fn timed<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let out = f(self);
        self.add(&format!("timing/{name}_s"), t.elapsed().as_secs_f64());
        out
    }

    /// Sets `key` (numbers, counts, null).
    pub fn set(&mut self, key: &str, value: impl Serialize) {
        self.map.insert(key.to_string(), json!(value));
    }

    /// Adds `x` to the number at `key` (0 when absent).
    pub fn add(&mut self, key: &str, x: f64) {
        let old = self.get(key).unwrap_or(0.0);
        self.set(key, old + x);
    }

    /// The number at `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.map.get(key).and_then(Value::as_f64)
    }

    /// The map.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }
}

/// Mean of `xs` (0 when empty).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Population standard deviation of `xs`.
pub fn std_pop(xs: &[f64]) -> f64 {
    let m = mean(xs);
    mean(&xs.iter().map(|x| (x - m) * (x - m)).collect::<Vec<_>>()).sqrt()
}

/// Mean of `(value, weight)` pairs weighted by their weights (0 when they weigh nothing).
pub fn weighted_mean(xs: &[(f64, f64)]) -> f64 {
    let w: f64 = xs.iter().map(|x| x.1).sum();
    if w > 0.0 {
        xs.iter().map(|x| x.0 * x.1).sum::<f64>() / w
    } else {
        0.0
    }
}

/// Reward, verdict and length metrics over everything sampled in a step (before filtering).
pub fn data_metrics(sampled: &[Sample], m: &mut StepMetrics) {
    let n = sampled.len().max(1) as f64;
    let frac = |f: &dyn Fn(&Sample) -> bool| sampled.iter().filter(|s| f(s)).count() as f64 / n;
    let rewards: Vec<f64> = sampled.iter().map(|s| s.reward).collect();
    m.set("reward/mean", mean(&rewards));
    m.set("reward/std", std_pop(&rewards));
    for st in Status::ALL {
        let c = sampled.iter().filter(|s| s.outcome.status == st).count();
        m.set(&format!("status/{}", st.as_str()), c);
    }
    m.set("accuracy", frac(&|s| s.outcome.status == Status::Correct));
    let lens: Vec<f64> = sampled
        .iter()
        .map(|s| s.completion.tokens.len() as f64)
        .collect();
    m.set("response_length/mean", mean(&lens));
    m.set(
        "response_length/max",
        lens.iter().cloned().fold(0.0, f64::max),
    );
    m.set(
        "response_length/truncation_rate",
        frac(&|s| s.completion.truncated),
    );
}
