//! The registry of advantage estimators, [`ESTIMATORS`]: one row per `algorithm.adv_estimator`
//! name with its function, what it needs ([`EstimatorNeeds`]) and one line of description.
//! The config, the presets, `rlvr selftest` and `rlvr algorithms` read this table.
//!
//! The seven classic estimators are in [`crate::advantages`]; this module holds the ones added
//! in verl 1dda039 (losses.md § "Advantage estimators"): `gdpo`, `opo`, `gpg`, `grpo_passk`,
//! `rloo_vectorized`, `grpo_vectorized`, `optimal_token_baseline`,
//! `tir_optimal_token_baseline`. The outcome reward R of a sequence is `Σ_t
//! token_level_rewards` (it sits on the last valid token). All carry no gradient and run on
//! the host in f64; each returns `(advantages, returns)` in the rewards' dtype. Look one up
//! with [`estimator_fn`] (unknown names are a typed error listing the registry).

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::advantages::{
    gae, groups_of, grpo, grpo_scores, reinforce_plus_plus, reinforce_plus_plus_baseline, remax,
    rloo, AdvantageEstimator, AdvantageParams, GrpoConfig,
};
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

/// What an estimator reads: rewards and mask always; the rest when its
/// [`EstimatorNeeds`] say so.
#[derive(Clone, Copy, Debug)]
pub struct EstimatorInputs<'a> {
    /// (B, T) token rewards (outcome on the last valid token).
    pub token_level_rewards: &'a Tensor,
    /// (B, T) response mask.
    pub response_mask: &'a Tensor,
    /// Prompt id per sequence (group estimators).
    pub index: &'a [String],
    /// (B, T) critic values (`gae`).
    pub values: Option<&'a Tensor>,
    /// (B,) rewards of the greedy completions (`remax`).
    pub reward_baselines: Option<&'a Tensor>,
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
            values: None,
            reward_baselines: None,
            reward_components: None,
            old_log_prob: None,
            sum_pi_squared: None,
            rollout_is_weights: None,
        }
    }
}

/// What an estimator needs computed besides the token rewards and mask: the training loop
/// asks this (through `AlgorithmConfig::needs`) instead of matching estimator names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EstimatorNeeds {
    /// Prompt ids (group baselines).
    pub index: bool,
    /// A critic's values (`gae`).
    pub critic: bool,
    /// One greedy completion's reward per prompt (`remax`).
    pub greedy_baseline: bool,
    /// The sampling policy's log-probs, from a separate pass.
    pub old_logprobs: bool,
    /// `Σ_v π_v²` per token from that pass (the optimal token baselines).
    pub sum_pi_squared: bool,
    /// The reward's components, e.g. the parts of a `weighted_sum` verifier (`gdpo`).
    pub reward_components: bool,
}

/// A registered estimator: `(advantages, returns)`.
pub type EstimatorFn = fn(&EstimatorInputs, &AdvantageParams) -> Result<(Tensor, Tensor)>;

/// One row of [`ESTIMATORS`].
#[derive(Clone, Copy, Debug)]
pub struct EstimatorSpec {
    /// The `algorithm.adv_estimator` name (verl's).
    pub name: &'static str,
    /// Its enum value.
    pub estimator: AdvantageEstimator,
    /// The function.
    pub run: EstimatorFn,
    /// What it reads besides rewards and mask.
    pub needs: EstimatorNeeds,
    /// One line for `rlvr algorithms` and the docs.
    pub about: &'static str,
}

const GROUP: EstimatorNeeds = EstimatorNeeds {
    index: true,
    critic: false,
    greedy_baseline: false,
    old_logprobs: false,
    sum_pi_squared: false,
    reward_components: false,
};
const NOTHING: EstimatorNeeds = EstimatorNeeds {
    index: false,
    ..GROUP
};
const TOKEN_BASELINE: EstimatorNeeds = EstimatorNeeds {
    old_logprobs: true,
    sum_pi_squared: true,
    ..GROUP
};

const fn row(
    name: &'static str,
    estimator: AdvantageEstimator,
    run: EstimatorFn,
    needs: EstimatorNeeds,
    about: &'static str,
) -> EstimatorSpec {
    EstimatorSpec {
        name,
        estimator,
        run,
        needs,
        about,
    }
}

use AdvantageEstimator as E;

/// The one table of advantage estimators: name, function, needs, description.
pub const ESTIMATORS: &[EstimatorSpec] = &[
    row(
        "grpo",
        E::Grpo,
        run_grpo,
        GROUP,
        "(R − mean_g) / (std_g + ε)",
    ),
    row(
        "grpo_no_std",
        E::GrpoNoStd,
        run_grpo_no_std,
        GROUP,
        "Dr.GRPO: R − mean_g (alias dr_grpo)",
    ),
    row(
        "rloo",
        E::Rloo,
        run_rloo,
        GROUP,
        "R − mean of the other samples of the group",
    ),
    row(
        "reinforce_plus_plus",
        E::ReinforcePlusPlus,
        run_rpp,
        NOTHING,
        "discounted returns, whitened over the batch",
    ),
    row(
        "reinforce_plus_plus_baseline",
        E::ReinforcePlusPlusBaseline,
        run_rpp_baseline,
        GROUP,
        "R − mean_g, whitened over the batch",
    ),
    row(
        "remax",
        E::Remax,
        run_remax,
        EstimatorNeeds {
            greedy_baseline: true,
            ..NOTHING
        },
        "returns − the greedy completion's reward",
    ),
    row(
        "gae",
        E::Gae,
        run_gae,
        EstimatorNeeds {
            critic: true,
            ..NOTHING
        },
        "GAE(γ, λ) with a critic (PPO)",
    ),
    row(
        "gdpo",
        E::Gdpo,
        gdpo,
        EstimatorNeeds {
            reward_components: true,
            ..GROUP
        },
        "GRPO per reward component (weighted_sum parts), weighted sum, batch whitening",
    ),
    row(
        "opo",
        E::Opo,
        opo,
        GROUP,
        "length-weighted group-mean baseline",
    ),
    row(
        "gpg",
        E::Gpg,
        gpg,
        GROUP,
        "group-mean baseline scaled by B / #non-zero rewards",
    ),
    row(
        "grpo_passk",
        E::GrpoPassk,
        grpo_passk,
        GROUP,
        "only the best sample of a group: r_max − r_second",
    ),
    row(
        "rloo_vectorized",
        E::RlooVectorized,
        rloo_vectorized,
        GROUP,
        "leave-one-out baseline, 0 for a group of one",
    ),
    row(
        "grpo_vectorized",
        E::GrpoVectorized,
        grpo_vectorized,
        GROUP,
        "GRPO, std always on (float32 in verl)",
    ),
    row(
        "optimal_token_baseline",
        E::OptimalTokenBaseline,
        optimal_token_baseline,
        TOKEN_BASELINE,
        "per-position variance-optimal baseline",
    ),
    row(
        "tir_optimal_token_baseline",
        E::TirOptimalTokenBaseline,
        tir_optimal_token_baseline,
        TOKEN_BASELINE,
        "the same on left-packed tokens",
    ),
];

/// The registered estimator `name`, or [`TrainError::UnknownName`] listing [`ESTIMATORS`].
pub fn estimator_fn(name: &str) -> Result<EstimatorFn> {
    Ok(name.parse::<AdvantageEstimator>()?.spec().run)
}

fn run_grpo(i: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    grpo(i.token_level_rewards, i.response_mask, i.index, &p.grpo)
}

fn run_grpo_no_std(i: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    let cfg = GrpoConfig {
        norm_by_std: false,
        ..p.grpo
    };
    grpo(i.token_level_rewards, i.response_mask, i.index, &cfg)
}

fn run_rloo(i: &EstimatorInputs, _p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    rloo(i.token_level_rewards, i.response_mask, i.index)
}

fn run_rpp(i: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    reinforce_plus_plus(i.token_level_rewards, i.response_mask, p.gamma)
}

fn run_rpp_baseline(i: &EstimatorInputs, _p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    reinforce_plus_plus_baseline(i.token_level_rewards, i.response_mask, i.index)
}

fn run_remax(i: &EstimatorInputs, _p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    let b = i
        .reward_baselines
        .ok_or_else(|| TrainError::Input("remax needs reward_baselines".into()))?;
    remax(i.token_level_rewards, b, i.response_mask)
}

fn run_gae(i: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    let v = i
        .values
        .ok_or_else(|| TrainError::Input("gae needs critic values".into()))?;
    gae(i.token_level_rewards, v, i.response_mask, p.gamma, p.lam)
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
pub fn gdpo(inp: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    let (scores, m) = read(inp)?;
    let comps: Vec<Vec<f64>> = match (&p.extra.gdpo_reward_keys, inp.reward_components) {
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
    let weights = p
        .extra
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
pub fn opo(inp: &EstimatorInputs, _p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
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
pub fn gpg(inp: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let nonzero = r.iter().filter(|&&x| x != 0.0).count().max(1);
    let alpha = r.len() as f64 / nonzero as f64;
    let mut adv = r.clone();
    for g in groups_of(inp.index) {
        let mu = if g.len() == 1 { 0.0 } else { mean_of(&g, &r) };
        g.iter()
            .for_each(|&i| adv[i] = alpha * (r[i] - mu) / p.extra.f_norm);
    }
    pair(&broadcast(&adv, &m), inp.token_level_rewards)
}

fn std_unbiased(idx: &[usize], x: &[f64]) -> f64 {
    let mu = mean_of(idx, x);
    (idx.iter().map(|&i| (x[i] - mu).powi(2)).sum::<f64>() / (idx.len() as f64 - 1.0)).sqrt()
}

/// `grpo_passk`: in each group only the best sample gets `r_max − r_second`
/// (÷ (std_g + 1e-6) with `norm_adv_by_std_in_grpo`); a group of one is an error.
pub fn grpo_passk(inp: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
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
        if p.extra.norm_adv_by_std_in_grpo {
            a /= std_unbiased(&g, &r) + 1e-6;
        }
        adv[order[0]] = a;
    }
    pair(&broadcast(&adv, &m), inp.token_level_rewards)
}

/// `rloo_vectorized`: `A = (G·R − Σ_g R)/(G − 1)`, 0 for a group of one.
pub fn rloo_vectorized(inp: &EstimatorInputs, _p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
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
pub fn grpo_vectorized(inp: &EstimatorInputs, p: &AdvantageParams) -> Result<(Tensor, Tensor)> {
    let (r, m) = read(inp)?;
    let gc = GrpoConfig {
        norm_by_std: p.extra.norm_adv_by_std_in_grpo,
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
    p: &AdvantageParams,
) -> Result<(Tensor, Tensor)> {
    otb(inp, &p.extra, false)
}

/// `tir_optimal_token_baseline` (multi-turn): the baseline per left-packed valid position.
pub fn tir_optimal_token_baseline(
    inp: &EstimatorInputs,
    p: &AdvantageParams,
) -> Result<(Tensor, Tensor)> {
    otb(inp, &p.extra, true)
}
