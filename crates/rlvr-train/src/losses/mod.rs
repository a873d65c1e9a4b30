//! Policy losses beyond PPO clip, named as verl's `actor.policy_loss.loss_mode`
//! (`register_policy_loss` in `trainer/ppo/core_algos.py`, commit 1dda039), with the formulas of
//! `../shared/notes/losses.md` § "Policy losses". Every loss is one function of candle tensors
//! (F32 or F64), differentiable w.r.t. `log_prob`; everything else is detached.
//!
//! | name | module | losses.md |
//! |---|---|---|
//! | `vanilla` | [`ppo`] | PPO clip + clip-higher + dual clip |
//! | `clip_cov`, `kl_cov` | [`ppo`] | Clip-Cov / KL-Cov (Cui et al. 2025) |
//! | `dppo_tv`, `dppo_kl` | [`dppo`] | DPPO: trust region on the probability change |
//! | `gspo` | [`sequence`] | GSPO: sequence-level ratio (Zheng et al. 2025) |
//! | `geo_mean` | [`sequence`] | GMPO: geometric mean of token ratios |
//! | `cispo`, `sapo`, `gpg`, `dro` | [`reinforce`] | REINFORCE-style losses |
//! | `bypass_mode` | [`bypass`] | 2-policy rollout correction inside the loss |
//!
//! Look a loss up by name with [`policy_loss_fn`] (unknown names are a typed error listing
//! [`POLICY_LOSSES`]), then call it with [`PolicyLossInputs`] and an [`ActorLossConfig`].
//! Rollout-correction IS weights (`rollout_is_weights`) multiply the per-token loss before
//! aggregation in every loss except `geo_mean` (own rule) and `bypass_mode` (computes its own).

pub mod bypass;
pub mod dppo;
pub mod ppo;
pub mod reinforce;
pub mod sequence;

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::agg::{agg_loss, LossAggMode, Normaliser};
use crate::error::{Result, TrainError};
use crate::host::{masked_mean_tensor, same_shape, Mat};
use crate::rollout_correction::RolloutCorrectionConfig;

/// verl's `actor.policy_loss` block: the loss name and the per-loss parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyLossParams {
    /// Registry name (default `vanilla`).
    pub loss_mode: String,
    /// Clip-Cov: share of tokens whose gradient is cut (default 0.0002).
    pub clip_cov_ratio: f64,
    /// Clip-Cov: lower covariance bound of a candidate (default 1.0).
    pub clip_cov_lb: f64,
    /// Clip-Cov: upper covariance bound of a candidate (default 5.0).
    pub clip_cov_ub: f64,
    /// KL-Cov: share of tokens that get the KL penalty (default 0.0002).
    pub kl_cov_ratio: f64,
    /// KL-Cov: coefficient of `|δ|` on the selected tokens (default 0.1).
    pub ppo_kl_coef: f64,
    /// DRO: β of the squared log-ratio penalty (required > 0 by `dro`; default none).
    pub dro_beta: Option<f64>,
    /// `bypass_mode`: the rollout correction it runs (default: none, i.e. disabled).
    pub rollout_correction: Option<RolloutCorrectionConfig>,
}

impl Default for PolicyLossParams {
    fn default() -> Self {
        PolicyLossParams {
            loss_mode: "vanilla".into(),
            clip_cov_ratio: 0.0002,
            clip_cov_lb: 1.0,
            clip_cov_ub: 5.0,
            kl_cov_ratio: 0.0002,
            ppo_kl_coef: 0.1,
            dro_beta: None,
            rollout_correction: None,
        }
    }
}

/// The policy-loss fields of verl's `ActorConfig`, with its names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorLossConfig {
    /// Symmetric clip range, the fallback of the two below (default 0.2).
    pub clip_ratio: f64,
    /// ε_low (default: `clip_ratio`).
    pub clip_ratio_low: Option<f64>,
    /// ε_high (default: `clip_ratio`; DAPO 0.28).
    pub clip_ratio_high: Option<f64>,
    /// Dual-clip constant c (default 3.0).
    pub clip_ratio_c: f64,
    /// SAPO temperature for `A > 0` (default 1.0).
    pub tau_pos: f64,
    /// SAPO temperature for `A ≤ 0` (default 1.05).
    pub tau_neg: f64,
    /// Aggregation (default `token-mean`); `gspo`, `sapo` and `geo_mean` ignore it.
    pub loss_agg_mode: LossAggMode,
    /// Constant C of `seq-mean-token-sum-norm` (default: T, the padded width).
    pub loss_scale_factor: Option<f64>,
    /// `actor.policy_loss`.
    pub policy_loss: PolicyLossParams,
}

impl Default for ActorLossConfig {
    fn default() -> Self {
        ActorLossConfig {
            clip_ratio: 0.2,
            clip_ratio_low: None,
            clip_ratio_high: None,
            clip_ratio_c: 3.0,
            tau_pos: 1.0,
            tau_neg: 1.05,
            loss_agg_mode: LossAggMode::TokenMean,
            loss_scale_factor: None,
            policy_loss: PolicyLossParams::default(),
        }
    }
}

impl ActorLossConfig {
    /// ε_low (`clip_ratio_low`, else `clip_ratio`).
    pub fn eps_low(&self) -> f64 {
        self.clip_ratio_low.unwrap_or(self.clip_ratio)
    }
    /// ε_high (`clip_ratio_high`, else `clip_ratio`).
    pub fn eps_high(&self) -> f64 {
        self.clip_ratio_high.unwrap_or(self.clip_ratio)
    }
    /// Looks up `policy_loss.loss_mode` and computes it.
    pub fn compute(&self, inputs: &PolicyLossInputs) -> Result<PolicyLossOutput> {
        policy_loss_fn(&self.policy_loss.loss_mode)?(inputs, self)
    }
}

/// Tensors a policy loss reads; all (B, T). Only `log_prob` carries a gradient.
#[derive(Clone, Copy, Debug)]
pub struct PolicyLossInputs<'a> {
    /// logπ_old (for `bypass_mode`: the rollout policy's log-probs, as verl's trainer passes).
    pub old_log_prob: &'a Tensor,
    /// logπ of the policy being trained (differentiable).
    pub log_prob: &'a Tensor,
    /// Token advantages A.
    pub advantages: &'a Tensor,
    /// Response mask m (a rejection-sampled m′ in decoupled rollout correction).
    pub response_mask: &'a Tensor,
    /// Detached rollout-correction IS weights w (none: 1).
    pub rollout_is_weights: Option<&'a Tensor>,
    /// Global normaliser for micro-batching (none: verl's local one, NaN on an empty mask).
    pub normaliser: Option<Normaliser>,
    /// Clip-Cov: the (row, column) tokens to take when there are more candidates than the
    /// budget (verl draws them with `torch.randperm`); none: a seeded draw (seed 0).
    pub clip_cov_selection: Option<&'a [(usize, usize)]>,
}

impl<'a> PolicyLossInputs<'a> {
    /// Inputs without IS weights, normaliser or selection.
    pub fn new(
        old_log_prob: &'a Tensor,
        log_prob: &'a Tensor,
        advantages: &'a Tensor,
        response_mask: &'a Tensor,
    ) -> Self {
        PolicyLossInputs {
            old_log_prob,
            log_prob,
            advantages,
            response_mask,
            rollout_is_weights: None,
            normaliser: None,
            clip_cov_selection: None,
        }
    }
}

/// What a policy loss returns.
#[derive(Clone, Debug)]
pub struct PolicyLossOutput {
    /// Scalar loss, differentiable w.r.t. `log_prob`.
    pub loss: Tensor,
    /// Per-token loss ℓ·m before IS weights (none for `geo_mean`, a sequence-level loss).
    pub token_loss: Option<Tensor>,
    /// verl's metrics dict (`actor/pg_clipfrac`, `actor/ppo_kl`, `rollout_corr/...`).
    pub metrics: BTreeMap<String, f64>,
    /// The aggregation actually used when the loss imposes its own.
    pub loss_agg_mode_used: Option<String>,
    /// Tokens a Clip-Cov/KL-Cov selection picked, sorted.
    pub selected_tokens: Option<Vec<(usize, usize)>>,
}

/// A registered policy loss.
pub type PolicyLossFn = fn(&PolicyLossInputs, &ActorLossConfig) -> Result<PolicyLossOutput>;

/// The registry: verl's `loss_mode` name, the function, a one-line description.
pub const POLICY_LOSSES: &[(&str, PolicyLossFn, &str)] = &[
    (
        "vanilla",
        ppo::vanilla,
        "PPO clip with clip-higher and dual clip",
    ),
    (
        "dppo_tv",
        dppo::dppo_tv,
        "DPPO, total-variation trust region on p − p_old",
    ),
    ("dppo_kl", dppo::dppo_kl, "DPPO, binary-KL trust region"),
    (
        "gspo",
        sequence::gspo,
        "GSPO, sequence-level ratio (seq-mean-token-mean)",
    ),
    (
        "geo_mean",
        sequence::geo_mean,
        "GMPO, geometric mean of clipped token ratios",
    ),
    (
        "cispo",
        reinforce::cispo,
        "CISPO, REINFORCE with a clipped detached ratio",
    ),
    (
        "sapo",
        reinforce::sapo,
        "SAPO, soft sigmoid gate on the ratio",
    ),
    ("gpg", reinforce::gpg, "GPG, plain −A·logπ"),
    ("dro", reinforce::dro, "DRO, −(A·logπ − β/2·δ²)"),
    (
        "clip_cov",
        ppo::clip_cov,
        "Clip-Cov, gradient cut on high-covariance tokens",
    ),
    (
        "kl_cov",
        ppo::kl_cov,
        "KL-Cov, |δ| penalty on the highest-covariance tokens",
    ),
    (
        "bypass_mode",
        bypass::bypass_mode,
        "2-policy rollout correction (ppo_clip or reinforce)",
    ),
];

/// The registered loss called `name`, or [`TrainError::UnknownName`] listing the known ones.
pub fn policy_loss_fn(name: &str) -> Result<PolicyLossFn> {
    POLICY_LOSSES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, f, _)| *f)
        .ok_or_else(|| {
            let known: Vec<&str> = POLICY_LOSSES.iter().map(|(n, _, _)| *n).collect();
            TrainError::unknown("policy loss", name, &known)
        })
}

/// Inputs converted to `log_prob`'s dtype, everything but `log_prob` detached.
pub(crate) struct Prep {
    pub logp: Tensor,
    pub old: Tensor,
    pub adv: Tensor,
    pub mask: Tensor,
    pub weights: Option<Tensor>,
}

pub(crate) fn prep(inp: &PolicyLossInputs) -> Result<Prep> {
    let logp = inp.log_prob.clone();
    same_shape(&logp, inp.old_log_prob, "log_prob vs old_log_prob")?;
    same_shape(&logp, inp.advantages, "log_prob vs advantages")?;
    same_shape(&logp, inp.response_mask, "log_prob vs response_mask")?;
    logp.dims2().map_err(|_| {
        TrainError::Shape(format!("log_prob: expected (B, T), got {:?}", logp.dims()))
    })?;
    let dtype = logp.dtype();
    let conv = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.detach()) };
    let weights = match inp.rollout_is_weights {
        Some(w) => {
            same_shape(&logp, w, "log_prob vs rollout_is_weights")?;
            Some(conv(w)?)
        }
        None => None,
    };
    Ok(Prep {
        old: conv(inp.old_log_prob)?,
        adv: conv(inp.advantages)?,
        mask: conv(inp.response_mask)?,
        logp,
        weights,
    })
}

/// verl's `masked_mean` (`Σ x·m / (Σ m + 1e-8)`) of a detached tensor, as f64.
pub(crate) fn mm(x: &Tensor, mask: &Tensor) -> Result<f64> {
    masked_mean_tensor(&x.detach(), mask)
}

/// `[cond]` as a 0/1 tensor of `dtype`.
pub(crate) fn ind(cond: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(cond.to_dtype(dtype)?)
}

/// δ = logπ − logπ_old (differentiable).
pub(crate) fn delta(p: &Prep) -> Result<Tensor> {
    Ok((&p.logp - &p.old)?)
}

/// verl 1dda039's local normaliser: like [`LossAggMode::normaliser`] but an empty count stays
/// 0, so a fully masked batch gives NaN as verl's `0/0` does, and `seq-mean-token-sum-norm`
/// is `seq-mean-token-sum / C` = `Σ m·ℓ / (S·C)` (verl b178a3c, behind
/// `rlvr selftest algorithms`, had no `1/S`; losses.md § Aggregation).
pub(crate) fn local_normaliser(
    mode: LossAggMode,
    mask: &Tensor,
    loss_scale_factor: Option<f64>,
) -> Result<Normaliser> {
    let m = Mat::from_tensor(mask, "response_mask")?;
    let seqs = (0..m.b)
        .filter(|&i| m.row(i).iter().sum::<f64>() > 0.0)
        .count() as f64;
    let denom = match mode {
        LossAggMode::TokenMean => m.data.iter().sum(),
        LossAggMode::TokenSum => 1.0,
        LossAggMode::SeqMeanTokenSum | LossAggMode::SeqMeanTokenMean => seqs,
        LossAggMode::SeqMeanTokenSumNorm => seqs * mode.normaliser(mask, loss_scale_factor)?.denom,
    };
    Ok(Normaliser { mode, denom })
}

/// Multiplies ℓ by the IS weights, aggregates with `mode` (or the inputs' global normaliser)
/// and packs the output; `token_loss` is ℓ·m.
pub(crate) fn finish(
    inp: &PolicyLossInputs,
    p: &Prep,
    per_token: &Tensor,
    mode: LossAggMode,
    lsf: Option<f64>,
    metrics: Vec<(&str, f64)>,
) -> Result<PolicyLossOutput> {
    let weighted = match &p.weights {
        Some(w) => (per_token * w)?,
        None => per_token.clone(),
    };
    let norm = match inp.normaliser {
        Some(n) if n.mode == mode => n,
        _ => local_normaliser(mode, &p.mask, lsf)?,
    };
    let loss = agg_loss(&weighted, &p.mask, &norm)?;
    Ok(PolicyLossOutput {
        loss,
        token_loss: Some((per_token.detach() * &p.mask)?),
        metrics: metrics
            .into_iter()
            .map(|(k, v)| (format!("actor/{k}"), v))
            .collect(),
        loss_agg_mode_used: None,
        selected_tokens: None,
    })
}
