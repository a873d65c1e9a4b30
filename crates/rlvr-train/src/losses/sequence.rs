//! Sequence-level ratios (losses.md § gspo, geo_mean).
//!
//! - `gspo` (Zheng et al. 2025): `s_i = Σ_t δ·m / max(L_i, 1)` (δ unclamped), per-token
//!   `log s_it = min(logπ − sg(logπ) + sg(s_i), 10)` (value `exp(min(s_i, 10))`, gradient
//!   `s_it`), `ℓ = max(−A·s_it, −A·clip(s_it, 1−εl, 1+εh))`; always `seq-mean-token-mean`.
//! - `geo_mean` (GMPO, Zhao et al. 2025): `δ̂ = s·min(s·δ, s·clamp(δ, −εl, εh))` with
//!   `s = sign(A)`, `R_i = exp(Σ_t δ̂·m / (L_i + 1e-8))`, `Ā_i = Σ_t A·m / (L_i + 1e-8)`,
//!   loss = mean over all B sequences of `−Ā_i·R_i` (IS weights enter as the geometric mean
//!   `exp(Σ_t ln(w + 1e-10)·m / (L_i + 1e-8))` per sequence); ignores `loss_agg_mode`.

use candle_core::{DType, Tensor};

use super::{delta, finish, ind, mm, prep, ActorLossConfig, PolicyLossInputs, PolicyLossOutput};
use crate::agg::LossAggMode;
use crate::error::Result;
use crate::host::VERL_MASK_EPS;

/// Per-sequence masked mean `Σ_t x·m / (Σ_t m + eps)` as a (B, 1) tensor.
fn row_mean(x: &Tensor, mask: &Tensor, eps: f64) -> Result<Tensor> {
    let den = (mask.sum_keepdim(1)? + eps)?;
    Ok((x * mask)?.sum_keepdim(1)?.div(&den)?)
}

/// `gspo` (verl `compute_policy_loss_gspo`).
pub fn gspo(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let d = delta(&p)?;
    let lens = p.mask.sum_keepdim(1)?.clamp(1.0, f64::INFINITY)?;
    let s = (d.detach() * &p.mask)?.sum_keepdim(1)?.div(&lens)?;
    let x = ((&p.logp - p.logp.detach())?.broadcast_add(&s))?;
    let ratio = x.clamp(f64::NEG_INFINITY, 10.0)?.exp()?;
    let neg_adv = p.adv.neg()?;
    let l1 = (&neg_adv * &ratio)?;
    let l2 = (&neg_adv * ratio.clamp(1.0 - cfg.eps_low(), 1.0 + cfg.eps_high())?)?;
    let per_token = l1.maximum(&l2)?;
    let metrics = vec![
        (
            "pg_clipfrac",
            mm(&ind(&l2.gt(&l1)?, p.logp.dtype())?, &p.mask)?,
        ),
        ("ppo_kl", mm(&d.neg()?, &p.mask)?),
        ("pg_clipfrac_lower", 0.0),
    ];
    let mode = LossAggMode::SeqMeanTokenMean;
    let mut out = finish(inp, &p, &per_token, mode, cfg.loss_scale_factor, metrics)?;
    out.loss_agg_mode_used = Some(mode.name().to_string());
    Ok(out)
}

/// `geo_mean` (verl `compute_policy_loss_geo_mean`).
pub fn geo_mean(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let dtype = p.logp.dtype();
    let d = delta(&p)?;
    let sign = (ind(&p.adv.gt(0.0)?, dtype)? - ind(&p.adv.lt(0.0)?, dtype)?)?;
    let dc = d.clamp(-cfg.eps_low(), cfg.eps_high())?;
    let dhat = ((&sign * &d)?.minimum(&(&sign * &dc)?)? * &sign)?;
    let mut seq = row_mean(&dhat, &p.mask, VERL_MASK_EPS)?.exp()?;
    if let Some(w) = &p.weights {
        let geo = row_mean(&(w + 1e-10)?.log()?, &p.mask, VERL_MASK_EPS)?.exp()?;
        seq = (seq * geo)?;
    }
    let adv_i = row_mean(&p.adv, &p.mask, VERL_MASK_EPS)?;
    let loss = (adv_i.neg()? * seq)?.mean_all()?;
    let clipped = ind(&d.ne(&dc)?, DType::F64)?;
    let dd = d.detach();
    let pos = ind(&p.adv.gt(0.0)?, DType::F64)?;
    let neg = ind(&p.adv.lt(0.0)?, DType::F64)?;
    let metrics = [
        ("actor/pg_clipfrac", mm(&(&clipped * pos)?, &p.mask)?),
        ("actor/ppo_kl", mm(&dd.neg()?, &p.mask)?),
        ("actor/pg_clipfrac_lower", mm(&(&clipped * neg)?, &p.mask)?),
    ];
    Ok(PolicyLossOutput {
        loss,
        token_loss: None,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        loss_agg_mode_used: Some("mean-over-sequences".into()),
        selected_tokens: None,
    })
}
