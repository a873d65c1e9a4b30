//! Held-out evaluation during training: sample (greedy by default), verify, and summarise
//! accuracy, mean score, statuses, response length and truncation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rlvr_data::Example;
use rlvr_model::ModelDir;
use rlvr_rollout::{Prompt, RolloutEngine, SamplingParams};
use rlvr_verify::Status;
use serde::Serialize;

use crate::config::TrainConfig;
use crate::error::Result;
use crate::prompts::prompt_ids;
use rlvr_eval::verify_pool::{verify_all, verify_jobs, Verifiers};

/// An evaluation's summary.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct EvalResult {
    /// Fraction of samples whose status is `correct` (pass@1 estimated from `n` samples at the
    /// eval temperature).
    pub accuracy: f64,
    /// Fraction of problems answered correctly by greedy decoding (when measured).
    pub greedy_accuracy: Option<f64>,
    /// Sampling temperature of `accuracy`.
    pub temperature: f64,
    /// Mean verifier score.
    pub mean_score: f64,
    /// Problems evaluated.
    pub num_problems: usize,
    /// Samples per problem.
    pub n: usize,
    /// Samples per status.
    pub statuses: BTreeMap<String, usize>,
    /// Mean generated tokens per sample.
    pub mean_response_tokens: f64,
    /// Fraction of samples cut at the token limit.
    pub truncation_rate: f64,
    /// Prompts left out as too long.
    pub filtered_prompts: usize,
    /// Wall seconds.
    pub seconds: f64,
}

/// Evaluates `model` on `examples` with the eval settings of `cfg` (and greedily too when
/// `eval.greedy` and the eval temperature is not already 0).
pub fn evaluate(
    md: &ModelDir,
    examples: &[Example],
    verifiers: &Verifiers,
    cfg: &TrainConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<EvalResult> {
    let started = Instant::now();
    let mut r = evaluate_at(
        md,
        examples,
        verifiers,
        cfg,
        rt,
        cfg.eval.temperature,
        cfg.eval.n,
    )?;
    if cfg.eval.temperature == 0.0 {
        r.greedy_accuracy = Some(r.accuracy);
    } else if cfg.eval.greedy {
        let g = evaluate_at(md, examples, verifiers, cfg, rt, 0.0, 1)?;
        r.greedy_accuracy = Some(g.accuracy);
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

fn evaluate_at(
    md: &ModelDir,
    examples: &[Example],
    verifiers: &Verifiers,
    cfg: &TrainConfig,
    rt: &tokio::runtime::Runtime,
    temperature: f64,
    n: usize,
) -> Result<EvalResult> {
    let started = Instant::now();
    let engine = RolloutEngine::from_model_dir(md).with_options(cfg.rollout.engine.clone());
    let mut prompts = Vec::with_capacity(examples.len());
    for (i, ex) in examples.iter().enumerate() {
        prompts.push(Prompt {
            ids: prompt_ids(&md.tokenizer, ex, cfg.data.chat_template)?,
            key: i as u64,
        });
    }
    let params = SamplingParams {
        temperature,
        top_p: if temperature > 0.0 {
            cfg.rollout.top_p
        } else {
            1.0
        },
        top_k: if temperature > 0.0 {
            cfg.rollout.top_k
        } else {
            0
        },
        max_new_tokens: cfg
            .eval
            .max_new_tokens
            .unwrap_or(cfg.rollout.max_new_tokens),
        stop: cfg.rollout.stop.clone(),
        n,
        max_prompt_len: Some(cfg.rollout.max_prompt_len),
        seed: cfg.seed ^ 0xe7a1,
        ..SamplingParams::default()
    };
    let out = engine.generate_keyed(&prompts, &params)?;
    let jobs = verify_jobs(&out.completions, |i| &examples[i], verifiers);
    let outcomes = verify_all(
        rt,
        jobs,
        cfg.trainer.verify_concurrency,
        Duration::from_millis(cfg.trainer.verify_timeout_ms),
    );
    let total = outcomes.len().max(1) as f64;
    let mut statuses: BTreeMap<String, usize> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for o in &outcomes {
        *statuses.entry(o.status.as_str().to_string()).or_default() += 1;
    }
    Ok(EvalResult {
        accuracy: statuses["correct"] as f64 / total,
        greedy_accuracy: None,
        temperature,
        mean_score: outcomes.iter().map(|o| o.score as f64).sum::<f64>() / total,
        num_problems: examples.len() - out.filtered.len(),
        n,
        statuses,
        mean_response_tokens: out
            .completions
            .iter()
            .map(|c| c.tokens.len() as f64)
            .sum::<f64>()
            / total,
        truncation_rate: out.completions.iter().filter(|c| c.truncated).count() as f64 / total,
        filtered_prompts: out.filtered.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
