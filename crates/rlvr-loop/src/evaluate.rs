//! Held-out evaluation during training, through `rlvr-eval` (the evaluator behind
//! `rlvr eval`): sample `eval.n` per problem at the eval temperature (and greedily), verify,
//! and summarise accuracy (pass@1 estimated from the samples), pass@k / maj@k / mean@k,
//! statuses, response length and truncation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rlvr_data::Example;
use rlvr_eval::backend::{EngineBackend, GenerateParams};
use rlvr_eval::evaluator::{evaluate as eval_problems, EvalSettings, NoCache};
use rlvr_model::ModelDir;
use rlvr_rewards::Verifiers;
use rlvr_rollout::SamplingParams;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::TrainConfig;
use crate::error::Result;

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
    /// `pass@1`, `maj@1`, `mean@1` and the same at k = n (rlvr eval's keys).
    #[serde(default)]
    pub at_k: Value,
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
) -> Result<EvalResult> {
    let started = Instant::now();
    let mut r = evaluate_at(
        md,
        examples,
        verifiers,
        cfg,
        cfg.eval.temperature,
        cfg.eval.n,
    )?;
    if cfg.eval.temperature == 0.0 {
        r.greedy_accuracy = Some(r.accuracy);
    } else if cfg.eval.greedy {
        let g = evaluate_at(md, examples, verifiers, cfg, 0.0, 1)?;
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
    temperature: f64,
    n: usize,
) -> Result<EvalResult> {
    let started = Instant::now();
    let params = GenerateParams {
        sampling: SamplingParams {
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
        },
        chat_template: cfg.data.chat_template,
    };
    let mut ks = vec![1];
    if n > 1 {
        ks.push(n);
    }
    let mut settings = EvalSettings::new(params, ks.clone());
    settings.chunk_size = 64;
    settings.verify_concurrency = cfg.trainer.verify_concurrency;
    settings.verify_timeout = Duration::from_millis(cfg.trainer.verify_timeout_ms);
    let backend = EngineBackend {
        model: md,
        options: cfg.rollout.engine.clone(),
    };
    let out = eval_problems(
        &backend,
        examples,
        verifiers,
        &settings,
        &mut NoCache,
        &mut |_, _| {},
    )?;
    // rlvr eval's summary has every figure; read them from it rather than count again.
    let metrics = rlvr_eval::summarize(&out.problems, n, &ks, &[])?;
    let num = |k: &str| metrics.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let count = |k: &str| metrics.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
    let statuses: BTreeMap<String, usize> = ["correct", "incorrect", "invalid", "error"]
        .iter()
        .map(|s| (s.to_string(), count(s)))
        .collect();
    let at_k: Map<String, Value> = metrics
        .iter()
        .filter(|(k, _)| k.contains('@'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(EvalResult {
        accuracy: count("correct") as f64 / count("num_samples").max(1) as f64,
        greedy_accuracy: None,
        temperature,
        mean_score: num("mean_score"),
        num_problems: count("num_problems"),
        n,
        statuses,
        mean_response_tokens: num("mean_response_tokens"),
        truncation_rate: num("truncation_rate"),
        filtered_prompts: count("skipped_problems"),
        at_k: Value::Object(at_k),
        seconds: started.elapsed().as_secs_f64(),
    })
}
