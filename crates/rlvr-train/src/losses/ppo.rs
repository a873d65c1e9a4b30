//! PPO-clip family (losses.md § vanilla, clip_cov, kl_cov).
//!
//! - `vanilla`: `ℓ = max(−A·r, −A·clip(r, 1−εl, 1+εh))`, dual clip `min(ℓ, −A·c)` where A < 0,
//!   `r = exp(clamp(δ, ±20))` (see [`crate::policy`]).
//! - `clip_cov` (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs"): the same
//!   two terms on `r = exp(δ)` without dual clip; tokens whose centred covariance
//!   `(A − mm(A))·(logπ − mm(logπ))` lies in `(clip_cov_lb, clip_cov_ub)` (and that are not
//!   already clipped) are candidates; `max(⌊clip_cov_ratio·Σm⌋, 1)` of them get no gradient.
//! - `kl_cov`: `ℓ = −A·exp(δ)`, plus `ppo_kl_coef·|δ|` on the `max(1, ⌊N·kl_cov_ratio⌋)`
//!   valid tokens of largest covariance (plain means, no ε).

use candle_core::{DType, Tensor};

use super::{delta, finish, ind, mm, prep, ActorLossConfig, PolicyLossInputs, PolicyLossOutput};
use crate::error::{Result, TrainError};
use crate::host::{masked_mean, Mat};
use crate::policy::{ppo_clip_terms, ClipConfig};

/// `vanilla`: PPO clip with clip-higher and dual clip (verl `compute_policy_loss_vanilla`).
pub fn vanilla(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let clip = ClipConfig {
        clip_ratio_low: cfg.eps_low(),
        clip_ratio_high: cfg.eps_high(),
        clip_ratio_c: cfg.clip_ratio_c,
    };
    clip.validate()?;
    let (per_token, clipfrac, lower, kl) = ppo_clip_terms(&p.logp, &p.old, &p.adv, &p.mask, &clip)?;
    let metrics = vec![
        ("pg_clipfrac", clipfrac),
        ("ppo_kl", kl),
        ("pg_clipfrac_lower", lower),
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

/// `(A − mm(A))·(logπ − mm(logπ))` on the host, verl's masked means (with ε).
fn centred_cov(adv: &Mat, logp: &Mat, mask: &Mat) -> Vec<f64> {
    let (ma, ml) = (masked_mean(adv, mask), masked_mean(logp, mask));
    adv.data
        .iter()
        .zip(&logp.data)
        .map(|(a, l)| (a - ma) * (l - ml))
        .collect()
}

/// A seeded draw of `n` of `items` (splitmix64 + partial Fisher–Yates).
fn seeded_choice(mut items: Vec<(usize, usize)>, n: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in 0..n.min(items.len()) {
        let j = i + (next() % (items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(n);
    items
}

/// A (B, T) tensor of `dtype`, 1 everywhere except 0 at `tokens`.
fn ones_except(tokens: &[(usize, usize)], b: usize, t: usize, like: &Tensor) -> Result<Tensor> {
    let mut corr = Mat {
        data: vec![1.0; b * t],
        b,
        t,
    };
    for &(i, j) in tokens {
        if i >= b || j >= t {
            return Err(TrainError::Input(format!(
                "selected token ({i}, {j}) outside ({b}, {t})"
            )));
        }
        *corr.at_mut(i, j) = 0.0;
    }
    corr.to_tensor(like.dtype(), like.device())
}

/// `clip_cov` (verl `compute_policy_loss_clip_cov`). With more candidates than the budget,
/// verl draws them at random; [`PolicyLossInputs::clip_cov_selection`] injects that draw.
pub fn clip_cov(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let pl = &cfg.policy_loss;
    let d = delta(&p)?;
    let ratio = d.exp()?;
    let neg_adv = p.adv.neg()?;
    let l1 = (&neg_adv * &ratio)?;
    let l2 = (&neg_adv * ratio.clamp(1.0 - cfg.eps_low(), 1.0 + cfg.eps_high())?)?;
    let (m, a) = (
        Mat::from_tensor(&p.mask, "mask")?,
        Mat::from_tensor(&p.adv, "adv")?,
    );
    let clipped = Mat::from_tensor(&l2.gt(&l1)?.to_dtype(DType::F64)?, "clip")?;
    let cov = centred_cov(&a, &Mat::from_tensor(&p.logp.detach(), "log_prob")?, &m);
    let candidates: Vec<(usize, usize)> = (0..m.b * m.t)
        .filter(|&k| m.data[k] > 0.0 && clipped.data[k] == 0.0)
        .filter(|&k| cov[k] > pl.clip_cov_lb && cov[k] < pl.clip_cov_ub)
        .map(|k| (k / m.t, k % m.t))
        .collect();
    let budget = ((pl.clip_cov_ratio * m.data.iter().sum::<f64>()).floor() as usize).max(1);
    let mut chosen = if candidates.len() <= budget {
        candidates
    } else if let Some(sel) = inp.clip_cov_selection {
        sel.to_vec()
    } else {
        seeded_choice(candidates, budget, 0)
    };
    chosen.sort_unstable();
    let corr = ones_except(&chosen, m.b, m.t, &p.logp)?;
    let per_token = (l1.maximum(&l2)? * &corr)?;
    let metrics = vec![
        (
            "pg_clipfrac",
            mm(&ind(&corr.eq(0.0)?, p.logp.dtype())?, &p.mask)?,
        ),
        ("ppo_kl", mm(&d.neg()?, &p.mask)?),
    ];
    let mut out = finish(
        inp,
        &p,
        &per_token,
        cfg.loss_agg_mode,
        cfg.loss_scale_factor,
        metrics,
    )?;
    out.selected_tokens = Some(chosen);
    Ok(out)
}

/// `kl_cov` (verl `compute_policy_loss_kl_cov`): deterministic top-k by covariance (ties
/// broken by position).
pub fn kl_cov(inp: &PolicyLossInputs, cfg: &ActorLossConfig) -> Result<PolicyLossOutput> {
    let p = prep(inp)?;
    let pl = &cfg.policy_loss;
    let d = delta(&p)?;
    let abs_kl = d.abs()?;
    let base = (p.adv.neg()? * d.exp()?)?;
    let m = Mat::from_tensor(&p.mask, "mask")?;
    let valid: Vec<usize> = (0..m.data.len()).filter(|&k| m.data[k] > 0.0).collect();
    let mut chosen = Vec::new();
    if !valid.is_empty() && pl.kl_cov_ratio > 0.0 {
        let a = Mat::from_tensor(&p.adv, "adv")?;
        let l = Mat::from_tensor(&p.logp.detach(), "log_prob")?;
        let n = valid.len() as f64;
        let ma = valid.iter().map(|&k| a.data[k]).sum::<f64>() / n;
        let ml = valid.iter().map(|&k| l.data[k]).sum::<f64>() / n;
        let cov = |k: usize| (a.data[k] - ma) * (l.data[k] - ml);
        let mut order = valid.clone();
        order.sort_by(|&x, &y| cov(y).total_cmp(&cov(x)).then(x.cmp(&y)));
        let k = ((n * pl.kl_cov_ratio).floor() as usize).max(1);
        chosen = order[..k.min(order.len())]
            .iter()
            .map(|&k| (k / m.t, k % m.t))
            .collect();
        chosen.sort_unstable();
    }
    let keep = ones_except(&chosen, m.b, m.t, &p.logp)?; // 0 on the selected tokens
    let penalty = (abs_kl.affine(pl.ppo_kl_coef, 0.0)? * keep.affine(-1.0, 1.0)?)?;
    let per_token = (base + penalty)?;
    let metrics = vec![("ppo_kl", mm(&abs_kl, &p.mask)?)];
    let mut out = finish(
        inp,
        &p,
        &per_token,
        cfg.loss_agg_mode,
        cfg.loss_scale_factor,
        metrics,
    )?;
    out.selected_tokens = Some(chosen);
    Ok(out)
}
