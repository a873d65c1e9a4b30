//! The advantage phase of a step: token rewards (the outcome on the last token, or a PRM's step
//! scores on step-end tokens), the overlong filter, the KL penalty in the reward, then the
//! configured estimator.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use rlvr_train::advantages::compute_advantages;
use rlvr_train::estimators::EstimatorInputs;
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

    /// The configured estimator over `(B, R)` token rewards, given what its registry row
    /// says it needs.
    fn estimate(
        &self,
        b: &mut StepBatch,
        rewards: &Tensor,
        mask: &Tensor,
        m: &mut StepMetrics,
    ) -> Result<()> {
        let algo = &self.cfg.algorithm;
        let needs = algo.adv_estimator.needs();
        let device = self.device().clone();
        let f64_rows = |rows: &Option<Vec<Vec<f32>>>| -> Result<Option<Tensor>> {
            match rows {
                Some(v) => Ok(Some(b.rows_tensor(v, &device)?.to_dtype(DType::F64)?)),
                None => Ok(None),
            }
        };
        // only what the estimator reads (the old log-probs of an off-policy run are not)
        let values = if needs.critic {
            f64_rows(&b.values)?
        } else {
            None
        };
        let old = if needs.old_logprobs {
            f64_rows(&b.old)?
        } else {
            None
        };
        let sum_pi_squared = if needs.sum_pi_squared {
            f64_rows(&b.sum_pi_squared)?
        } else {
            None
        };
        let baselines = if needs.greedy_baseline {
            let bl = greedy_baselines(&b.samples)?;
            m.set("reward/greedy_baseline_mean", mean(&bl));
            Some(Tensor::from_vec(bl, b.samples.len(), &device)?)
        } else {
            None
        };
        let mut params = algo.advantage_params();
        let components = if needs.reward_components {
            let c = reward_components(&b.samples, &mut params.extra);
            m.set("reward/gdpo_components", c.len() as f64);
            Some(c)
        } else {
            None
        };
        let index: Vec<String> = b.samples.iter().map(|s| s.key.to_string()).collect();
        let rewards = rewards.to_dtype(DType::F64)?;
        let mask = mask.to_dtype(DType::F64)?;
        let inputs = EstimatorInputs {
            values: values.as_ref(),
            reward_baselines: baselines.as_ref(),
            reward_components: components.as_ref(),
            old_log_prob: old.as_ref(),
            sum_pi_squared: sum_pi_squared.as_ref(),
            ..EstimatorInputs::new(&rewards, &mask, &index)
        };
        let (adv, returns) = compute_advantages(algo.adv_estimator, &inputs, &params)?;
        b.advantages = adv.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        if b.values.is_some() {
            b.returns = returns.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        }
        advantage_metrics(b, m);
        Ok(())
    }
}

/// The greedy completions' rewards, one per sample (ReMax's baseline).
fn greedy_baselines(samples: &[Sample]) -> Result<Vec<f64>> {
    samples
        .iter()
        .map(|s| {
            s.baseline
                .ok_or_else(|| LoopError::Other("a sample has no greedy baseline".into()))
        })
        .collect()
}

/// GDPO's reward components: the parts of a `weighted_sum` verifier (keyed by verifier name,
/// `name#k` for the k-th repeat of a name), each part's score unweighted. Unless the config
/// names its own `gdpo_reward_keys`, the parts' weights become `gdpo_reward_weights` (when
/// not set), and reward shaping (e.g. DAPO's overlong penalty: reward − Σ wᵢ·scoreᵢ) is one
/// more component, `shaping`, with weight 1 when it is non-zero anywhere. Samples whose
/// outcomes do not share one list of parts give one component, the reward itself.
pub fn reward_components(
    samples: &[Sample],
    cfg: &mut rlvr_train::EstimatorConfig,
) -> BTreeMap<String, Vec<f64>> {
    let single = |cfg: &mut rlvr_train::EstimatorConfig| {
        cfg.gdpo_reward_keys = Some(vec!["reward".into()]);
        cfg.gdpo_reward_weights = Some(vec![1.0]);
        let r = samples.iter().map(|s| s.reward).collect();
        BTreeMap::from([("reward".to_string(), r)])
    };
    let parts: Vec<Vec<(String, f64, f64)>> =
        samples.iter().map(|s| parts_of(&s.outcome)).collect();
    let keys: Vec<String> = parts
        .first()
        .map(|p| p.iter().map(|x| x.0.clone()).collect())
        .unwrap_or_default();
    let same = parts
        .iter()
        .all(|p| p.len() == keys.len() && p.iter().zip(&keys).all(|(x, k)| &x.0 == k));
    if keys.is_empty() || !same {
        return if cfg.gdpo_reward_keys.is_some() {
            BTreeMap::new()
        } else {
            single(cfg)
        };
    }
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (j, k) in keys.iter().enumerate() {
        out.insert(k.clone(), parts.iter().map(|p| p[j].2).collect());
    }
    if cfg.gdpo_reward_keys.is_some() {
        return out;
    }
    let shaping: Vec<f64> = samples
        .iter()
        .zip(&parts)
        .map(|(s, p)| s.reward - p.iter().map(|(_, w, x)| w * x).sum::<f64>())
        .collect();
    let mut names = keys.clone();
    let mut weights: Vec<f64> = parts[0].iter().map(|x| x.1).collect();
    if shaping.iter().any(|x| x.abs() > 1e-9) {
        out.insert("shaping".into(), shaping);
        names.push("shaping".into());
        weights.push(1.0);
    }
    cfg.gdpo_reward_weights.get_or_insert(weights);
    cfg.gdpo_reward_keys = Some(names);
    out
}

/// `(key, weight, score)` of each part of a `weighted_sum` outcome (empty for other verifiers).
fn parts_of(outcome: &rlvr_verify::Outcome) -> Vec<(String, f64, f64)> {
    let Some(parts) = outcome.details.get("parts").and_then(|p| p.as_array()) else {
        return Vec::new();
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    parts
        .iter()
        .map(|p| {
            let name = p.get("verifier").and_then(|v| v.as_str()).unwrap_or("part");
            let n = seen.entry(name.to_string()).or_insert(0);
            *n += 1;
            let key = if *n == 1 {
                name.to_string()
            } else {
                format!("{name}#{n}")
            };
            let num = |f: &str| p.get(f).and_then(|v| v.as_f64()).unwrap_or(0.0);
            (key, num("weight"), num("score"))
        })
        .collect()
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
