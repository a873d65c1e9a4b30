//! The advantage phase of a step: token rewards (the outcome on the last token, or a PRM's step
//! scores on step-end tokens), the overlong filter, the KL penalty in the reward, then the
//! configured estimator.

use candle_core::{DType, Tensor};
use rlvr_train::advantages::{compute_advantages, AdvantageInputs, AdvantageParams};
use rlvr_train::kl::{apply_kl_penalty, kl_penalty};

use crate::batch::rows_to_tensor;
use crate::error::{LoopError, Result};
use crate::metrics::{mean, StepMetrics};
use crate::step_rewards::{placement, token_ends, token_of, StepRewardMode};
use crate::trainer::{Sample, StepBatch, Trainer};

impl Trainer<'_> {
    /// Phase "advantages": fills the batch's mask, advantages and (PPO) returns.
    pub(crate) fn advantages(&self, b: &mut StepBatch, m: &mut StepMetrics) -> Result<()> {
        let algo = &self.cfg.algorithm;
        let device = self.device().clone();
        let mode = self.cfg.trainer.step_rewards;
        let tr = token_rewards(&b.samples, b.r_max, mode, &self.policy.tokenizer)?;
        if mode != StepRewardMode::Outcome {
            let rows = b.samples.len().max(1) as f64;
            m.set("reward/step_rewarded_frac", tr.step_rewarded as f64 / rows);
            m.set(
                "reward/steps_per_response",
                tr.steps_placed as f64 / tr.step_rewarded.max(1) as f64,
            );
        }
        b.mask = tr.mask;
        if algo.overlong_filter {
            for (row, s) in b.mask.chunks_mut(b.r_max).zip(&b.samples) {
                if s.completion.truncated {
                    row.fill(0.0);
                }
            }
        }
        let shape = (b.samples.len(), b.r_max);
        let mask_t = Tensor::from_vec(b.mask.clone(), shape, &device)?;
        let mut rewards = Tensor::from_vec(tr.rewards, shape, &device)?;
        if let (Some(old), Some(reference)) = (&b.old, &b.reference) {
            let old_t = b.rows_tensor(old, &device)?;
            let ref_t = b.rows_tensor(reference, &device)?;
            let k = kl_penalty(&old_t, &ref_t, algo.kl.kl_loss_type)?;
            m.set(
                "actor/kl_ref",
                rlvr_train::host::masked_mean_tensor(&k, &mask_t)?,
            );
            if algo.kl.use_kl_in_reward {
                let (r, kl) = apply_kl_penalty(
                    &rewards,
                    &old_t,
                    &ref_t,
                    &mask_t,
                    algo.kl.kl_penalty,
                    algo.kl.kl_reward_coef,
                )?;
                rewards = r;
                m.set("actor/reward_kl_penalty", kl);
            }
        }
        self.estimate(b, &rewards, &mask_t, m)
    }

    /// The configured estimator over `(B, R)` token rewards.
    fn estimate(
        &self,
        b: &mut StepBatch,
        rewards: &Tensor,
        mask: &Tensor,
        m: &mut StepMetrics,
    ) -> Result<()> {
        let algo = &self.cfg.algorithm;
        let device = self.device().clone();
        let values = match &b.values {
            Some(v) => Some(b.rows_tensor(v, &device)?.to_dtype(DType::F64)?),
            None => None,
        };
        let baselines = if algo.adv_estimator.needs_greedy_baseline() {
            let bl = b
                .samples
                .iter()
                .map(|s| {
                    s.baseline
                        .ok_or_else(|| LoopError::Other("a sample has no greedy baseline".into()))
                })
                .collect::<Result<Vec<f64>>>()?;
            m.set("reward/greedy_baseline_mean", mean(&bl));
            Some(Tensor::from_vec(bl, b.samples.len(), &device)?)
        } else {
            None
        };
        let index: Vec<u64> = b.samples.iter().map(|s| s.key).collect();
        let (adv, returns) = compute_advantages(
            algo.adv_estimator,
            &AdvantageInputs {
                token_level_rewards: &rewards.to_dtype(DType::F64)?,
                mask: &mask.to_dtype(DType::F64)?,
                index: Some(&index),
                values: values.as_ref(),
                reward_baselines: baselines.as_ref(),
            },
            &AdvantageParams {
                gamma: algo.gamma,
                lam: algo.lam,
                grpo: algo.grpo,
            },
        )?;
        b.advantages = adv.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        if b.values.is_some() {
            b.returns = returns.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        }
        advantage_metrics(b, m);
        Ok(())
    }
}

/// Advantage (and PPO value/return) means over the response tokens.
fn advantage_metrics(b: &StepBatch, m: &mut StepMetrics) {
    let masked = |rows: &[Vec<f32>]| -> Vec<f64> {
        rows.iter()
            .zip(b.mask.chunks(b.r_max))
            .flat_map(|(r, mk)| {
                r.iter()
                    .zip(mk)
                    .filter(|(_, mk)| **mk > 0.0)
                    .map(|(a, _)| *a as f64)
            })
            .collect()
    };
    let adv = masked(&b.advantages);
    m.set("actor/advantage_mean", mean(&adv));
    let abs: Vec<f64> = adv.iter().map(|a| a.abs()).collect();
    m.set("actor/advantage_abs_mean", mean(&abs));
    if let Some(values) = &b.values {
        let flat = |rows: &[Vec<f32>], lens: &dyn Fn(usize) -> usize| -> f64 {
            let xs: Vec<f64> = rows
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r[..lens(i).min(r.len())].iter().map(|x| *x as f64))
                .collect();
            mean(&xs)
        };
        let len = |i: usize| b.samples[i].completion.tokens.len();
        m.set("critic/values_mean", flat(values, &len));
        m.set("critic/returns_mean", flat(&b.returns, &len));
    }
}

/// Token rewards of a batch: see [`token_rewards`].
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRewards {
    /// `(B, R)` rewards, row-major, rows padded to `R`.
    pub rewards: Vec<f32>,
    /// `(B, R)` response mask.
    pub mask: Vec<f32>,
    /// Samples that got step rewards.
    pub step_rewarded: usize,
    /// Step rewards placed.
    pub steps_placed: usize,
}

/// The `(B, R)` token rewards and response mask of a batch (rows padded to `r_max`): each
/// sample's reward on its last token, with step-scoring verifiers' step rewards moved to
/// step-end tokens under `mode` (see [`crate::step_rewards`]).
pub fn token_rewards(
    samples: &[Sample],
    r_max: usize,
    mode: StepRewardMode,
    tokenizer: &rlvr_model::Tokenizer,
) -> Result<TokenRewards> {
    let b = samples.len();
    let mut scores = vec![0f32; b * r_max];
    let mut mask = vec![0f32; b * r_max];
    let (mut rewarded, mut placed_steps) = (0usize, 0usize);
    for (i, s) in samples.iter().enumerate() {
        let len = s.completion.tokens.len().min(r_max);
        if len == 0 {
            continue;
        }
        mask[i * r_max..i * r_max + len].fill(1.0);
        let last = i * r_max + len - 1;
        scores[last] = s.reward as f32;
        let placed = placement(&s.outcome, mode);
        if placed.steps.is_empty() {
            continue;
        }
        let ends = token_ends(tokenizer, &s.completion.tokens[..len])?;
        scores[last] -= placed.replaced as f32;
        for st in &placed.steps {
            if let Some(j) = token_of(&ends, st.end_byte) {
                scores[i * r_max + j] += st.value as f32;
            }
        }
        rewarded += 1;
        placed_steps += placed.steps.len();
    }
    Ok(TokenRewards {
        rewards: scores,
        mask,
        step_rewarded: rewarded,
        steps_placed: placed_steps,
    })
}

/// `(B, R)` f32 tensor of per-row values (zero-padded).
pub(crate) fn rows_to(
    rows: &[Vec<f32>],
    r_max: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
    rows_to_tensor(&refs, r_max, device)
}
