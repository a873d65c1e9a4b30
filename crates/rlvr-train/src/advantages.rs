//! Advantage estimators, as verl's `trainer/ppo/core_algos.py` computes them (reproduced to
//! 1e-9 on verl's own numbers). The outcome reward sits on the last valid token of
//! `token_level_rewards` (B, T); `mask` (B, T) is 1 on generated tokens; groups are the
//! completions sharing a prompt id in `index` (any group sizes in one batch).
//!
//! Every estimator returns `(advantages, returns)` as tensors of the rewards' dtype and
//! device. They carry no gradient; the arithmetic runs on the host in f64.

use std::collections::HashMap;
use std::hash::Hash;
use std::str::FromStr;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::estimators::{
    EstimatorConfig, EstimatorInputs, EstimatorNeeds, EstimatorSpec, ESTIMATORS,
};
use crate::host::{masked_whiten, vec_from_tensor, Mat};

/// Which standard deviation normalises GRPO's group advantages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StdKind {
    /// Bessel-corrected (N − 1): verl's and TRL's `torch.std`. The default.
    #[default]
    Unbiased,
    /// Population (N): open-instruct's convention.
    Population,
}

/// Settings of the GRPO family (Shao et al. 2024, DeepSeekMath; Dr.GRPO, Liu et al. 2025).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// ε added to the group std (verl 1e-6; TRL uses 1e-4).
    pub eps: f64,
    /// Divide by the group std (`false` gives Dr.GRPO's `A = R − mean`).
    pub norm_by_std: bool,
    /// Unbiased (default) or population std.
    pub std: StdKind,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            eps: 1e-6,
            norm_by_std: true,
            std: StdKind::Unbiased,
        }
    }
}

/// The advantage estimators, named as verl's `adv_estimator` names them. Each is one row of
/// [`crate::estimators::ESTIMATORS`] (name, function, what it needs, one line); config files,
/// presets, `selftest` and `rlvr algorithms` all read that table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdvantageEstimator {
    /// GRPO: `(R − mean_g) / (std_g + ε)`.
    Grpo,
    /// Dr.GRPO: `R − mean_g` (also accepted as `dr_grpo`).
    GrpoNoStd,
    /// RLOO (Ahmadian et al. 2024): `R − mean of the other samples`.
    Rloo,
    /// REINFORCE++ (Hu 2025): discounted returns, whitened over the batch.
    ReinforcePlusPlus,
    /// REINFORCE++-baseline: group-mean baseline, then batch whitening.
    ReinforcePlusPlusBaseline,
    /// ReMax (Li et al. 2023): returns minus the greedy completion's reward.
    Remax,
    /// GAE (Schulman et al. 2016) with a critic, verl's masked scan.
    Gae,
    /// GDPO: GRPO per reward component, weighted sum, batch whitening.
    Gdpo,
    /// OPO: length-weighted group-mean baseline.
    Opo,
    /// GPG: group-mean baseline scaled by B / #non-zero rewards.
    Gpg,
    /// Pass@k GRPO: only the best sample of a group gets `r_max − r_second`.
    GrpoPassk,
    /// RLOO, 0 for a group of one (verl's vectorised form).
    RlooVectorized,
    /// GRPO, verl's vectorised form (float32 group statistics in verl).
    GrpoVectorized,
    /// Per-position variance-optimal baseline (needs old log-probs and `Σ_v π_v²`).
    OptimalTokenBaseline,
    /// The same on left-packed tokens (multi-turn).
    TirOptimalTokenBaseline,
}

impl AdvantageEstimator {
    /// The estimator's row in the registry.
    pub fn spec(self) -> &'static EstimatorSpec {
        ESTIMATORS
            .iter()
            .find(|s| s.estimator == self)
            .expect("every estimator has a registry row (tested)")
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// What the estimator reads besides rewards and mask.
    pub fn needs(self) -> EstimatorNeeds {
        self.spec().needs
    }

    /// Every registered config name.
    pub fn names() -> Vec<&'static str> {
        ESTIMATORS.iter().map(|s| s.name).collect()
    }
}

impl FromStr for AdvantageEstimator {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        let name = if s == "dr_grpo" { "grpo_no_std" } else { s };
        ESTIMATORS
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.estimator)
            .ok_or_else(|| TrainError::unknown("advantage estimator", s, &Self::names()))
    }
}

impl Serialize for AdvantageEstimator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for AdvantageEstimator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hyper-parameters of [`compute_advantages`].
#[derive(Clone, Debug, PartialEq)]
pub struct AdvantageParams {
    /// Discount γ (REINFORCE++, GAE).
    pub gamma: f64,
    /// GAE λ.
    pub lam: f64,
    /// GRPO settings (the `norm_by_std` flag is forced off for `grpo_no_std`).
    pub grpo: GrpoConfig,
    /// Settings of the estimators ported from verl 1dda039, under verl's names.
    pub extra: EstimatorConfig,
}

impl Default for AdvantageParams {
    fn default() -> Self {
        AdvantageParams {
            gamma: 1.0,
            lam: 1.0,
            grpo: GrpoConfig::default(),
            extra: EstimatorConfig::default(),
        }
    }
}

/// Runs the named estimator on `inputs`; returns `(advantages, returns)`. An input the
/// estimator needs and `inputs` lacks is a [`TrainError::Input`] naming it.
pub fn compute_advantages(
    estimator: AdvantageEstimator,
    inputs: &EstimatorInputs<'_>,
    params: &AdvantageParams,
) -> Result<(Tensor, Tensor)> {
    (estimator.spec().run)(inputs, params)
}

/// Reads rewards and mask, checking shapes.
fn read_rm(token_level_rewards: &Tensor, mask: &Tensor) -> Result<(Mat, Mat)> {
    let r = Mat::from_tensor(token_level_rewards, "token_level_rewards")?;
    let m = Mat::from_tensor(mask, "response_mask")?;
    r.check_same(&m, "token_level_rewards vs response_mask")?;
    if let Some(x) = m.data.iter().find(|&&x| x != 0.0 && x != 1.0) {
        return Err(TrainError::Input(format!(
            "response_mask must hold 0 and 1 only, found {x}"
        )));
    }
    Ok((r, m))
}

fn out(x: &Mat, like: &Tensor) -> Result<Tensor> {
    x.to_tensor(like.dtype(), like.device())
}

/// Groups the positions of `index` by id, in order of first appearance.
pub fn groups_of<K: Eq + Hash>(index: &[K]) -> Vec<Vec<usize>> {
    let mut pos: HashMap<&K, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, k) in index.iter().enumerate() {
        let g = *pos.entry(k).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

fn check_index<K>(index: &[K], b: usize) -> Result<()> {
    if index.len() != b {
        return Err(TrainError::Shape(format!(
            "index has {} prompt ids for {b} completions",
            index.len()
        )));
    }
    if b == 0 {
        return Err(TrainError::Empty("no completions".into()));
    }
    Ok(())
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn std(xs: &[f64], kind: StdKind) -> f64 {
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    let n = xs.len() as f64;
    match kind {
        StdKind::Unbiased => (ss / (n - 1.0)).sqrt(),
        StdKind::Population => (ss / n).sqrt(),
    }
}

/// GRPO on per-sequence scores (slice form of [`grpo`]):
/// `A_i = (R_i − mean_g) / (std_g + ε)`, or `R_i − mean_g` without std. A group of one
/// sample gets mean 0 and std 1, as in verl (so `A = R / (1 + ε)`, not 0).
pub fn grpo_scores<K: Eq + Hash>(
    scores: &[f64],
    index: &[K],
    cfg: &GrpoConfig,
) -> Result<Vec<f64>> {
    check_index(index, scores.len())?;
    let mut out = vec![0.0; scores.len()];
    for g in groups_of(index) {
        let vals: Vec<f64> = g.iter().map(|&i| scores[i]).collect();
        let (mu, sd) = if vals.len() == 1 {
            (0.0, 1.0)
        } else {
            (mean(&vals), std(&vals, cfg.std))
        };
        for &i in &g {
            out[i] = if cfg.norm_by_std {
                (scores[i] - mu) / (sd + cfg.eps)
            } else {
                scores[i] - mu
            };
        }
    }
    Ok(out)
}

/// RLOO on per-sequence scores: `A_i = R_i·G/(G−1) − mean_g·G/(G−1)` (= R_i minus the mean of
/// the other samples); a group of one keeps `A = R` (verl).
pub fn rloo_scores<K: Eq + Hash>(scores: &[f64], index: &[K]) -> Result<Vec<f64>> {
    check_index(index, scores.len())?;
    let mut out = scores.to_vec();
    for g in groups_of(index) {
        let n = g.len() as f64;
        if g.len() > 1 {
            let mu = mean(&g.iter().map(|&i| scores[i]).collect::<Vec<_>>());
            for &i in &g {
                out[i] = scores[i] * n / (n - 1.0) - mu * n / (n - 1.0);
            }
        }
    }
    Ok(out)
}

/// Group-mean baseline: `R_i − mean_g` (0 subtracted for a group of one, as verl).
pub fn group_mean_baseline<K: Eq + Hash>(scores: &[f64], index: &[K]) -> Result<Vec<f64>> {
    grpo_scores(
        scores,
        index,
        &GrpoConfig {
            norm_by_std: false,
            ..GrpoConfig::default()
        },
    )
}

fn broadcast_scores(scores: &[f64], m: &Mat) -> Mat {
    let mut a = Mat::zeros(m.b, m.t);
    for (i, &s) in scores.iter().enumerate().take(m.b) {
        for j in 0..m.t {
            *a.at_mut(i, j) = s * m.at(i, j);
        }
    }
    a
}

fn row_sums(r: &Mat) -> Vec<f64> {
    (0..r.b).map(|i| r.row(i).iter().sum()).collect()
}

/// GRPO (verl `compute_grpo_outcome_advantage`): scores `R = Σ_t r_t`, group-normalised by
/// [`grpo_scores`], broadcast over the completion's tokens times the mask. Returns
/// `(advantages, advantages)`.
pub fn grpo<K: Eq + Hash>(
    token_level_rewards: &Tensor,
    mask: &Tensor,
    index: &[K],
    cfg: &GrpoConfig,
) -> Result<(Tensor, Tensor)> {
    let (r, m) = read_rm(token_level_rewards, mask)?;
    let a = broadcast_scores(&grpo_scores(&row_sums(&r), index, cfg)?, &m);
    let t = out(&a, token_level_rewards)?;
    Ok((t.clone(), t))
}

/// RLOO (verl `compute_rloo_outcome_advantage`): [`rloo_scores`] broadcast times the mask.
pub fn rloo<K: Eq + Hash>(
    token_level_rewards: &Tensor,
    mask: &Tensor,
    index: &[K],
) -> Result<(Tensor, Tensor)> {
    let (r, m) = read_rm(token_level_rewards, mask)?;
    let a = broadcast_scores(&rloo_scores(&row_sums(&r), index)?, &m);
    let t = out(&a, token_level_rewards)?;
    Ok((t.clone(), t))
}

/// REINFORCE++ (verl `compute_reinforce_plus_plus_outcome_advantage`): returns
/// `G_t = r_t + γ·G_{t+1}` scanned right to left, the running return reset to 0 after each
/// masked-out position; advantages = `masked_whiten(G) · m` over the whole batch.
/// Returns `(advantages, returns)`.
pub fn reinforce_plus_plus(
    token_level_rewards: &Tensor,
    mask: &Tensor,
    gamma: f64,
) -> Result<(Tensor, Tensor)> {
    let (r, m) = read_rm(token_level_rewards, mask)?;
    let mut ret = Mat::zeros(r.b, r.t);
    for i in 0..r.b {
        let mut running = 0.0;
        for j in (0..r.t).rev() {
            running = r.at(i, j) + gamma * running;
            *ret.at_mut(i, j) = running;
            running *= m.at(i, j);
        }
    }
    let adv = masked_whiten(&ret, &m)?.mul(&m);
    Ok((
        out(&adv, token_level_rewards)?,
        out(&ret, token_level_rewards)?,
    ))
}

/// REINFORCE++-baseline (verl `compute_reinforce_plus_plus_baseline_outcome_advantage`):
/// `R − mean_g` broadcast times the mask, then `masked_whiten · m` over the batch.
pub fn reinforce_plus_plus_baseline<K: Eq + Hash>(
    token_level_rewards: &Tensor,
    mask: &Tensor,
    index: &[K],
) -> Result<(Tensor, Tensor)> {
    let (r, m) = read_rm(token_level_rewards, mask)?;
    let s = broadcast_scores(&group_mean_baseline(&row_sums(&r), index)?, &m);
    let adv = masked_whiten(&s, &m)?.mul(&m);
    let t = out(&adv, token_level_rewards)?;
    Ok((t.clone(), t))
}

/// ReMax (verl `compute_remax_outcome_advantage`): returns `G_t = Σ_{s≥t} r_s·m_s`,
/// advantages `G_t − b·m_t` with `b` the reward of the greedy completion ((B,) tensor).
/// Returns `(advantages, returns)`.
pub fn remax(
    token_level_rewards: &Tensor,
    reward_baselines: &Tensor,
    mask: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (r, m) = read_rm(token_level_rewards, mask)?;
    let b = vec_from_tensor(reward_baselines, "reward_baselines")?;
    if b.len() != r.b {
        return Err(TrainError::Shape(format!(
            "{} reward baselines for {} completions",
            b.len(),
            r.b
        )));
    }
    let mut ret = Mat::zeros(r.b, r.t);
    let mut adv = Mat::zeros(r.b, r.t);
    for (i, &bi) in b.iter().enumerate() {
        let mut acc = 0.0;
        for j in (0..r.t).rev() {
            acc += r.at(i, j) * m.at(i, j);
            *ret.at_mut(i, j) = acc;
            *adv.at_mut(i, j) = acc - bi * m.at(i, j);
        }
    }
    Ok((
        out(&adv, token_level_rewards)?,
        out(&ret, token_level_rewards)?,
    ))
}

/// GAE, verl's variant (`compute_gae_advantage_return`): scan t from T−1 to 0 with
/// `δ_t = r_t + γ·next_v − V_t`, `gae_t = δ_t + γλ·last_gae`; where `m_t = 1` set
/// `next_v = V_t`, `last_gae = gae_t`, where `m_t = 0` carry both unchanged (padding is
/// skipped, not zeroed). `returns = gae + V`; advantages = `masked_whiten(gae)` over the
/// batch, NOT multiplied by the mask afterwards (as verl). Returns `(advantages, returns)`.
pub fn gae(
    token_level_rewards: &Tensor,
    values: &Tensor,
    mask: &Tensor,
    gamma: f64,
    lam: f64,
) -> Result<(Tensor, Tensor)> {
    let (r, m) = read_rm(token_level_rewards, mask)?;
    let v = Mat::from_tensor(values, "values")?;
    v.check_same(&r, "values vs token_level_rewards")?;
    let mut g = Mat::zeros(r.b, r.t);
    for i in 0..r.b {
        let (mut next_v, mut last) = (0.0, 0.0);
        for j in (0..r.t).rev() {
            let delta = r.at(i, j) + gamma * next_v - v.at(i, j);
            let cand = delta + gamma * lam * last;
            let mj = m.at(i, j);
            next_v = v.at(i, j) * mj + (1.0 - mj) * next_v;
            last = cand * mj + (1.0 - mj) * last;
            *g.at_mut(i, j) = last;
        }
    }
    let ret = Mat {
        data: g.data.iter().zip(&v.data).map(|(a, b)| a + b).collect(),
        b: g.b,
        t: g.t,
    };
    let adv = masked_whiten(&g, &m)?;
    Ok((
        out(&adv, token_level_rewards)?,
        out(&ret, token_level_rewards)?,
    ))
}
