//! PPO clipped policy loss (Schulman et al. 2017) with DAPO's decoupled clip range
//! (clip-higher, Yu et al. 2025) and dual clip (Ye et al. 2020), as verl's
//! `compute_policy_loss_vanilla`:
//!
//! `ρ = exp(clamp(logπ − logπ_old, −20, 20))`,
//! `ℓ = max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high))`, and where `A < 0`, `ℓ = min(ℓ, −A·c)`.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::agg::{agg_loss, Normaliser};
use crate::error::{Result, TrainError};
use crate::host::{masked_mean_tensor, same_shape};

/// Clip settings of the PPO policy loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipConfig {
    /// ε_low: the ratio is clipped below at `1 − ε_low` (default 0.2).
    pub clip_ratio_low: f64,
    /// ε_high: the ratio is clipped above at `1 + ε_high` (default 0.2; DAPO 0.28).
    pub clip_ratio_high: f64,
    /// Dual-clip constant c > 1: for `A < 0` the loss is capped at `−A·c` (default 3).
    pub clip_ratio_c: f64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        ClipConfig {
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.2,
            clip_ratio_c: 3.0,
        }
    }
}

impl ClipConfig {
    /// Errors unless `0 ≤ ε_low < 1`, `ε_high ≥ 0` and `c > 1`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.clip_ratio_low)
            || self.clip_ratio_high.is_nan()
            || self.clip_ratio_high < 0.0
        {
            return Err(TrainError::Input(format!(
                "clip ratios must satisfy 0 <= eps_low < 1, eps_high >= 0 (got {}, {})",
                self.clip_ratio_low, self.clip_ratio_high
            )));
        }
        if self.clip_ratio_c.is_nan() || self.clip_ratio_c <= 1.0 {
            return Err(TrainError::Input(format!(
                "dual-clip constant c must be > 1, got {}",
                self.clip_ratio_c
            )));
        }
        Ok(())
    }
}

/// The aggregated policy loss and its metrics (metrics use verl's `masked_mean`, with +1e-8).
#[derive(Clone, Debug)]
pub struct PolicyLoss {
    /// Scalar loss (differentiable w.r.t. `log_prob`).
    pub loss: Tensor,
    /// (B, T) per-token loss before aggregation.
    pub per_token: Tensor,
    /// Fraction of tokens where the clipped term is the larger (`pg_clipfrac`).
    pub clipfrac: f64,
    /// Fraction of tokens with `A < 0` where the dual clip binds (`pg_clipfrac_lower`).
    pub clipfrac_lower: f64,
    /// Approximate KL `masked_mean(logπ_old − logπ)` (`ppo_kl`).
    pub ppo_kl: f64,
}

/// PPO clip loss (with clip-higher and dual clip) aggregated by `norm` over the tokens where
/// `mask` is 1. All inputs are (B, T) of the same float dtype; the gradient flows to
/// `log_prob` through candle's ops (ties of max/min split the gradient, as PyTorch does).
pub fn ppo_clip_loss(
    log_prob: &Tensor,
    old_log_prob: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip: &ClipConfig,
    norm: &Normaliser,
) -> Result<PolicyLoss> {
    clip.validate()?;
    same_shape(log_prob, old_log_prob, "log_prob vs old_log_prob")?;
    same_shape(log_prob, advantages, "log_prob vs advantages")?;
    same_shape(log_prob, mask, "log_prob vs mask")?;
    let dtype = log_prob.dtype();
    let old = old_log_prob.to_dtype(dtype)?.detach();
    let adv = advantages.to_dtype(dtype)?.detach();
    let mask = mask.to_dtype(dtype)?;
    let (per_token, clipfrac, clipfrac_lower, ppo_kl) =
        ppo_clip_terms(log_prob, &old, &adv, &mask, clip)?;
    let loss = agg_loss(&per_token, &mask, norm)?;
    Ok(PolicyLoss {
        loss,
        per_token,
        clipfrac,
        clipfrac_lower,
        ppo_kl,
    })
}

/// The per-token PPO clip loss and its metrics `(ℓ, clipfrac, clipfrac_lower, ppo_kl)` on
/// inputs already in `log_prob`'s dtype (`old`, `adv`, `mask` detached).
pub(crate) fn ppo_clip_terms(
    log_prob: &Tensor,
    old: &Tensor,
    adv: &Tensor,
    mask: &Tensor,
    clip: &ClipConfig,
) -> Result<(Tensor, f64, f64, f64)> {
    let neg_kl = (log_prob - old)?.clamp(-20.0, 20.0)?;
    let ratio = neg_kl.exp()?;
    let ppo_kl = masked_mean_tensor(&neg_kl.neg()?.detach(), mask)?;
    let neg_adv = adv.neg()?;
    let l1 = (&neg_adv * &ratio)?;
    let clipped = ratio.clamp(1.0 - clip.clip_ratio_low, 1.0 + clip.clip_ratio_high)?;
    let l2 = (&neg_adv * &clipped)?;
    let c1 = l1.maximum(&l2)?;
    let clipfrac = masked_mean_tensor(&l2.gt(&l1)?.to_dtype(DType::F64)?, mask)?;
    let l3 = neg_adv.affine(clip.clip_ratio_c, 0.0)?;
    let c2 = l3.minimum(&c1)?;
    let neg = adv.lt(0.0)?;
    let lower = (c1.gt(&l3)?.to_dtype(DType::F64)? * neg.to_dtype(DType::F64)?)?;
    let clipfrac_lower = masked_mean_tensor(&lower, mask)?;
    let per_token = neg.where_cond(&c2, &c1)?;
    Ok((per_token, clipfrac, clipfrac_lower, ppo_kl))
}
