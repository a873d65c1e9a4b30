//! Concurrent verification: a bounded number of verifier calls in flight on tokio's blocking
//! pool, each with a timeout. A timeout or a panicking verifier is an `error` outcome; the
//! run goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rlvr_data::Example;
use rlvr_verify::{Outcome, RewardMapping, Verifier, VerifyInput};
use serde_json::{json, Value};

use crate::prompts::metadata;

/// The verifiers of a run: one per `data_source` where configured, else the default.
#[derive(Clone)]
pub struct Verifiers {
    default: Arc<dyn Verifier>,
    by_source: BTreeMap<String, Arc<dyn Verifier>>,
}

impl Verifiers {
    /// Builds the default spec and the per-source specs (registry specs: a name or an object).
    pub fn new(
        default: &Value,
        by_source: &BTreeMap<String, Value>,
    ) -> Result<Self, rlvr_verify::VerifyError> {
        let mut map = BTreeMap::new();
        for (source, spec) in by_source {
            map.insert(source.clone(), rlvr_verify::registry::from_spec(spec)?);
        }
        Ok(Verifiers {
            default: rlvr_verify::registry::from_spec(default)?,
            by_source: map,
        })
    }

    /// One verifier for everything.
    pub fn single(v: Arc<dyn Verifier>) -> Self {
        Verifiers {
            default: v,
            by_source: BTreeMap::new(),
        }
    }

    /// The verifier of a data source.
    pub fn for_source(&self, data_source: &str) -> &Arc<dyn Verifier> {
        self.by_source.get(data_source).unwrap_or(&self.default)
    }
}

/// One verifier call.
#[derive(Clone)]
pub struct Job {
    /// The verifier to call.
    pub verifier: Arc<dyn Verifier>,
    /// The completion text.
    pub response: String,
    /// The reference.
    pub ground_truth: Value,
    /// Metadata (`data_source`, `extra_info`, …).
    pub metadata: Value,
}

/// Verifies `jobs` with at most `concurrency` calls in flight, each bounded by `timeout`.
/// Outcomes come back in the order of `jobs`.
pub fn verify_all(
    rt: &tokio::runtime::Runtime,
    jobs: Vec<Job>,
    concurrency: usize,
    timeout: Duration,
) -> Vec<Outcome> {
    let mapping = RewardMapping::default();
    rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut handles = Vec::with_capacity(jobs.len());
        for job in jobs {
            let sem = sem.clone();
            let v = job.verifier.clone();
            handles.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore never closed");
                let call = tokio::task::spawn_blocking(move || {
                    v.verify(&VerifyInput {
                        response: &job.response,
                        ground_truth: &job.ground_truth,
                        metadata: &job.metadata,
                    })
                });
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => Outcome::error(&mapping, format!("verifier panicked: {e}")),
                    Err(_) => Outcome::with_status(
                        rlvr_verify::Status::Error,
                        &mapping,
                        json!({"reason": "timeout", "timeout_ms": timeout.as_millis() as u64}),
                    ),
                }
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(match h.await {
                Ok(o) => o,
                Err(e) => Outcome::error(&mapping, format!("verification task failed: {e}")),
            });
        }
        out
    })
}

/// One verifier call per completion; `example_of(prompt_index)` gives its example.
pub fn verify_jobs<'e>(
    completions: &[rlvr_rollout::Completion],
    example_of: impl Fn(usize) -> &'e Example,
    verifiers: &Verifiers,
) -> Vec<Job> {
    completions
        .iter()
        .map(|c| {
            let ex = example_of(c.prompt_index);
            Job {
                verifier: verifiers.for_source(&ex.data_source).clone(),
                response: response_text(c),
                ground_truth: ex.ground_truth.clone(),
                metadata: metadata(ex),
            }
        })
        .collect()
}

/// The text a verifier sees: everything before a stop string, else the whole completion.
pub fn response_text(c: &rlvr_rollout::Completion) -> String {
    match c.stop_offset {
        Some(off) => c.text[..off].to_string(),
        None => c.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Slow;
    impl Verifier for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
            match input.response {
                "sleep" => std::thread::sleep(Duration::from_millis(2000)),
                "panic" => panic!("boom"),
                _ => {}
            }
            Outcome::with_status(
                rlvr_verify::Status::Correct,
                &RewardMapping::default(),
                json!({}),
            )
        }
    }

    #[test]
    fn verifiers_are_chosen_by_data_source() {
        let by: BTreeMap<String, Value> = [("arithmetic".to_string(), json!("format"))].into();
        let v = Verifiers::new(&json!("math"), &by).unwrap();
        assert_eq!(v.for_source("arithmetic").name(), "format");
        assert_eq!(v.for_source("gsm8k").name(), "math");
        let bad: BTreeMap<String, Value> = [("x".to_string(), json!("nonsense"))].into();
        assert!(Verifiers::new(&json!("math"), &bad).is_err());
    }

    #[test]
    fn timeouts_and_panics_are_error_outcomes_in_order() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let v: Arc<dyn Verifier> = Arc::new(Slow);
        let job = |r: &str| Job {
            verifier: v.clone(),
            response: r.into(),
            ground_truth: json!("1"),
            metadata: json!({}),
        };
        let out = verify_all(
            &rt,
            vec![job("ok"), job("sleep"), job("panic"), job("ok")],
            2,
            Duration::from_millis(200),
        );
        let st: Vec<_> = out.iter().map(|o| o.status.as_str()).collect();
        assert_eq!(st, ["correct", "error", "error", "correct"]);
        assert_eq!(out[1].details["reason"], "timeout");
    }
}
