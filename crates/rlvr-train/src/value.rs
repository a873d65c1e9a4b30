//! Clipped value loss of the PPO critic (verl `compute_value_loss`):
//! `v_clip = clamp(v_pred, V_old − c_v, V_old + c_v)`,
//! `ℓ = max((v_pred − R)², (v_clip − R)²)`, loss = `0.5 · agg(ℓ)`.

use candle_core::{DType, Tensor};

use crate::agg::{agg_loss, Normaliser};
use crate::error::{Result, TrainError};
use crate::host::{masked_mean_tensor, same_shape};

/// The value loss and its clip fraction.
#[derive(Clone, Debug)]
pub struct ValueLoss {
    /// Scalar loss `0.5 · agg(ℓ)` (differentiable w.r.t. `vpreds`).
    pub loss: Tensor,
    /// Fraction of tokens where the clipped error is the larger (`vf_clipfrac`, +1e-8 mean).
    pub clipfrac: f64,
}

/// Clipped value loss: `vpreds` (critic predictions, with gradient), `returns` (targets,
/// e.g. GAE returns), `values` (V_old, from rollout time), all (B, T); `cliprange_value` = c_v.
pub fn value_loss(
    vpreds: &Tensor,
    returns: &Tensor,
    values: &Tensor,
    mask: &Tensor,
    cliprange_value: f64,
    norm: &Normaliser,
) -> Result<ValueLoss> {
    if cliprange_value.is_nan() || cliprange_value < 0.0 {
        return Err(TrainError::Input(format!(
            "cliprange_value must be >= 0, got {cliprange_value}"
        )));
    }
    same_shape(vpreds, returns, "vpreds vs returns")?;
    same_shape(vpreds, values, "vpreds vs values")?;
    same_shape(vpreds, mask, "vpreds vs mask")?;
    let dtype = vpreds.dtype();
    let ret = returns.to_dtype(dtype)?.detach();
    let old = values.to_dtype(dtype)?.detach();
    let mask = mask.to_dtype(dtype)?;
    let lo = old.affine(1.0, -cliprange_value)?;
    let hi = old.affine(1.0, cliprange_value)?;
    let clipped = vpreds.minimum(&hi)?.maximum(&lo)?;
    let l1 = (vpreds - &ret)?.sqr()?;
    let l2 = (&clipped - &ret)?.sqr()?;
    let l = l1.maximum(&l2)?;
    let clipfrac = masked_mean_tensor(&l2.gt(&l1)?.to_dtype(DType::F64)?, &mask)?;
    let loss = agg_loss(&l, &mask, norm)?.affine(0.5, 0.0)?;
    Ok(ValueLoss { loss, clipfrac })
}
