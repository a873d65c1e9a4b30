//! `bypass_mode` (losses.md § bypass_mode): 2-policy rollout correction inside the loss. The
//! trainer passes logπ_rollout as `old_log_prob`; under no-grad the rollout correction
//! `policy_loss.rollout_correction` runs on `λ = logπ − logπ_rollout`, giving m′ and w; then
//! - `loss_type: ppo_clip`: `vanilla` with logπ_old = logπ_rollout on m′, no IS weights;
//! - `loss_type: reinforce`: `ℓ = −A·logπ·w` on m′, metric `ppo_kl = mm′(logπ_rollout − logπ)`.
//!
//! The `rollout_corr/*` metrics are merged into the loss metrics.

use super::{finish, mm, ppo, prep, ActorLossConfig, PolicyLossInputs, PolicyLossOutput};
use crate::error::Result;
use crate::rollout_correction::{compute_rollout_correction, BypassLossType};

/// `bypass_mode` (verl `compute_policy_loss_bypass_mode`).
pub fn bypass_mode(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let rc = cfg
        .policy_loss
        .rollout_correction
        .clone()
        .unwrap_or_default();
    let logp = inp.log_prob.detach();
    let corr = compute_rollout_correction(&logp, inp.old_log_prob, inp.response_mask, &rc)?;
    let mask = corr.response_mask.to_dtype(inp.log_prob.dtype())?;
    let mut out = match rc.loss_type {
        BypassLossType::PpoClip => {
            let sub = PolicyLossInputs {
                response_mask: &mask,
                rollout_is_weights: None,
                ..*inp
            };
            ppo::vanilla(&sub, cfg)?
        }
        BypassLossType::Reinforce => {
            let sub = PolicyLossInputs {
                response_mask: &mask,
                rollout_is_weights: corr.rollout_is_weights.as_ref(),
                ..*inp
            };
            let p = prep(&sub)?;
            let per_token = (&p.logp * p.adv.neg()?)?;
            let kl = mm(&(&p.old - &p.logp)?, &p.mask)?;
            finish(
                &sub,
                &p,
                &per_token,
                cfg.loss_agg_mode,
                cfg.loss_scale_factor,
                vec![("ppo_kl", kl)],
            )?
        }
    };
    out.metrics.extend(corr.metrics);
    Ok(out)
}
