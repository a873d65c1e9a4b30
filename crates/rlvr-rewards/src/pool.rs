//! Concurrent verification: a bounded number of verifier calls in flight on tokio's blocking
//! pool, each with a timeout. A timeout or a panicking verifier is an `error` outcome; the
//! run goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rlvr_verify::{Outcome, RewardMapping, Verifier, VerifyInput};
use serde_json::{json, Value};

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

/// Verifies `jobs` with at most `concurrency` calls in flight. Jobs of one verifier go to it
/// in chunks of its [`Verifier::batch_hint`] (one item per call for most verifiers; a reward
/// model's forward-pass batch, a Python worker's batch…) through `verify_batch`. A call is
/// bounded by `timeout` per item, `timeout × min(n, 10)` for a chunk of `n`; past it every item
/// of the chunk is an `error` outcome. Outcomes come back in the order of `jobs`.
pub fn verify_all(
    rt: &tokio::runtime::Runtime,
    jobs: Vec<Job>,
    concurrency: usize,
    timeout: Duration,
) -> Vec<Outcome> {
    let mapping = RewardMapping::default();
    let n = jobs.len();
    // Chunks of job indices, each for one verifier (compared by identity), in job order.
    let mut groups: Vec<(Arc<dyn Verifier>, Vec<usize>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let key = Arc::as_ptr(&job.verifier) as *const ();
        match groups
            .iter_mut()
            .find(|(v, _)| Arc::as_ptr(v) as *const () == key)
        {
            Some((_, idx)) => idx.push(i),
            None => groups.push((job.verifier.clone(), vec![i])),
        }
    }
    let mut chunks: Vec<(Arc<dyn Verifier>, Vec<usize>)> = Vec::new();
    for (v, idx) in groups {
        let size = v.batch_hint().max(1);
        chunks.extend(idx.chunks(size).map(|c| (v.clone(), c.to_vec())));
    }
    let jobs = Arc::new(jobs);
    let outcomes: Vec<(Vec<usize>, Vec<Outcome>)> = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut handles = Vec::with_capacity(chunks.len());
        for (v, idx) in chunks {
            let (sem, jobs) = (sem.clone(), jobs.clone());
            let limit = timeout * (idx.len().min(10) as u32);
            let idx_task = idx.clone();
            let handle = tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore never closed");
                let call = tokio::task::spawn_blocking(move || {
                    let inputs: Vec<VerifyInput<'_>> = idx_task
                        .iter()
                        .map(|&i| VerifyInput {
                            response: &jobs[i].response,
                            ground_truth: &jobs[i].ground_truth,
                            metadata: &jobs[i].metadata,
                        })
                        .collect();
                    if inputs.len() == 1 {
                        vec![v.verify(&inputs[0])]
                    } else {
                        v.verify_batch(&inputs)
                    }
                });
                tokio::time::timeout(limit, call).await
            });
            handles.push((idx, handle, limit));
        }
        let mut out = Vec::with_capacity(handles.len());
        for (idx, h, limit) in handles {
            let k = idx.len();
            let got = match h.await {
                Ok(Ok(Ok(o))) if o.len() == k => o,
                Ok(Ok(Ok(o))) => vec![
                    Outcome::error(
                        &mapping,
                        format!("the verifier returned {} outcomes for {k} items", o.len())
                    );
                    k
                ],
                Ok(Ok(Err(e))) => {
                    vec![Outcome::error(&mapping, format!("verifier panicked: {e}")); k]
                }
                Ok(Err(_)) => vec![
                    Outcome::with_status(
                        rlvr_verify::Status::Error,
                        &mapping,
                        json!({"reason": "timeout", "timeout_ms": limit.as_millis() as u64,
                            "batch": k}),
                    );
                    k
                ],
                Err(e) => {
                    vec![Outcome::error(&mapping, format!("verification task failed: {e}")); k]
                }
            };
            out.push((idx, got));
        }
        out
    });
    let mut slots: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    for (idx, got) in outcomes {
        for (i, o) in idx.into_iter().zip(got) {
            slots[i] = Some(o);
        }
    }
    slots
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::error(&mapping, "no outcome")))
        .collect()
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
                "sleep" => std::thread::sleep(Duration::from_millis(6000)),
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

    /// Echoes the response as the score and records the size of every call.
    struct Batcher(std::sync::Mutex<Vec<usize>>);
    impl Verifier for Batcher {
        fn name(&self) -> &str {
            "batcher"
        }
        fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
            self.verify_batch(std::slice::from_ref(input)).remove(0)
        }
        fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
            self.0.lock().unwrap().push(inputs.len());
            inputs
                .iter()
                .map(|i| Outcome {
                    score: i.response.parse().unwrap_or(-1.0),
                    status: rlvr_verify::Status::Correct,
                    details: json!({}),
                })
                .collect()
        }
        fn batch_hint(&self) -> usize {
            4
        }
    }

    #[test]
    fn batching_verifiers_get_chunks_and_outcomes_stay_in_order() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let batcher = Arc::new(Batcher(std::sync::Mutex::new(Vec::new())));
        let b: Arc<dyn Verifier> = batcher.clone();
        let single: Arc<dyn Verifier> = Arc::new(Slow);
        let jobs: Vec<Job> = (0..13)
            .map(|i| Job {
                // Every third job goes to the per-item verifier, interleaved.
                verifier: if i % 3 == 2 {
                    single.clone()
                } else {
                    b.clone()
                },
                response: if i % 3 == 2 {
                    "ok".into()
                } else {
                    i.to_string()
                },
                ground_truth: json!("1"),
                metadata: json!({}),
            })
            .collect();
        let out = verify_all(&rt, jobs, 3, Duration::from_secs(5));
        assert_eq!(out.len(), 13);
        for (i, o) in out.iter().enumerate() {
            if i % 3 == 2 {
                assert_eq!(o.score, 1.0, "{i}");
            } else {
                assert_eq!(o.score, i as f32, "{i}");
            }
        }
        let mut sizes = batcher.0.lock().unwrap().clone();
        sizes.sort();
        assert_eq!(sizes, [1, 4, 4], "nine batched jobs in chunks of at most 4");
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
            // Room for the quick jobs on a loaded machine; far below the 6 s sleep.
            Duration::from_millis(1500),
        );
        let st: Vec<_> = out.iter().map(|o| o.status.as_str()).collect();
        assert_eq!(st, ["correct", "error", "error", "correct"]);
        assert_eq!(out[1].details["reason"], "timeout");
    }
}
