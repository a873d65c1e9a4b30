//! DPPO (losses.md § dppo_tv, dppo_kl): the trust region bounds the change of the token
//! probability instead of the ratio. With `p = e^logπ`, `p_old = e^logπ_old`,
//! `r̄ = sg(min(r, c))` and a constant 0/1 gate `v`, `ℓ = −A·r̄·logπ·v` (gradient `−A·r̄·v`).
//!
//! - `dppo_tv`: `v = [p − p_old ≤ εh]` if A > 0, else `[p − p_old ≥ −εl]`;
//! - `dppo_kl`: binary KL `kl = p_old·(logπ_old − logπ) + (1 − p_old)·ln((1 − p_old + 1e-8)/(1 − p + 1e-8))`,
//!   `v = [kl ≤ εh or p ≤ p_old]` if A > 0, else `[kl ≤ εl or p ≥ p_old]`.
//!
//! Metrics: `pg_clipfrac = mm(1 − v)`, `pg_clipfrac_lower = mm([r > c]·v)`, `ppo_kl = mm(−δc)`.

use candle_core::Tensor;

use super::{
    delta, finish, ind, mm, prep, ActorLossConfig, PolicyLossInputs, PolicyLossOutput, Prep,
};
use crate::error::Result;

/// The loss given the gate `v` (as a 0/1 tensor of the compute dtype).
fn dppo_with_gate(
    inp: &PolicyLossInputs,
    cfg: &ActorLossConfig,
    p: &Prep,
    v: &Tensor,
) -> Result<PolicyLossOutput> {
    let dc = delta(p)?.clamp(-20.0, 20.0)?;
    let r = dc.exp()?.detach();
    let rbar = r.clamp(f64::NEG_INFINITY, cfg.clip_ratio_c)?;
    let coef = (p.adv.neg()? * rbar)?.mul(v)?;
    let per_token = (&p.logp * coef)?;
    let dtype = p.logp.dtype();
    let over_c = ind(&r.gt(cfg.clip_ratio_c)?, dtype)?;
    let metrics = vec![
        ("pg_clipfrac", mm(&v.affine(-1.0, 1.0)?, &p.mask)?),
        ("ppo_kl", mm(&dc.neg()?, &p.mask)?),
        ("pg_clipfrac_lower", mm(&(over_c * v)?, &p.mask)?),
    ];
    finish(
        inp,
        p,
        &per_token,
        cfg.loss_agg_mode,
        cfg.loss_scale_factor,
        metrics,
    )
}

/// `(p, p_old)` detached.
fn probs(p: &Prep) -> Result<(Tensor, Tensor)> {
    Ok((p.logp.detach().exp()?, p.old.exp()?))
}

/// `dppo_tv` (verl `compute_policy_loss_dppo_tv`).
pub fn dppo_tv(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let (prob, old) = probs(&p)?;
    let diff = (prob - old)?;
    let dtype = p.logp.dtype();
    let pos = diff.le(cfg.eps_high())?;
    let neg = diff.ge(-cfg.eps_low())?;
    let v = ind(&p.adv.gt(0.0)?.where_cond(&pos, &neg)?, dtype)?;
    dppo_with_gate(inp, cfg, &p, &v)
}

/// `dppo_kl` (verl `compute_policy_loss_dppo_kl`).
pub fn dppo_kl(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let (prob, old) = probs(&p)?;
    let t1 = (&old * (&p.old - p.logp.detach())?)?;
    let num = old.affine(-1.0, 1.0 + 1e-8)?;
    let den = prob.affine(-1.0, 1.0 + 1e-8)?;
    let t2 = (old.affine(-1.0, 1.0)? * (num.log()? - den.log()?)?)?;
    let kl = (t1 + t2)?;
    let dtype = p.logp.dtype();
    let pos = (ind(&kl.le(cfg.eps_high())?, dtype)? + ind(&prob.le(&old)?, dtype)?)?;
    let neg = (ind(&kl.le(cfg.eps_low())?, dtype)? + ind(&prob.ge(&old)?, dtype)?)?;
    let v = ind(&p.adv.gt(0.0)?.where_cond(&pos, &neg)?.gt(0.0)?, dtype)?;
    dppo_with_gate(inp, cfg, &p, &v)
}
