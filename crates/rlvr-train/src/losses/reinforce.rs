//! REINFORCE-style losses (losses.md § cispo, sapo, gpg, dro). `r = exp(clamp(δ, ±20))`.
//!
//! - `cispo` (MiniMax-M1): `ℓ = −sg(clip(r, 1−εl, 1+εh))·A·logπ`;
//!   `pg_clipfrac = mm([r ≠ clip(r)])`.
//! - `sapo`: `ℓ = −σ(τ(r − 1))·(4/τ)·A`, τ = `tau_pos` if A > 0 else `tau_neg`; always
//!   `seq-mean-token-mean`.
//! - `gpg` (Chu et al. 2025): `ℓ = −logπ·A`, no metrics.
//! - `dro`: `ℓ = −(logπ·A − ½·dro_beta·δ²)` (δ unclamped, `dro_beta > 0`).

use candle_core::Tensor;

use super::{delta, finish, ind, mm, prep, ActorLossConfig, PolicyLossInputs, PolicyLossOutput};
use crate::agg::LossAggMode;
use crate::error::{Result, TrainError};

/// `cispo` (verl `compute_policy_loss_cispo`).
pub fn cispo(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let dc = delta(&p)?.clamp(-20.0, 20.0)?;
    let r = dc.exp()?.detach();
    let rc = r.clamp(1.0 - cfg.eps_low(), 1.0 + cfg.eps_high())?;
    let per_token = (&p.logp * (p.adv.neg()? * &rc)?)?;
    let metrics = vec![
        (
            "pg_clipfrac",
            mm(&ind(&r.ne(&rc)?, p.logp.dtype())?, &p.mask)?,
        ),
        ("ppo_kl", mm(&dc.neg()?, &p.mask)?),
        ("pg_clipfrac_lower", 0.0),
    ];
    finish(
        inp,
        &p,
        &per_token,
        cfg.loss_agg_mode,
        cfg.loss_scale_factor,
        metrics,
    )
}

/// The logistic function with a backward pass: `1 / (1 + e^(−x))`.
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// `sapo` (verl `compute_policy_loss_sapo`).
pub fn sapo(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let dc = delta(&p)?.clamp(-20.0, 20.0)?;
    let r = dc.exp()?;
    let pos = p.adv.gt(0.0)?;
    let tau = pos.where_cond(
        &p.adv.ones_like()?.affine(cfg.tau_pos, 0.0)?,
        &p.adv.ones_like()?.affine(cfg.tau_neg, 0.0)?,
    )?;
    let gate = sigmoid(&(r.affine(1.0, -1.0)? * &tau)?)?;
    let per_token = (gate * (p.adv.affine(-4.0, 0.0)? / tau)?)?;
    let metrics = vec![
        ("pg_clipfrac", 0.0),
        ("ppo_kl", mm(&dc.neg()?, &p.mask)?),
        ("pg_clipfrac_lower", 0.0),
    ];
    let mode = LossAggMode::SeqMeanTokenMean;
    let mut out = finish(inp, &p, &per_token, mode, cfg.loss_scale_factor, metrics)?;
    out.loss_agg_mode_used = Some(mode.name().to_string());
    Ok(out)
}

/// `gpg` (verl `compute_policy_loss_gpg`).
pub fn gpg(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let per_token = (&p.logp * p.adv.neg()?)?;
    finish(
        inp,
        &p,
        &per_token,
        cfg.loss_agg_mode,
        cfg.loss_scale_factor,
        vec![],
    )
}

/// `dro` (verl `compute_policy_loss_dro`); errors unless `policy_loss.dro_beta > 0`.
pub fn dro(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let beta = match cfg.policy_loss.dro_beta {
        Some(b) if b > 0.0 => b,
        other => {
            return Err(TrainError::Input(format!(
                "dro needs policy_loss.dro_beta > 0, got {other:?}"
            )))
        }
    };
    let p = prep(inp)?;
    let d = delta(&p)?;
    let per_token = ((&p.logp * &p.adv)? - d.sqr()?.affine(0.5 * beta, 0.0)?)?.neg()?;
    let metrics = vec![("ppo_kl", mm(&d.neg()?, &p.mask)?)];
    finish(
        inp,
        &p,
        &per_token,
        cfg.loss_agg_mode,
        cfg.loss_scale_factor,
        metrics,
    )
}
