//! Advantage estimators added in verl 1dda039 (losses.md § "Advantage estimators"), by their
//! `algorithm.adv_estimator` names: `gdpo`, `opo`, `gpg`, `grpo_passk`, `rloo_vectorized`,
//! `grpo_vectorized`, `optimal_token_baseline`, `tir_optimal_token_baseline`. The outcome
//! reward R of a sequence is `Σ_t token_level_rewards` (it sits on the last valid token).
//!
//! Like [`crate::advantages`], they carry no gradient and run on the host in f64; each
//! returns `(advantages, returns)` in the rewards' dtype. Look one up with
//! [`estimator_fn`] (unknown names are a typed error listing [`EXTRA_ESTIMATORS`]).

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::advantages::{groups_of, grpo_scores, GrpoConfig};
use crate::error::{Result, TrainError};
use crate::host::{masked_whiten, same_shape, Mat};

/// Settings of the extra estimators, with verl's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimatorConfig {
    /// `grpo_passk`: divide by the group std + 1e-6 (default true).
    pub norm_adv_by_std_in_grpo: bool,
    /// `gdpo`: reward components to normalise separately (default: the token rewards).
    pub gdpo_reward_keys: Option<Vec<String>>,
    /// `gdpo`: weight of each component (default all 1).
    pub gdpo_reward_weights: Option<Vec<f64>>,
    /// `gpg`: divisor f_norm (default 1).
    pub f_norm: f64,
    /// Optimal token baseline: ε of the weighted mean (default 1e-8).
    pub epsilon: f64,
    /// Optimal token baseline: zero the strictly-longest sample's baseline past the
    /// second-longest length (default true).
    pub handle_zero_tail: bool,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            norm_adv_by_std_in_grpo: true,
            gdpo_reward_keys: None,
            gdpo_reward_weights: None,
            f_norm: 1.0,
            epsilon: 1e-8,
            handle_zero_tail: true,
        }
    }
}

/// What the extra estimators read.
#[derive(Clone, Copy, Debug)]
pub struct EstimatorInputs<'a> {
    /// (B, T) token rewards (outcome on the last valid token).
    pub token_level_rewards: &'a Tensor,
    /// (B, T) response mask.
    pub response_mask: &'a Tensor,
    /// Prompt id per sequence.
    pub index: &'a [String],
    /// `gdpo`: per-sequence value of each reward component.
    pub reward_components: Option<&'a BTreeMap<String, Vec<f64>>>,
    /// Optimal token baseline: (B, T) logπ_old.
    pub old_log_prob: Option<&'a Tensor>,
    /// Optimal token baseline: (B, T) `Σ_v π_v²` (actor.calculate_sum_pi_squared).
    pub sum_pi_squared: Option<&'a Tensor>,
    /// Optimal token baseline: (B, T) rollout IS weights.
    pub rollout_is_weights: Option<&'a Tensor>,
}

impl<'a> EstimatorInputs<'a> {
    /// Rewards, mask and index only.
    pub fn new(
        token_level_rewards: &'a Tensor,
        response_mask: &'a Tensor,
        index: &'a [String],
    ) -> Self {
        EstimatorInputs {
            token_level_rewards,
            response_mask,
            index,
            reward_components: None,
            old_log_prob: None,
            sum_pi_squared: None,
            rollout_is_weights: None,
        }
    }
}

/// A registered estimator: `(advantages, returns)`.
pub type EstimatorFn = fn(&EstimatorInputs, &EstimatorConfig) -> Result<(Tensor, Tensor)>;

/// The registry of the extra estimators: name, function, description.
pub const EXTRA_ESTIMATORS: &[(&str, EstimatorFn, &str)] = &[
    (
        "gdpo",
        gdpo,
        "GRPO per reward component, weighted sum, batch whitening",
    ),
    ("opo", opo, "length-weighted group-mean baseline"),
    (
        "gpg",
        gpg,
        "group-mean baseline scaled by B / #non-zero rewards",
    ),
    (
        "grpo_passk",
        grpo_passk,
        "only the best sample of a group: r_max − r_second",
    ),
    (
        "rloo_vectorized",
        rloo_vectorized,
        "leave-one-out baseline, 0 for a group of one",
    ),
    (
        "grpo_vectorized",
        grpo_vectorized,
        "GRPO, std always on (float32 in verl)",
    ),
    (
        "optimal_token_baseline",
        optimal_token_baseline,
        "per-position variance-optimal baseline",
    ),
    (
        "tir_optimal_token_baseline",
        tir_optimal_token_baseline,
        "the same on left-packed tokens",
    ),
];

/// The registered estimator `name`, or [`TrainError::UnknownName`].
pub fn estimator_fn(name: &str) -> Result<EstimatorFn> {
    EXTRA_ESTIMATORS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, f, _)| *f)
        .ok_or_else(|| {
            let known: Vec<&str> = EXTRA_ESTIMATORS.iter().map(|(n, _, _)| *n).collect();
            TrainError::unknown("advantage estimator", name, &known)
        })
}

fn read(inp: &EstimatorInputs) -> Result<(Vec<f64>, Mat)> {
    same_shape(
        inp.token_level_rewards,
        inp.response_mask,
        "rewards vs mask",
    )?;
    let r = Mat::from_tensor(inp.token_level_rewards, "token_level_rewards")?;
    let m = Mat::from_tensor(inp.response_mask, "response_mask")?;
    if inp.index.len() != r.b {
        return Err(TrainError::Shape(format!(
            "index has {} ids for {} sequences",
            inp.index.len(),
            r.b
        )));
    }
    let scores = (0..r.b).map(|i| r.row(i).iter().sum()).collect();
    Ok((scores, m))
}

fn broadcast(scores: &[f64], m: &Mat) -> Mat {
    let mut a = m.clone();
    for (k, x) in a.data.iter_mut().enumerate() {
        *x *= scores[k / m.t];
    }
    a
}

fn pair(a: &Mat, like: &Tensor) -> Result<(Tensor, Tensor)> {
    let t = a.to_tensor(like.dtype(), like.device())?;
    Ok((t.clone(), t))
}

fn mean_of(idx: &[usize], x: &[f64]) -> f64 {
    idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64
}

/// `gdpo` (Group reward-Decoupled normalisation): per component GRPO (ε 1e-6, std on),
/// `A = masked_whiten(Σ_k w_k·Â_k)·m`.
pub fn gdpo(inp: &EstimatorInputs, cfg: &EstimatorConfig) -> Result<(Tensor, Tensor)> {
    let (scores, m) = read(inp)?;
    let comps: Vec<Vec<f64>> = match (&cfg.gdpo_reward_keys, inp.reward_components) {
        (Some(keys), Some(values)) if !keys.is_empty() => {
            keys.iter()
                .map(|k| {
                    values.get(k).cloned().ok_or_else(|| {
                        TrainError::Input(format!("gdpo: no reward component `{k}`"))
                    })
                })
                .collect::<Result<_>>()?
        }
        (Some(keys), None) if !keys.is_empty() => {
            return Err(TrainError::Input(
                "gdpo: reward keys given but no components".into(),
            ))
        }
        _ => vec![scores],
    };
    let weights = cfg
        .gdpo_reward_weights
        .clone()
        .unwrap_or(vec![1.0; comps.len()]);
    if weights.len() != comps.len() {
        return Err(TrainError::Input(format!(
            "gdpo: {} weights for {} rewards",
            weights.len(),
            comps.len()
        )));
    }
    let mut sum = vec![0.0; m.b];
    for (c, w) in comps.iter().zip(&weights) {
        for (s, a) in sum
            .iter_mut()
            .zip(grpo_scores(c, inp.index, &GrpoConfig::default())?)
        {
            *s += w * a;
        }
    }
    let a = masked_whiten(&broadcast(&sum, &m), &m)?.mul(&m);
    pair(&a, inp.token_level_rewards)
}

/// `opo` (On-Policy RL with Optimal reward baseline): `b_g = Σ L_i·R_i / Σ L_i`.
pub fn opo(inp: &EstimatorInputs, _cfg: &EstimatorConfig) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let lens: Vec<f64> = (0..m.b).map(|i| m.row(i).iter().sum()).collect();
    let mut adv = r.clone();
    for g in groups_of(inp.index) {
        let b = if g.len() == 1 {
            0.0
        } else {
            g.iter().map(|&i| lens[i] * r[i]).sum::<f64>() / g.iter().map(|&i| lens[i]).sum::<f64>()
        };
        g.iter().for_each(|&i| adv[i] = r[i] - b);
    }
    pair(&broadcast(&adv, &m), inp.token_level_rewards)
}

/// `gpg`: `A = α·(R − mean_g)/f_norm`, `α = B / max(#{R ≠ 0}, 1)`.
pub fn gpg(inp: &EstimatorInputs, cfg: &EstimatorConfig) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let nonzero = r.iter().filter(|&&x| x != 0.0).count().max(1);
    let alpha = r.len() as f64 / nonzero as f64;
    let mut adv = r.clone();
    for g in groups_of(inp.index) {
        let mu = if g.len() == 1 { 0.0 } else { mean_of(&g, &r) };
        g.iter()
            .for_each(|&i| adv[i] = alpha * (r[i] - mu) / cfg.f_norm);
    }
    pair(&broadcast(&adv, &m), inp.token_level_rewards)
}

fn std_unbiased(idx: &[usize], x: &[f64]) -> f64 {
    let mu = mean_of(idx, x);
    (idx.iter().map(|&i| (x[i] - mu).powi(2)).sum::<f64>() / (idx.len() as f64 - 1.0)).sqrt()
}

/// `grpo_passk`: in each group only the best sample gets `r_max − r_second`
/// (÷ (std_g + 1e-6) with `norm_adv_by_std_in_grpo`); a group of one is an error.
pub fn grpo_passk(inp: &EstimatorInputs, cfg: &EstimatorConfig) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let mut adv = vec![0.0; r.len()];
    for g in groups_of(inp.index) {
        if g.len() < 2 {
            return Err(TrainError::Input(format!(
                "Pass@k requires at least 2 samples per group. Got {} for group {}.",
                g.len(),
                inp.index[g[0]]
            )));
        }
        let mut order = g.clone();
        order.sort_by(|&a, &b| r[b].total_cmp(&r[a]).then(a.cmp(&b)));
        let mut a = r[order[0]] - r[order[1]];
        if cfg.norm_adv_by_std_in_grpo {
            a /= std_unbiased(&g, &r) + 1e-6;
        }
        adv[order[0]] = a;
    }
    pair(&broadcast(&adv, &m), inp.token_level_rewards)
}

/// `rloo_vectorized`: `A = (G·R − Σ_g R)/(G − 1)`, 0 for a group of one.
pub fn rloo_vectorized(inp: &EstimatorInputs, _cfg: &EstimatorConfig) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let mut adv = vec![0.0; r.len()];
    for g in groups_of(inp.index).into_iter().filter(|g| g.len() > 1) {
        let n = g.len() as f64;
        let sum: f64 = g.iter().map(|&i| r[i]).sum();
        g.iter()
            .for_each(|&i| adv[i] = (n * r[i] - sum) / (n - 1.0));
    }
    pair(&broadcast(&adv, &m), inp.token_level_rewards)
}

/// `grpo_vectorized`: GRPO (ε 1e-6) with `norm_adv_by_std_in_grpo`; verl computes the group
/// statistics in float32 (compare at 1e-6).
pub fn grpo_vectorized(inp: &EstimatorInputs, cfg: &EstimatorConfig) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let gc = GrpoConfig {
        norm_by_std: cfg.norm_adv_by_std_in_grpo,
        ..GrpoConfig::default()
    };
    pair(
        &broadcast(&grpo_scores(&r, inp.index, &gc)?, &m),
        inp.token_level_rewards,
    )
}

/// `G_t = Σ_{s≥t} r_s·m_s` and `W_t = Σ_{s≤t} w_s·m_s`, `w_t = 1 − 2π_old,t + Σπ²` (× w_IS²).
fn otb_parts(inp: &EstimatorInputs, m: &Mat) -> Result<(Mat, Mat)> {
    fn need<'t>(t: Option<&'t Tensor>, what: &str) -> Result<&'t Tensor> {
        t.ok_or_else(|| TrainError::Input(format!("optimal token baseline needs {what}")))
    }
    let r = Mat::from_tensor(inp.token_level_rewards, "token_level_rewards")?;
    let old = Mat::from_tensor(need(inp.old_log_prob, "old_log_prob")?, "old_log_prob")?;
    let sps = Mat::from_tensor(
        need(inp.sum_pi_squared, "sum_pi_squared")?,
        "sum_pi_squared",
    )?;
    let is = inp
        .rollout_is_weights
        .map(|w| Mat::from_tensor(w, "rollout_is_weights"))
        .transpose()?;
    let (mut g, mut w) = (Mat::zeros(m.b, m.t), Mat::zeros(m.b, m.t));
    for i in 0..m.b {
        let (mut acc_g, mut acc_w) = (0.0, 0.0);
        for j in (0..m.t).rev() {
            acc_g += r.at(i, j) * m.at(i, j);
            *g.at_mut(i, j) = acc_g;
        }
        for j in 0..m.t {
            let mut wt = 1.0 - 2.0 * old.at(i, j).exp() + sps.at(i, j);
            if let Some(is) = &is {
                wt *= is.at(i, j) * is.at(i, j);
            }
            acc_w += wt * m.at(i, j);
            *w.at_mut(i, j) = acc_w;
        }
    }
    Ok((g, w))
}

/// Baselines of one group on "positions" `pos[i][k]` (k-th position of sample i): `b_k =
/// Σ_i G·W·m / (Σ_i W·m + ε)` over the samples that have a k-th position, then the zero-tail
/// rule on the valid lengths `L_i = Σ_t m` (the strictly longest sample's b is 0 from k = L_second).
fn group_baseline(
    (g, w, m): (&Mat, &Mat, &Mat),
    members: &[usize],
    pos: &[Vec<usize>],
    cfg: &EstimatorConfig,
) -> Vec<Vec<f64>> {
    let width = members.iter().map(|&i| pos[i].len()).max().unwrap_or(0);
    let mut out: Vec<Vec<f64>> = members.iter().map(|&i| vec![0.0; pos[i].len()]).collect();
    if members.len() < 2 {
        return out;
    }
    for k in 0..width {
        let (mut num, mut den) = (0.0, 0.0);
        for &i in members.iter().filter(|&&i| k < pos[i].len()) {
            let j = pos[i][k];
            num += g.at(i, j) * w.at(i, j) * m.at(i, j);
            den += w.at(i, j) * m.at(i, j);
        }
        let b = num / (den + cfg.epsilon);
        for (n, o) in out.iter_mut().enumerate() {
            if k < pos[members[n]].len() {
                o[k] = b;
            }
        }
    }
    let lens: Vec<usize> = members
        .iter()
        .map(|&i| (0..m.t).filter(|&j| m.at(i, j) > 0.0).count())
        .collect();
    let mut sorted = lens.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    if cfg.handle_zero_tail && sorted[0] > sorted[1] {
        let n = lens.iter().position(|&l| l == sorted[0]).unwrap_or(0);
        let from = sorted[1].min(out[n].len());
        out[n][from..].iter_mut().for_each(|b| *b = 0.0);
    }
    out
}

/// Shared body of the two optimal-token-baseline estimators; `packed` chooses the valid
/// positions of each sample (left-packed) or all positions up to its length.
fn otb(inp: &EstimatorInputs, cfg: &EstimatorConfig, packed: bool) -> Result<(Tensor, Tensor)> {
    let (_, m) = read(inp)?;
    let (g, w) = otb_parts(inp, &m)?;
    let pos: Vec<Vec<usize>> = (0..m.b)
        .map(|i| {
            if packed {
                (0..m.t).filter(|&j| m.at(i, j) > 0.0).collect()
            } else {
                (0..m.t).collect()
            }
        })
        .collect();
    let mut b = Mat::zeros(m.b, m.t);
    for members in groups_of(inp.index) {
        let base = group_baseline((&g, &w, &m), &members, &pos, cfg);
        for (n, &i) in members.iter().enumerate() {
            for (k, &j) in pos[i].iter().enumerate() {
                *b.at_mut(i, j) = base[n][k];
            }
        }
    }
    let mut adv = g.clone();
    for k in 0..adv.data.len() {
        adv.data[k] = (g.data[k] - b.data[k]) * m.data[k];
    }
    let like = inp.token_level_rewards;
    Ok((
        adv.to_tensor(like.dtype(), like.device())?,
        g.to_tensor(like.dtype(), like.device())?,
    ))
}

/// `optimal_token_baseline`: `A = (G − b)·m`, returns `G` (needs `old_log_prob` and
/// `sum_pi_squared`; IS weights optional).
pub fn optimal_token_baseline(
    inp: &EstimatorInputs,
    cfg: &EstimatorConfig,
) -> Result<(Tensor, Tensor)> {
    otb(inp, cfg, false)
}

/// `tir_optimal_token_baseline` (multi-turn): the baseline per left-packed valid position.
pub fn tir_optimal_token_baseline(
    inp: &EstimatorInputs,
    cfg: &EstimatorConfig,
) -> Result<(Tensor, Tensor)> {
    otb(inp, cfg, true)
}
