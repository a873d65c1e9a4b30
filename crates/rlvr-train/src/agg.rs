//! Loss aggregation (`loss_agg_mode`) with a global-batch normaliser, so gradient
//! accumulation over micro-batches gives exactly the gradient of one big batch.
//!
//! Each mode is `numerator(micro-batch) / denominator(global batch)`:
//! - `token-mean`: `Σ m·ℓ / Σ m` (DAPO's token-level loss);
//! - `token-sum`: `Σ m·ℓ` (no normaliser);
//! - `seq-mean-token-sum`: `Σ_i Σ_t m·ℓ / B` (B = sequences with at least one valid token);
//! - `seq-mean-token-mean`: `Σ_i (Σ_t m·ℓ / (Σ_t m + 1e-8)) / B` (original GRPO; verl's
//!   ε in the per-sequence mean matters at 1e-9 for one-token sequences);
//! - `seq-mean-token-sum-norm`: `Σ_{i,t} m·ℓ / C`, C = `loss_scale_factor` or T (Dr.GRPO; no 1/B).
//!
//! Summing the micro-batch losses (each computed with the global [`Normaliser`]) equals the
//! one-batch loss, so accumulated gradients match. Apart from the per-sequence mean of
//! `seq-mean-token-mean`, no ε is added (unlike `masked_mean`).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::host::{same_shape, VERL_MASK_EPS};

/// How a (B, T) per-token loss becomes a scalar (verl's `loss_agg_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LossAggMode {
    /// `Σ m·ℓ / Σ m` over the global batch (DAPO). The default.
    #[default]
    #[serde(rename = "token-mean")]
    TokenMean,
    /// `Σ m·ℓ`, no normaliser (verl 1dda039's `token-sum`).
    #[serde(rename = "token-sum")]
    TokenSum,
    /// Mean over sequences of `Σ_t m·ℓ`.
    #[serde(rename = "seq-mean-token-sum")]
    SeqMeanTokenSum,
    /// Mean over sequences of `Σ_t m·ℓ / (Σ_t m + 1e-8)` (original GRPO).
    #[serde(rename = "seq-mean-token-mean")]
    SeqMeanTokenMean,
    /// `Σ m·ℓ / C` with a constant C (Dr.GRPO).
    #[serde(rename = "seq-mean-token-sum-norm")]
    SeqMeanTokenSumNorm,
}

impl LossAggMode {
    /// Every mode with its config name.
    pub const ALL: [(&'static str, LossAggMode); 5] = [
        ("token-mean", LossAggMode::TokenMean),
        ("token-sum", LossAggMode::TokenSum),
        ("seq-mean-token-sum", LossAggMode::SeqMeanTokenSum),
        ("seq-mean-token-mean", LossAggMode::SeqMeanTokenMean),
        ("seq-mean-token-sum-norm", LossAggMode::SeqMeanTokenSumNorm),
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The global denominator of this mode for a batch whose (B, T) response mask is `mask`
    /// (the whole batch, before splitting into micro-batches). `loss_scale_factor` is the
    /// constant of `seq-mean-token-sum-norm` (default T) and is ignored by the other modes.
    /// An empty count is replaced by 1, so a fully masked batch gives loss 0, not NaN.
    pub fn normaliser(self, mask: &Tensor, loss_scale_factor: Option<f64>) -> Result<Normaliser> {
        let (_, t) = mask.dims2().map_err(|_| {
            TrainError::Shape(format!("mask: expected (B, T), got {:?}", mask.dims()))
        })?;
        let m = mask.to_dtype(DType::F64)?;
        let denom = match self {
            LossAggMode::TokenMean => m.sum_all()?.to_scalar::<f64>()?,
            LossAggMode::TokenSum => 1.0,
            LossAggMode::SeqMeanTokenSum | LossAggMode::SeqMeanTokenMean => {
                m.sum(1)?
                    .to_vec1::<f64>()?
                    .iter()
                    .filter(|&&s| s > 0.0)
                    .count() as f64
            }
            LossAggMode::SeqMeanTokenSumNorm => {
                let c = loss_scale_factor.unwrap_or(t as f64);
                if c.is_nan() || c <= 0.0 {
                    return Err(TrainError::Input(format!(
                        "loss_scale_factor must be > 0, got {c}"
                    )));
                }
                c
            }
        };
        Ok(Normaliser {
            mode: self,
            denom: if denom > 0.0 { denom } else { 1.0 },
        })
    }
}

impl fmt::Display for LossAggMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossAggMode {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                TrainError::unknown("loss_agg_mode", s, &known)
            })
    }
}

/// A mode with its global denominator (see [`LossAggMode::normaliser`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normaliser {
    /// The aggregation mode.
    pub mode: LossAggMode,
    /// Global token count, sequence count, or the constant C.
    pub denom: f64,
}

/// Aggregates a (B, T) per-token loss over a (micro-)batch with the global normaliser `norm`
/// (differentiable). `mask` is converted to the loss's dtype.
pub fn agg_loss(loss: &Tensor, mask: &Tensor, norm: &Normaliser) -> Result<Tensor> {
    same_shape(loss, mask, "loss vs mask")?;
    loss.dims2()
        .map_err(|_| TrainError::Shape(format!("loss: expected (B, T), got {:?}", loss.dims())))?;
    let m = mask.to_dtype(loss.dtype())?;
    let masked = (loss * &m)?;
    let num = match norm.mode {
        LossAggMode::TokenMean
        | LossAggMode::TokenSum
        | LossAggMode::SeqMeanTokenSum
        | LossAggMode::SeqMeanTokenSumNorm => masked.sum_all()?,
        LossAggMode::SeqMeanTokenMean => {
            // per-sequence token means with verl's `Σ_t m + 1e-8` (empty rows give 0)
            let counts = (m.sum_keepdim(1)? + VERL_MASK_EPS)?;
            masked.sum_keepdim(1)?.div(&counts)?.sum_all()?
        }
    };
    Ok(num.affine(1.0 / norm.denom, 0.0)?)
}

/// [`agg_loss`] normalised by the batch itself (no micro-batching).
pub fn agg_loss_local(
    loss: &Tensor,
    mask: &Tensor,
    mode: LossAggMode,
    loss_scale_factor: Option<f64>,
) -> Result<Tensor> {
    agg_loss(loss, mask, &mode.normaliser(mask, loss_scale_factor)?)
}
