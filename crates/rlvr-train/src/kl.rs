//! KL estimators between the policy and a reference (Schulman 2020, "Approximating KL
//! divergence"), as verl's `kl_penalty`, with `δ = logπ − logπ_ref`:
//! k1 = δ; abs = |δ|; k2 = ½δ²; k3 = e^{−δ} + δ − 1 with the exponent clamped to ±20 and the
//! result to ±10 (verl's `low_var_kl`). Usable as a loss term (coefficient β) or subtracted
//! from the token rewards ([`apply_kl_penalty`]).

use std::str::FromStr;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::agg::{agg_loss, Normaliser};
use crate::error::{Result, TrainError};
use crate::host::{masked_mean_tensor, same_shape};

/// A KL estimator (verl's `kl_loss_type` / `kl_penalty`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// k1 = δ (also `kl`).
    #[serde(alias = "kl")]
    K1,
    /// |δ|.
    Abs,
    /// k2 = ½δ² (also `mse`).
    #[serde(alias = "mse")]
    K2,
    /// k3 = e^{−δ} + δ − 1, clamped (also `low_var_kl`). The default.
    #[default]
    #[serde(alias = "low_var_kl")]
    K3,
}

impl KlEstimator {
    /// Every estimator with its config name.
    pub const ALL: [(&'static str, KlEstimator); 4] = [
        ("k1", KlEstimator::K1),
        ("abs", KlEstimator::Abs),
        ("k2", KlEstimator::K2),
        ("k3", KlEstimator::K3),
    ];
}

impl FromStr for KlEstimator {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "k1" | "kl" => Ok(KlEstimator::K1),
            "abs" => Ok(KlEstimator::Abs),
            "k2" | "mse" => Ok(KlEstimator::K2),
            "k3" | "low_var_kl" => Ok(KlEstimator::K3),
            _ => Err(TrainError::unknown(
                "KL estimator",
                s,
                &["k1", "kl", "abs", "k2", "mse", "k3", "low_var_kl"],
            )),
        }
    }
}

/// Elementwise KL estimate between `log_prob` and `ref_log_prob` (same shape; differentiable
/// w.r.t. `log_prob`, the reference is detached).
pub fn kl_penalty(log_prob: &Tensor, ref_log_prob: &Tensor, kind: KlEstimator) -> Result<Tensor> {
    same_shape(log_prob, ref_log_prob, "log_prob vs ref_log_prob")?;
    let r = ref_log_prob.to_dtype(log_prob.dtype())?.detach();
    Ok(match kind {
        KlEstimator::K1 => (log_prob - &r)?,
        KlEstimator::Abs => (log_prob - &r)?.abs()?,
        KlEstimator::K2 => (log_prob - &r)?.sqr()?.affine(0.5, 0.0)?,
        KlEstimator::K3 => {
            let kl = (&r - log_prob)?.clamp(-20.0, 20.0)?;
            let ratio = kl.exp()?;
            ((ratio - kl)? - 1.0)?.clamp(-10.0, 10.0)?
        }
    })
}

/// KL-shaped token rewards (verl `apply_kl_penalty`): `r_t = s_t − β·KL_t·m_t`, with the
/// old policy's log-probs. Returns the rewards and the batch's mean per-sequence KL
/// (`mean_i (Σ_t KL·m / Σ_t m)`), the `actor/reward_kl_penalty` metric.
pub fn apply_kl_penalty(
    token_level_scores: &Tensor,
    old_log_prob: &Tensor,
    ref_log_prob: &Tensor,
    mask: &Tensor,
    kind: KlEstimator,
    beta: f64,
) -> Result<(Tensor, f64)> {
    same_shape(token_level_scores, mask, "scores vs mask")?;
    same_shape(old_log_prob, mask, "old_log_prob vs mask")?;
    let dtype = token_level_scores.dtype();
    let m = mask.to_dtype(dtype)?;
    let kld = (kl_penalty(&old_log_prob.to_dtype(dtype)?, ref_log_prob, kind)? * &m)?;
    let rewards = (token_level_scores - kld.affine(beta, 0.0)?)?;
    let (b, _) = kld.dims2()?;
    let mut total = 0.0;
    for i in 0..b {
        total += masked_mean_tensor(&kld.get(i)?, &m.get(i)?)?;
    }
    let mean = if b > 0 { total / b as f64 } else { 0.0 };
    Ok((rewards, mean))
}

/// KL loss term (GRPO style): `agg(KL(logπ, logπ_ref))` over the response `mask` with the
/// global normaliser `norm`; the policy loss adds `kl_loss_coef ×` this value.
pub fn kl_loss(
    log_prob: &Tensor,
    ref_log_prob: &Tensor,
    mask: &Tensor,
    kind: KlEstimator,
    norm: &Normaliser,
) -> Result<Tensor> {
    agg_loss(&kl_penalty(log_prob, ref_log_prob, kind)?, mask, norm)
}
