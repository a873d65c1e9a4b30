//! The evaluation loop with a scripted backend: per-prompt failures become `error` samples,
//! over-long prompts are left out, chunks are cached and a second run samples only what is
//! missing; the run store works as the cache.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rlvr_data::{Example, Prompt};
use rlvr_eval::backend::{
    Backend, EvalPrompt, GenerateParams, PromptFailure, PromptOutcome, SampleOut,
};
use rlvr_eval::evaluator::{evaluate, EvalSettings, NoCache, ProblemCache, StoreCache};
use rlvr_eval::{ProblemResult, Result};
use rlvr_rewards::Verifiers;
use rlvr_rollout::SamplingParams;
use serde_json::json;

fn example(i: usize) -> Example {
    Example {
        id: format!("t/{i}"),
        prompt: Prompt::user(format!("what is {i} + 0?")),
        ground_truth: json!(i.to_string()),
        data_source: "toy".into(),
        extra_info: json!({"level": i % 2}),
    }
}

/// Answers `\boxed{i}` for problem i (sample 0) and `\boxed{i+1}` otherwise; problem 1 fails,
/// problem 2 is too long, problem 3 gets too few samples. Records the keys it was asked for.
#[derive(Default)]
struct Scripted {
    calls: RefCell<Vec<Vec<u64>>>,
}

impl Backend for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn generate(
        &self,
        prompts: &[EvalPrompt<'_>],
        params: &GenerateParams,
    ) -> Result<Vec<PromptOutcome>> {
        self.calls
            .borrow_mut()
            .push(prompts.iter().map(|p| p.key).collect());
        let n = params.sampling.n;
        Ok(prompts
            .iter()
            .map(|p| {
                let i = p.key as usize;
                let result = match i {
                    1 => Err(PromptFailure::Failed {
                        reason: "HTTP 500 after 3 retries".into(),
                    }),
                    2 => Err(PromptFailure::TooLong { len: 99, max: 10 }),
                    3 => Ok(vec![]),
                    _ => Ok((0..n)
                        .map(|j| SampleOut {
                            text: format!("\\boxed{{{}}}", if j == 0 { i } else { i + 1 }),
                            tokens: 5,
                            truncated: false,
                            finish_reason: "stop_id".into(),
                        })
                        .collect()),
                };
                PromptOutcome {
                    rendered: format!("prompt {i}"),
                    result,
                }
            })
            .collect())
    }
}

#[derive(Default)]
struct MemCache {
    map: BTreeMap<usize, ProblemResult>,
    flushes: usize,
}

impl ProblemCache for MemCache {
    fn get(&self, index: usize) -> Result<Option<ProblemResult>> {
        Ok(self.map.get(&index).cloned())
    }
    fn put(&mut self, r: &ProblemResult) -> Result<()> {
        self.map.insert(r.index, r.clone());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

fn settings(n: usize, chunk: usize) -> EvalSettings {
    let mut s = EvalSettings::new(
        GenerateParams {
            sampling: SamplingParams {
                n,
                ..SamplingParams::default()
            },
            chat_template: true,
        },
        vec![1, n],
    );
    s.chunk_size = chunk;
    s
}

fn math() -> Verifiers {
    Verifiers::single(rlvr_verify::registry::build("math").unwrap())
}

#[test]
fn per_prompt_failures_chunks_and_cache() {
    let examples: Vec<Example> = (0..7).map(example).collect();
    let backend = Scripted::default();
    let mut cache = MemCache::default();
    let mut progress = Vec::new();
    let out = evaluate(
        &backend,
        &examples[..5],
        &math(),
        &settings(3, 2),
        &mut cache,
        &mut |d, t| progress.push((d, t)),
    )
    .unwrap();
    assert_eq!(
        *backend.calls.borrow(),
        vec![vec![0, 1], vec![2, 3], vec![4]]
    );
    assert_eq!(progress, vec![(2, 5), (4, 5), (5, 5)]);
    assert_eq!(cache.flushes, 3);
    assert_eq!((out.sampled_problems, out.cached_problems), (5, 0));
    let p = &out.problems;
    assert_eq!(p.len(), 5);
    // Problem 0: one correct of three, verified by the math verifier.
    let st: Vec<&str> = p[0].samples.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(st, ["correct", "incorrect", "incorrect"]);
    assert_eq!(p[0].samples[0].details["extracted"], "0");
    assert_eq!(p[0].prompt, "prompt 0");
    // Problem 1: the backend failed → n error samples with the reason.
    assert_eq!(p[1].samples.len(), 3);
    assert!(p[1].samples.iter().all(|s| s.status == "error"));
    assert_eq!(
        p[1].samples[2].details["reason"],
        "HTTP 500 after 3 retries"
    );
    // Problem 2: too long → skipped, no samples.
    assert!(p[2].skipped.as_deref().unwrap().contains("99"));
    assert!(p[2].samples.is_empty());
    // Problem 3: wrong sample count → error samples naming it.
    assert!(p[3].samples[0].details["reason"]
        .as_str()
        .unwrap()
        .contains("returned 0 samples, expected 3"));

    let s = rlvr_eval::summarize(&out.problems, 3, &[1, 3], &[]).unwrap();
    assert_eq!(s["num_problems"], json!(4));
    assert_eq!(s["skipped_problems"], json!(1));
    assert_eq!(s["error"], json!(6));
    assert_eq!(s["correct"], json!(2));
    assert!((s["pass@3"].as_f64().unwrap() - 0.5).abs() < 1e-12);

    // Continue with all 7: only 5 and 6 are sampled, in their fixed chunk blocks.
    let backend2 = Scripted::default();
    let out2 = evaluate(
        &backend2,
        &examples,
        &math(),
        &settings(3, 2),
        &mut cache,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(*backend2.calls.borrow(), vec![vec![5], vec![6]]);
    assert_eq!((out2.sampled_problems, out2.cached_problems), (2, 5));
    assert_eq!(&out2.problems[..5], &out.problems[..]);

    // A cache made on other data is refused.
    let mut other = examples.clone();
    other[0].id = "different".into();
    let e = evaluate(
        &backend2,
        &other,
        &math(),
        &settings(3, 2),
        &mut cache,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("other data"), "{e}");
    // ... and so is k > n, before any sampling.
    let mut bad = settings(3, 2);
    bad.ks = vec![4];
    let e = evaluate(
        &backend2,
        &examples,
        &math(),
        &bad,
        &mut NoCache,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--k 4"), "{e}");
}

#[test]
fn the_run_store_caches_problems_across_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let examples: Vec<Example> = (4..6).map(example).collect();
    let first = {
        let store = rlvr_store::Store::open(&tmp.path().join("store")).unwrap();
        let out = evaluate(
            &Scripted::default(),
            &examples,
            &math(),
            &settings(2, 16),
            &mut StoreCache(&store),
            &mut |_, _| {},
        )
        .unwrap();
        store.flush().unwrap();
        out
    };
    let store = rlvr_store::Store::open(&tmp.path().join("store")).unwrap();
    let backend = Scripted::default();
    let again = evaluate(
        &backend,
        &examples,
        &math(),
        &settings(2, 16),
        &mut StoreCache(&store),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(backend.calls.borrow().is_empty());
    assert_eq!(again.cached_problems, 2);
    assert_eq!(again.problems, first.problems);
}

#[test]
fn a_verifier_that_panics_gives_error_samples() {
    struct Panics;
    impl rlvr_verify::Verifier for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn verify(&self, _: &rlvr_verify::VerifyInput<'_>) -> rlvr_verify::Outcome {
            panic!("boom")
        }
    }
    let examples = vec![example(0)];
    let out = evaluate(
        &Scripted::default(),
        &examples,
        &Verifiers::single(Arc::new(Panics)),
        &settings(2, 16),
        &mut NoCache,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(out.problems[0].samples.iter().all(|s| s.status == "error"));
}
