//! Entropy of the token distributions from logits (verl `entropy_from_logits`):
//! `H = logsumexp(z) − Σ softmax(z)·z`, and the entropy bonus term.

use candle_core::{Tensor, D};

use crate::agg::{agg_loss, Normaliser};
use crate::error::{Result, TrainError};

/// Per-position entropy of `logits` (…, V) → (…), differentiable (only ops with a backward;
/// the max used for stability is detached).
pub fn entropy_from_logits(logits: &Tensor) -> Result<Tensor> {
    check_vocab_axis(logits)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let e = shifted.exp()?;
    let z = e.sum_keepdim(D::Minus1)?;
    let lse = (z.log()? + &max)?.squeeze(D::Minus1)?;
    let p = e.broadcast_div(&z)?;
    let expect = (p * logits)?.sum(D::Minus1)?;
    Ok((lse - expect)?)
}

/// Aggregated entropy of (B, T, V) logits over the response `mask` (B, T). The policy loss
/// subtracts `entropy_coeff ×` this value (an entropy bonus).
pub fn entropy_loss(logits: &Tensor, mask: &Tensor, norm: &Normaliser) -> Result<Tensor> {
    let h = entropy_from_logits(logits)?;
    agg_loss(&h, mask, norm)
}

/// `Σ_v π_v²` over the last axis of `logits` (…, V) → (…): the collision probability of the
/// token distribution, verl's `calculate_sum_pi_squared` (read by the optimal token
/// baselines). No gradient is meant to flow through it.
pub fn sum_pi_squared_from_logits(logits: &Tensor) -> Result<Tensor> {
    check_vocab_axis(logits)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let e = logits.detach().broadcast_sub(&max)?.exp()?;
    let z = e.sum_keepdim(D::Minus1)?;
    let p = e.broadcast_div(&z)?;
    Ok(p.sqr()?.sum(D::Minus1)?)
}

/// Logits must have a last (vocabulary) axis of at least one entry.
fn check_vocab_axis(logits: &Tensor) -> Result<()> {
    if logits.rank() < 1 || logits.dim(D::Minus1)? == 0 {
        return Err(TrainError::Shape(format!(
            "logits: expected (..., V) with V > 0, got {:?}",
            logits.dims()
        )));
    }
    Ok(())
}
