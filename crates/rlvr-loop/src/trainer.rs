//! One RL step as named phases over one batch ([`StepBatch`]), each timed under its name
//! (`timing/{phase}_s`):
//!
//! 1. `rollout` — prompts → G completions each (+ a greedy one when the estimator needs a
//!    baseline) ([`crate::collect`]);
//! 2. `verify` — verdicts → shaped rewards, grouped by prompt; dynamic sampling filters and may
//!    ask for another round of 1–2;
//! 3. `old_logprob` — the sampling policy's log-probs, only for off-policy updates
//!    ([`crate::logprobs`]); `ref_logprob` — the reference policy's (KL); `values` — the
//!    critic's (PPO);
//! 4. `advantages` — token rewards, KL penalty, the estimator ([`crate::advantage`]);
//! 5. `update` — epochs × mini-batches of guarded optimiser steps ([`crate::update`]);
//! 6. metrics — the data metrics of everything sampled ([`crate::metrics`]).
//!
//! What runs is what the algorithm says it needs ([`rlvr_train::AlgorithmConfig::needs`]).

use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rlvr_model::{CausalLm, ModelDir};
use rlvr_rollout::Completion;
use rlvr_train::optim::AdamW;
use rlvr_train::Needs;
use rlvr_verify::Outcome;
use serde_json::{Map, Value};

use crate::advantage::rows_to;
pub use crate::advantage::{token_rewards, TokenRewards};
use crate::config::TrainConfig;
use crate::critic::Critic;
use crate::error::Result;
use crate::metrics::{data_metrics, StepMetrics};
use crate::prompts::PromptSource;
use rlvr_rewards::Verifiers;

/// One sampled completion with its verdict.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Stream position of its prompt.
    pub key: u64,
    /// The prompt's token ids.
    pub prompt_ids: Arc<Vec<u32>>,
    /// The prompt's text.
    pub prompt_text: Arc<String>,
    /// Data source of the example.
    pub data_source: String,
    /// The completion.
    pub completion: Completion,
    /// The verifier's outcome.
    pub outcome: Outcome,
    /// Reward after shaping.
    pub reward: f64,
    /// ReMax: the shaped reward of the greedy completion of the same prompt (the baseline);
    /// `None` for other estimators.
    pub baseline: Option<f64>,
}

/// Everything a step needs and updates.
pub struct Trainer<'a> {
    /// The configuration.
    pub cfg: &'a TrainConfig,
    /// The policy being trained.
    pub policy: &'a ModelDir,
    /// The frozen reference policy (when KL is used).
    pub reference: Option<&'a CausalLm>,
    /// The optimiser.
    pub opt: &'a mut AdamW,
    /// The reward (per data source).
    pub verifiers: &'a Verifiers,
    /// Training prompts.
    pub source: &'a PromptSource,
    /// Runtime of the verifier pool.
    pub rt: &'a tokio::runtime::Runtime,
    /// Next stream position of the prompt source (checkpointed).
    pub data_pos: u64,
    /// The value model (PPO: the `gae` estimator); `None` otherwise.
    pub critic: Option<&'a mut Critic>,
}

/// The result of a step.
pub struct StepOutput {
    /// Metrics (numbers, and counts).
    pub metrics: Map<String, Value>,
    /// The samples (for the store).
    pub samples: Vec<Sample>,
}

/// The batch one step trains on, filled phase by phase.
#[derive(Default)]
pub struct StepBatch {
    /// The samples the update trains on.
    pub samples: Vec<Sample>,
    /// The longest response: the width of the `(B, R)` fields.
    pub r_max: usize,
    /// `(B, R)` response mask, row-major (the overlong filter applied).
    pub mask: Vec<f32>,
    /// The sampling policy's log-probs per row (off-policy updates only).
    pub old: Option<Vec<Vec<f32>>>,
    /// `Σ_v π_v²` per row from the old log-prob pass (the optimal token baselines).
    pub sum_pi_squared: Option<Vec<Vec<f32>>>,
    /// The reference policy's log-probs per row (KL).
    pub reference: Option<Vec<Vec<f32>>>,
    /// The critic's values per row (PPO).
    pub values: Option<Vec<Vec<f32>>>,
    /// `(B, R)` advantages.
    pub advantages: Vec<Vec<f32>>,
    /// `(B, R)` returns (PPO).
    pub returns: Vec<Vec<f32>>,
}

impl StepBatch {
    /// A batch of `samples`.
    pub fn new(samples: Vec<Sample>) -> Self {
        let r_max = samples
            .iter()
            .map(|s| s.completion.tokens.len())
            .max()
            .unwrap_or(1)
            .max(1);
        StepBatch {
            samples,
            r_max,
            ..StepBatch::default()
        }
    }

    /// (prompt, response) token rows.
    pub fn pairs(&self) -> Vec<(&[u32], &[u32])> {
        self.samples
            .iter()
            .map(|s| (&s.prompt_ids[..], &s.completion.tokens[..]))
            .collect()
    }

    /// Per-row values as a `(B, R)` tensor.
    pub fn rows_tensor(&self, rows: &[Vec<f32>], device: &Device) -> Result<Tensor> {
        rows_to(rows, self.r_max, device)
    }
}

impl Trainer<'_> {
    pub(crate) fn device(&self) -> &Device {
        self.policy.model.device()
    }

    pub(crate) fn pad_id(&self) -> u32 {
        self.policy.model.config().pad_token_id.unwrap_or(0)
    }

    /// What this step computes: the algorithm's needs at this run's epochs × mini-batches.
    pub fn needs(&self) -> Needs {
        let t = &self.cfg.trainer;
        self.cfg.algorithm.needs(t.ppo_epochs * t.mini_batches)
    }

    /// Runs step `step` (0-based): the phases of the module docs.
    pub fn step(&mut self, step: usize) -> Result<StepOutput> {
        let started = Instant::now();
        let seed = self
            .cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(step as u64);
        let needs = self.needs();
        let mut m = StepMetrics::default();
        let collected = self.collect(seed, needs, &mut m)?;
        data_metrics(&collected.sampled, &mut m);
        let mut b = StepBatch::new(collected.kept);
        if b.samples.is_empty() {
            m.set("skipped", 1);
        } else {
            if needs.old_logprobs {
                m.timed("old_logprob", |m| self.old_logprobs(&mut b, m))?;
            }
            if needs.reference {
                m.timed("ref_logprob", |_| self.reference_logprobs(&mut b))?;
            }
            if needs.critic {
                m.timed("values", |_| self.critic_values(&mut b))?;
            }
            m.timed("advantages", |m| self.advantages(&mut b, m))?;
            m.timed("update", |m| self.update(&b, m))?;
        }
        m.set("timing/step_s", started.elapsed().as_secs_f64());
        Ok(StepOutput {
            metrics: m.into_map(),
            samples: collected.sampled,
        })
    }
}
