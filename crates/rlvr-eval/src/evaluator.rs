//! The evaluation loop: sample each problem `n` times through a [`Backend`], verify every
//! sample, and keep per-problem results in a [`ProblemCache`] so an interrupted evaluation
//! continues where it stopped.
//!
//! Problems go to the backend in chunks of `chunk_size` consecutive dataset positions; after
//! each chunk its results are put in the cache and the cache is flushed. Problems already in
//! the cache are not sampled again (their ids must match the dataset's: a cache made on other
//! data is an error). Sampling streams are keyed by the problem index, so the in-process
//! engine gives a problem the same samples whether it is sampled in one run or after a resume.

use std::time::{Duration, Instant};

use rlvr_data::Example;
use rlvr_rewards::{verify_all, Job, Verifiers};
use rlvr_verify::{RewardMapping, Status};
use serde_json::{json, Value};

use crate::backend::{Backend, EvalPrompt, GenerateParams, PromptFailure, PromptOutcome};
use crate::error::{EvalError, Result};
use crate::prompts::metadata;
use crate::results::{ProblemResult, SampleRecord};
use crate::summary::check_ks;

/// How to evaluate (besides the backend and the data).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSettings {
    /// Sampling settings (`sampling.n` samples per problem, `sampling.seed`, ...).
    pub params: GenerateParams,
    /// The ks of pass@K / maj@K / mean@K (each in `1..=n`).
    pub ks: Vec<usize>,
    /// Problems per backend call (and per cache flush).
    pub chunk_size: usize,
    /// Verifier calls in flight.
    pub verify_concurrency: usize,
    /// Time limit of one verifier call (past it: an `error` outcome).
    pub verify_timeout: Duration,
}

impl EvalSettings {
    /// Settings with `params`, `ks`, chunks of 16 problems, 4 concurrent verifier calls with a
    /// 10 s timeout each.
    pub fn new(params: GenerateParams, ks: Vec<usize>) -> Self {
        EvalSettings {
            params,
            ks,
            chunk_size: 16,
            verify_concurrency: 4,
            verify_timeout: Duration::from_secs(10),
        }
    }
}

/// Per-problem results kept across runs, keyed by problem index.
pub trait ProblemCache {
    /// The cached result of problem `index`, if any.
    fn get(&self, index: usize) -> Result<Option<ProblemResult>>;
    /// Stores a problem's result.
    fn put(&mut self, result: &ProblemResult) -> Result<()>;
    /// Makes everything stored so far durable.
    fn flush(&mut self) -> Result<()>;
}

/// No cache: every problem is sampled.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCache;

impl ProblemCache for NoCache {
    fn get(&self, _index: usize) -> Result<Option<ProblemResult>> {
        Ok(None)
    }
    fn put(&mut self, _result: &ProblemResult) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The key of problem `index` in a run store's `state` tree.
pub fn store_key(index: usize) -> String {
    format!("eval/problem/{index:09}")
}

/// A run's sled store as the cache: problem `i` under [`store_key`]`(i)` in the state tree.
pub struct StoreCache<'s>(pub &'s rlvr_store::Store);

impl ProblemCache for StoreCache<'_> {
    fn get(&self, index: usize) -> Result<Option<ProblemResult>> {
        match self.0.get_state(&store_key(index))? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
                EvalError::Other(format!(
                    "{}: cached result of problem {index} is unreadable: {e}",
                    self.0.path().display()
                ))
            }),
        }
    }
    fn put(&mut self, result: &ProblemResult) -> Result<()> {
        let v = serde_json::to_value(result)
            .map_err(|e| EvalError::Other(format!("encoding problem {}: {e}", result.index)))?;
        Ok(self.0.put_state(&store_key(result.index), &v)?)
    }
    fn flush(&mut self) -> Result<()> {
        Ok(self.0.flush()?)
    }
}

/// The results of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOutput {
    /// One result per example, in dataset order.
    pub problems: Vec<ProblemResult>,
    /// Problems sampled by this call.
    pub sampled_problems: usize,
    /// Problems taken from the cache.
    pub cached_problems: usize,
    /// Wall seconds of this call.
    pub seconds: f64,
}

fn failed_sample(sample: usize, reason: &str) -> SampleRecord {
    SampleRecord {
        sample,
        response: String::new(),
        score: f64::from(RewardMapping::default().score(Status::Error)),
        status: Status::Error.as_str().into(),
        details: json!({"reason": reason, "stage": "generation"}),
        tokens: 0,
        truncated: false,
        finish_reason: "error".into(),
        rerank_score: None,
    }
}

/// Samples and verifies every example not already in `cache` (see the module docs), calling
/// `progress(done, total)` after each chunk.
pub fn evaluate(
    backend: &dyn Backend,
    examples: &[Example],
    verifiers: &Verifiers,
    settings: &EvalSettings,
    cache: &mut dyn ProblemCache,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalOutput> {
    let started = Instant::now();
    let n = settings.params.sampling.n;
    check_ks(&settings.ks, n)?;
    settings.params.sampling.validate()?;
    let mut slots: Vec<Option<ProblemResult>> = Vec::with_capacity(examples.len());
    for (i, ex) in examples.iter().enumerate() {
        let cached = cache.get(i)?;
        if let Some(c) = &cached {
            if c.id != ex.id {
                return Err(EvalError::Other(format!(
                    "the cached result of problem {i} is for example {:?}, but the dataset has {:?} there: \
                     this run directory was made with other data (use a new --out)",
                    c.id, ex.id
                )));
            }
            if c.skipped.is_none() && c.samples.len() != n {
                return Err(EvalError::Other(format!(
                    "the cached result of problem {i} has {} samples, but n = {n} (use a new --out)",
                    c.samples.len()
                )));
            }
        }
        slots.push(cached);
    }
    let cached_problems = slots.iter().filter(|s| s.is_some()).count();
    let pending: Vec<usize> = (0..examples.len())
        .filter(|&i| slots[i].is_none())
        .collect();
    let chunk = settings.chunk_size.max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| EvalError::Other(format!("starting the verification runtime: {e}")))?;
    let mut done = cached_problems;
    // Chunks are fixed blocks of dataset positions, whatever is cached.
    let mut start = 0;
    while start < pending.len() {
        let block = pending[start] / chunk;
        let mut end = start;
        while end < pending.len() && pending[end] / chunk == block {
            end += 1;
        }
        let idx = &pending[start..end];
        start = end;
        let prompts: Vec<EvalPrompt<'_>> = idx
            .iter()
            .map(|&i| EvalPrompt {
                key: i as u64,
                example: &examples[i],
            })
            .collect();
        let outs = backend.generate(&prompts, &settings.params)?;
        if outs.len() != prompts.len() {
            return Err(EvalError::Other(format!(
                "backend {} answered {} prompts of {}",
                backend.describe(),
                outs.len(),
                prompts.len()
            )));
        }
        let results = score_chunk(idx, examples, outs, n, verifiers, settings, &rt);
        for r in results {
            cache.put(&r)?;
            let i = r.index;
            slots[i] = Some(r);
        }
        cache.flush()?;
        done += idx.len();
        progress(done, examples.len());
    }
    Ok(EvalOutput {
        problems: slots
            .into_iter()
            .map(|s| s.expect("every slot filled"))
            .collect(),
        sampled_problems: pending.len(),
        cached_problems,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Verifies one chunk's samples and builds its problem results.
fn score_chunk(
    idx: &[usize],
    examples: &[Example],
    outs: Vec<PromptOutcome>,
    n: usize,
    verifiers: &Verifiers,
    settings: &EvalSettings,
    rt: &tokio::runtime::Runtime,
) -> Vec<ProblemResult> {
    let mut jobs = Vec::new();
    let mut results = Vec::with_capacity(idx.len());
    // (result position, sample) of each job.
    let mut job_of = Vec::new();
    for (pos, (&i, out)) in idx.iter().zip(outs).enumerate() {
        let ex = &examples[i];
        let mut r = ProblemResult {
            index: i,
            id: ex.id.clone(),
            data_source: ex.data_source.clone(),
            extra_info: ex.extra_info.clone(),
            prompt: out.rendered,
            skipped: None,
            samples: Vec::new(),
        };
        let result = match out.result {
            Ok(s) if s.len() != n => Err(PromptFailure::Failed {
                reason: format!("the backend returned {} samples, expected {n}", s.len()),
            }),
            other => other,
        };
        match result {
            Ok(samples) => {
                for (j, s) in samples.into_iter().enumerate() {
                    jobs.push(Job {
                        verifier: verifiers.for_source(&ex.data_source).clone(),
                        response: s.text.clone(),
                        ground_truth: ex.ground_truth.clone(),
                        metadata: metadata(ex),
                    });
                    job_of.push((pos, j));
                    r.samples.push(SampleRecord {
                        sample: j,
                        response: s.text,
                        score: 0.0,
                        status: String::new(),
                        details: Value::Null,
                        tokens: s.tokens,
                        truncated: s.truncated,
                        finish_reason: s.finish_reason,
                        rerank_score: None,
                    });
                }
            }
            Err(PromptFailure::TooLong { len, max }) => {
                tracing::warn!(
                    "problem {i} ({}): prompt of {len} tokens is over the limit of {max}; left out",
                    ex.id
                );
                r.skipped = Some(format!(
                    "prompt of {len} tokens is longer than max_prompt_len {max}"
                ));
            }
            Err(PromptFailure::Failed { reason }) => {
                tracing::warn!("problem {i} ({}): sampling failed: {reason}", ex.id);
                r.samples = (0..n).map(|j| failed_sample(j, &reason)).collect();
            }
        }
        results.push(r);
    }
    let outcomes = verify_all(
        rt,
        jobs,
        settings.verify_concurrency,
        settings.verify_timeout,
    );
    for ((pos, j), o) in job_of.into_iter().zip(outcomes) {
        let s = &mut results[pos].samples[j];
        s.score = f64::from(o.score);
        s.status = o.status.as_str().to_string();
        s.details = o.details;
    }
    results
}
