//! Rollout correction (verl `trainer/ppo/rollout_corr_helper.py`, commit 1dda039; losses.md
//! § "Rollout correction"): importance-sampling weights and rejection masks that correct for
//! the mismatch between the rollout engine's log-probs (logπ_rollout) and the trainer's
//! (logπ_old), plus verl's mismatch metrics (`rollout_corr/*`).
//!
//! With `λ = logπ_old − logπ_rollout` (bypass mode: `logπ − logπ_rollout`):
//! - IS (`rollout_is`: `token` | `sequence`): raw ratio `ρ = exp(clamp(λ, ±20))` per token, or
//!   `exp(clamp(Σ_t λ·m, ±20))` per sequence; a threshold `u` truncates (TIS, `w = min(ρ, u)`),
//!   a threshold `"l_u"` masks (IcePop, `w = ρ` on `[l, u]`, else 0); optional batch
//!   normalisation to mean 1.
//! - Rejection (`rollout_rs`: comma list of `token_kX`, `seq_sum_kX`, `seq_mean_kX`,
//!   `seq_max_kX`, X ∈ {1, 2, 3}): k1 = −λ, k2 = ½λ², k3 = e^λ − 1 − λ (λ clamped to ±20);
//!   k1 keeps `ln l ≤ stat ≤ ln u`, k2/k3 keep `stat ≤ u`; sequence options reject whole
//!   sequences. `m′ = m·keep`.
//!
//! Detached bookkeeping on at most a few thousand numbers: computed on the host in f64 and
//! returned in the inputs' dtype. Shares of sequences are rounded to f32 as verl computes them.

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::host::{same_shape, Mat, VERL_MASK_EPS};

/// IS aggregation level (`rollout_is`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsLevel {
    /// One ratio per token.
    Token,
    /// One ratio per sequence (product of token ratios).
    Sequence,
}

/// The loss `bypass_mode` uses (`loss_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BypassLossType {
    /// PPO clip with logπ_old = logπ_rollout (the default).
    #[default]
    PpoClip,
    /// `−A·logπ·w` (policy gradient with IS weights).
    Reinforce,
}

/// A threshold as verl's config writes it: a number, or a string `"u"`, `"l_u"` (and, for
/// `rollout_rs_threshold`, a comma list of those, one per option).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    /// An upper bound u.
    Number(f64),
    /// `"u"`, `"l_u"` or a comma list.
    Text(String),
}

/// Lower (if given) and upper bound of one threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// `l` of `"l_u"`.
    pub lower: Option<f64>,
    /// `u`.
    pub upper: f64,
}

impl Threshold {
    /// The bounds of each comma-separated part.
    pub fn parts(&self) -> Result<Vec<Bounds>> {
        let bad =
            |s: &str| TrainError::Input(format!("rollout threshold `{s}`: expected u or l_u"));
        let num = |s: &str| s.trim().parse::<f64>().map_err(|_| bad(s));
        match self {
            Threshold::Number(u) => Ok(vec![Bounds {
                lower: None,
                upper: *u,
            }]),
            Threshold::Text(s) => s
                .split(',')
                .map(|part| match part.split_once('_') {
                    Some((l, u)) => Ok(Bounds {
                        lower: Some(num(l)?),
                        upper: num(u)?,
                    }),
                    None => Ok(Bounds {
                        lower: None,
                        upper: num(part)?,
                    }),
                })
                .collect(),
        }
    }
}

/// verl's `RolloutCorrectionConfig` (`algorithm.rollout_correction`), with its YAML defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutCorrectionConfig {
    /// IS level; none disables IS weights (YAML default).
    pub rollout_is: Option<IsLevel>,
    /// TIS cap `u` or IcePop band `"l_u"` (default 2.0).
    pub rollout_is_threshold: Threshold,
    /// Normalise the weights to mean 1 over the batch (default false).
    pub rollout_is_batch_normalize: bool,
    /// Rejection options, comma-separated (default none).
    pub rollout_rs: Option<String>,
    /// One threshold for all options, or one per option (default none).
    pub rollout_rs_threshold: Option<Threshold>,
    /// 2-policy mode: the loss is `bypass_mode` (default false).
    pub bypass_mode: bool,
    /// The loss of bypass mode (default `ppo_clip`).
    pub loss_type: BypassLossType,
}

impl Default for RolloutCorrectionConfig {
    fn default() -> Self {
        RolloutCorrectionConfig {
            rollout_is: None,
            rollout_is_threshold: Threshold::Number(2.0),
            rollout_is_batch_normalize: false,
            rollout_rs: None,
            rollout_rs_threshold: None,
            bypass_mode: false,
            loss_type: BypassLossType::PpoClip,
        }
    }
}

/// Names of [`RolloutCorrectionConfig::preset`].
pub const ROLLOUT_CORRECTION_PRESETS: &[&str] = &[
    "disabled",
    "decoupled_token_is",
    "decoupled_seq_is",
    "decoupled_token_icepop",
    "decoupled_seq_is_rs",
    "decoupled_geo_rs",
    "decoupled_geo_rs_seq_tis",
    "decoupled_geo_rs_token_tis",
    "decoupled_k3_rs",
    "decoupled_k3_rs_seq_tis",
    "decoupled_k3_rs_token_tis",
    "bypass_ppo_clip",
    "bypass_ppo_clip_geo_rs",
    "bypass_ppo_clip_k3_rs",
    "bypass_pg_is",
    "bypass_pg_token_icepop",
    "bypass_pg_geo_rs",
    "bypass_pg_geo_rs_seq_tis",
    "bypass_pg_geo_rs_token_tis",
];

impl RolloutCorrectionConfig {
    /// verl's preset constructors (`RolloutCorrectionConfig.decoupled_token_is()`, ...).
    pub fn preset(name: &str) -> Result<Self> {
        let text = |s: &str| Some(Threshold::Text(s.into()));
        let (bypass, rest) = match name.strip_prefix("bypass_") {
            Some(r) => (true, r),
            None => (false, name.strip_prefix("decoupled_").unwrap_or(name)),
        };
        let mut c = RolloutCorrectionConfig {
            bypass_mode: bypass,
            ..Self::default()
        };
        let (core, tis) = match rest.strip_suffix("_seq_tis") {
            Some(r) => (r, Some(IsLevel::Sequence)),
            None => match rest.strip_suffix("_token_tis") {
                Some(r) => (r, Some(IsLevel::Token)),
                None => (rest, None),
            },
        };
        c.rollout_is = tis;
        let core = match core.strip_prefix("pg_") {
            Some(r) if bypass => {
                c.loss_type = BypassLossType::Reinforce;
                r
            }
            _ => core
                .strip_prefix("ppo_clip")
                .map(|r| r.trim_start_matches('_'))
                .unwrap_or(core),
        };
        let geo = || (Some("seq_mean_k1".to_string()), text("0.999_1.001"));
        let k3 = || {
            (
                Some("seq_mean_k3".to_string()),
                Some(Threshold::Number(0.01)),
            )
        };
        match (core, bypass) {
            ("disabled", false) | ("", true) => {}
            ("token_is", false) => c.rollout_is = Some(IsLevel::Token),
            ("seq_is", false) | ("is", true) => c.rollout_is = Some(IsLevel::Sequence),
            ("token_icepop", _) => {
                c.rollout_is = Some(IsLevel::Token);
                c.rollout_is_threshold = Threshold::Text("0.5_5.0".into());
            }
            ("seq_is_rs", false) => {
                c.rollout_is = Some(IsLevel::Sequence);
                (c.rollout_rs, c.rollout_rs_threshold) =
                    (Some("seq_sum_k1".into()), text("0.5_2.0"));
            }
            ("geo_rs", _) => (c.rollout_rs, c.rollout_rs_threshold) = geo(),
            ("k3_rs", _) => (c.rollout_rs, c.rollout_rs_threshold) = k3(),
            _ => {
                return Err(TrainError::unknown(
                    "rollout-correction preset",
                    name,
                    ROLLOUT_CORRECTION_PRESETS,
                ))
            }
        }
        if !ROLLOUT_CORRECTION_PRESETS.contains(&name) {
            return Err(TrainError::unknown(
                "rollout-correction preset",
                name,
                ROLLOUT_CORRECTION_PRESETS,
            ));
        }
        Ok(c)
    }
}

/// Weights, mask and metrics of one rollout correction.
#[derive(Clone, Debug)]
pub struct RolloutCorrection {
    /// Detached IS weights (none without `rollout_is`).
    pub rollout_is_weights: Option<Tensor>,
    /// `m′ = m·keep` (none without `rollout_rs`).
    pub modified_response_mask: Option<Tensor>,
    /// `m′`, or `m` without rejection.
    pub response_mask: Tensor,
    /// `rollout_corr/*` metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// Masked statistics over a fixed mask.
struct Stats<'a> {
    m: &'a Mat,
    lens: Vec<f64>,
}

impl<'a> Stats<'a> {
    fn new(m: &'a Mat) -> Self {
        let lens = (0..m.b).map(|i| m.row(i).iter().sum()).collect();
        Stats { m, lens }
    }
    /// `Σ x·m / (Σ m + 1e-8)`.
    fn mm(&self, x: impl Fn(usize) -> f64) -> f64 {
        let s: f64 = self.valid().map(|k| x(k) * self.m.data[k]).sum();
        s / (self.m.data.iter().sum::<f64>() + VERL_MASK_EPS)
    }
    /// Per sequence `Σ_t x·m / (L_i + 1e-8)`.
    fn mm_i(&self, x: impl Fn(usize) -> f64) -> Vec<f64> {
        let t = self.m.t;
        (0..self.m.b)
            .map(|i| {
                let s: f64 = (0..t)
                    .filter(|&j| self.m.data[i * t + j] > 0.0)
                    .map(|j| x(i * t + j) * self.m.data[i * t + j])
                    .sum();
                s / (self.lens[i] + VERL_MASK_EPS)
            })
            .collect()
    }
    fn valid(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.m.data.len()).filter(|&k| self.m.data[k] > 0.0)
    }
    fn nonempty(&self) -> Vec<usize> {
        (0..self.m.b).filter(|&i| self.lens[i] > 0.0).collect()
    }
    fn total(&self) -> f64 {
        self.m.data.iter().sum()
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}
fn max_of(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(f64::NEG_INFINITY, f64::max)
}
fn min_of(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(f64::INFINITY, f64::min)
}
/// Unbiased std (NaN for fewer than two values, as torch).
fn std_unbiased(xs: &[f64]) -> f64 {
    let mu = mean(xs);
    (xs.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / (xs.len() as f64 - 1.0)).sqrt()
}
/// The share of `flags` that are true, in f32 as verl's `mean` of a float32 tensor.
fn share_f32(flags: impl Iterator<Item = bool>) -> f64 {
    let (mut k, mut n) = (0u32, 0u32);
    for f in flags {
        n += 1;
        k += u32::from(f);
    }
    (k as f32 / n as f32) as f64
}
/// `√max(mm(x̂²) − mm(x̂)², 0)`.
fn masked_std(st: &Stats, xhat: &[f64]) -> f64 {
    let m1 = st.mm(|k| xhat[k]);
    let m2 = st.mm(|k| xhat[k] * xhat[k]);
    (m2 - m1 * m1).max(0.0).sqrt()
}

/// Computes the rollout correction of `cfg` for `λ = old_log_prob − rollout_log_prob` on
/// `response_mask` (all (B, T); outputs in `old_log_prob`'s dtype and device).
pub fn compute_rollout_correction(
    old_log_prob: &Tensor,
    rollout_log_prob: &Tensor,
    response_mask: &Tensor,
    cfg: &RolloutCorrectionConfig,
) -> Result<RolloutCorrection> {
    same_shape(
        old_log_prob,
        rollout_log_prob,
        "old_log_prob vs rollout_log_prob",
    )?;
    same_shape(old_log_prob, response_mask, "old_log_prob vs response_mask")?;
    let old = Mat::from_tensor(old_log_prob, "old_log_prob")?;
    let roll = Mat::from_tensor(rollout_log_prob, "rollout_log_prob")?;
    let m = Mat::from_tensor(response_mask, "response_mask")?;
    let lam: Vec<f64> = old
        .data
        .iter()
        .zip(&roll.data)
        .map(|(a, b)| a - b)
        .collect();
    let st = Stats::new(&m);
    let mut metrics = BTreeMap::new();
    let (dtype, dev) = (old_log_prob.dtype(), old_log_prob.device());
    let weights = match cfg.rollout_is {
        Some(level) => {
            let w = is_weights(&lam, &st, level, cfg, &mut metrics)?;
            Some(w.to_tensor(dtype, dev)?)
        }
        None => None,
    };
    let modified = match &cfg.rollout_rs {
        Some(opts) => {
            let keep = rejection_keep(
                &lam,
                &st,
                opts,
                cfg.rollout_rs_threshold.as_ref(),
                &mut metrics,
            )?;
            Some(m.mul(&keep))
        }
        None => None,
    };
    offpolicy_metrics(&old, &roll, &lam, &st, &mut metrics);
    let metrics = metrics
        .into_iter()
        .map(|(k, v)| (format!("rollout_corr/{k}"), v))
        .collect();
    let modified_response_mask = modified.map(|x| x.to_tensor(dtype, dev)).transpose()?;
    Ok(RolloutCorrection {
        rollout_is_weights: weights,
        response_mask: modified_response_mask
            .clone()
            .unwrap_or(response_mask.to_dtype(dtype)?),
        modified_response_mask,
        metrics,
    })
}

/// IS weights and their `rollout_is_*` metrics.
fn is_weights(
    lam: &[f64],
    st: &Stats,
    level: IsLevel,
    cfg: &RolloutCorrectionConfig,
    out: &mut BTreeMap<String, f64>,
) -> Result<Mat> {
    let m = st.m;
    let parts = cfg.rollout_is_threshold.parts()?;
    let [Bounds { lower, upper: u }] = parts[..] else {
        return Err(TrainError::Input(
            "rollout_is_threshold: one threshold expected".into(),
        ));
    };
    let l = lower.unwrap_or(1.0 / u);
    let seq_lam: Vec<f64> = (0..m.b)
        .map(|i| (0..m.t).map(|j| lam[i * m.t + j] * m.at(i, j)).sum())
        .collect();
    let rho: Vec<f64> = (0..m.data.len())
        .map(|k| {
            let x = match level {
                IsLevel::Token => lam[k],
                IsLevel::Sequence => seq_lam[k / m.t],
            };
            x.clamp(-20.0, 20.0).exp() * m.data[k]
        })
        .collect();
    let w: Vec<f64> = rho
        .iter()
        .map(|&r| match lower {
            Some(lo) => {
                if (lo..=u).contains(&r) {
                    r
                } else {
                    0.0
                }
            }
            None => r.min(u),
        })
        .collect();
    let mut put = |k: &str, v: f64| {
        out.insert(format!("rollout_is_{k}"), v);
    };
    put("mean", st.mm(|k| w[k]));
    match level {
        IsLevel::Token => {
            put(
                "ratio_fraction_high",
                st.mm(|k| f64::from(u8::from(rho[k] > u))),
            );
            put(
                "ratio_fraction_low",
                st.mm(|k| f64::from(u8::from(rho[k] < l))),
            );
            put("max", max_of(st.valid().map(|k| w[k])));
            put("min", min_of(st.valid().map(|k| w[k])));
        }
        IsLevel::Sequence => {
            put("max", max_of(seq_lam.iter().copied()).min(20.0).exp());
            put("min", min_of(seq_lam.iter().copied()).exp());
            put(
                "ratio_fraction_high",
                share_f32(seq_lam.iter().map(|&x| x > u.ln())),
            );
            put(
                "ratio_fraction_low",
                share_f32(seq_lam.iter().map(|&x| x < l.ln())),
            );
        }
    }
    let what: Vec<f64> = w.iter().map(|x| x.clamp(0.0, u)).collect();
    put(
        "std",
        if st.total() > 1.0 {
            masked_std(st, &what)
        } else {
            0.0
        },
    );
    let mw = st.mm(|k| what[k]);
    put(
        "eff_sample_size",
        1.0 / st.mm(|k| (what[k] / (mw + VERL_MASK_EPS)).powi(2)),
    );
    let s = st.mm_i(|k| w[k]);
    put("seq_mean", mean(&s));
    put("seq_std", std_unbiased(&s));
    put("seq_max", max_of(s.iter().copied()));
    put("seq_min", min_of(s.iter().copied()));
    put(
        "seq_max_deviation",
        max_of(s.iter().map(|x| (x - 1.0).abs())),
    );
    let rho_i = st.mm_i(|k| rho[k]);
    put("seq_fraction_high", share_f32(rho_i.iter().map(|&x| x > u)));
    put("seq_fraction_low", share_f32(rho_i.iter().map(|&x| x < l)));
    if lower.is_some() {
        put(
            "oob_ratio",
            st.mm(|k| f64::from(u8::from(rho[k] < l || rho[k] > u))),
        );
    }
    let mut w = Mat {
        data: w,
        b: m.b,
        t: m.t,
    };
    if cfg.rollout_is_batch_normalize {
        let factor = match level {
            IsLevel::Token => st.mm(|k| w.data[k]),
            IsLevel::Sequence => {
                let s = st.mm_i(|k| w.data[k]);
                let ne = st.nonempty();
                ne.iter().map(|&i| s[i]).sum::<f64>() / (ne.len() as f64).max(1e-8)
            }
        };
        let factor = if factor > 1e-8 {
            w.data.iter_mut().for_each(|x| *x /= factor);
            factor
        } else {
            1.0
        };
        put("batch_norm_factor", factor);
    }
    Ok(w)
}

/// One rejection option: `token_kX`, `seq_sum_kX`, `seq_mean_kX` or `seq_max_kX`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RsLevel {
    Token,
    SeqSum,
    SeqMean,
    SeqMax,
}

fn parse_rs_option(name: &str) -> Result<(RsLevel, u8)> {
    let known = [
        "token_k1",
        "token_k2",
        "token_k3",
        "seq_sum_k1",
        "seq_sum_k2",
        "seq_sum_k3",
        "seq_mean_k1",
        "seq_mean_k2",
        "seq_mean_k3",
        "seq_max_k2",
        "seq_max_k3",
    ];
    if !known.contains(&name) {
        return Err(TrainError::unknown("rollout_rs option", name, &known));
    }
    let (lvl, k) = name.rsplit_once("_k").unwrap_or((name, "1"));
    let level = match lvl {
        "token" => RsLevel::Token,
        "seq_sum" => RsLevel::SeqSum,
        "seq_mean" => RsLevel::SeqMean,
        _ => RsLevel::SeqMax,
    };
    Ok((level, k.parse().unwrap_or(1)))
}

/// The keep mask of all rejection options (and their metrics).
fn rejection_keep(
    lam: &[f64],
    st: &Stats,
    options: &str,
    thresholds: Option<&Threshold>,
    out: &mut BTreeMap<String, f64>,
) -> Result<Mat> {
    let mut names: Vec<&str> = Vec::new();
    for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if !names.contains(&o) {
            names.push(o);
        }
    }
    let bounds = thresholds
        .ok_or_else(|| TrainError::Input("rollout_rs needs rollout_rs_threshold".into()))?
        .parts()?;
    if bounds.len() != 1 && bounds.len() != names.len() {
        return Err(TrainError::Input(format!(
            "rollout_rs_threshold: {} thresholds for {} options",
            bounds.len(),
            names.len()
        )));
    }
    let m = st.m;
    let mut keep = Mat {
        data: vec![1.0; m.data.len()],
        b: m.b,
        t: m.t,
    };
    for (n, name) in names.iter().enumerate() {
        let b = bounds[if bounds.len() == 1 { 0 } else { n }];
        let keep_o = rs_option(lam, st, name, b, out)?;
        keep = keep.mul(&keep_o);
    }
    let rejected = |k: usize| 1.0 - keep.data[k];
    out.insert("rollout_rs_masked_fraction".into(), st.mm(rejected));
    let seq_rej: Vec<bool> = (0..m.b)
        .map(|i| (0..m.t).any(|j| m.at(i, j) > 0.0 && keep.at(i, j) == 0.0))
        .collect();
    out.insert(
        "rollout_rs_seq_masked_fraction".into(),
        share_f32(seq_rej.into_iter()),
    );
    Ok(keep)
}

/// One option's keep mask (1/0 per token) and its `rollout_rs_<option>_*` metrics.
fn rs_option(
    lam: &[f64],
    st: &Stats,
    name: &str,
    b: Bounds,
    out: &mut BTreeMap<String, f64>,
) -> Result<Mat> {
    let (level, kind) = parse_rs_option(name)?;
    let m = st.m;
    let stat: Vec<f64> = lam
        .iter()
        .map(|&x| {
            let x = x.clamp(-20.0, 20.0);
            match kind {
                1 => -x,
                2 => 0.5 * x * x,
                _ => x.exp() - 1.0 - x,
            }
        })
        .collect();
    let (hi, lo) = if kind == 1 {
        (b.upper.ln(), b.lower.unwrap_or(1.0 / b.upper).ln())
    } else {
        (b.upper, 0.0)
    };
    let pass = |x: f64| {
        if kind == 1 {
            x >= lo && x <= hi
        } else {
            x <= hi
        }
    };
    let seq_val: Vec<f64> = match level {
        RsLevel::Token => st.mm_i(|k| stat[k]),
        RsLevel::SeqSum => (0..m.b)
            .map(|i| (0..m.t).map(|j| stat[i * m.t + j] * m.at(i, j)).sum())
            .collect(),
        RsLevel::SeqMean => st.mm_i(|k| stat[k]),
        RsLevel::SeqMax => (0..m.b)
            .map(|i| {
                let v = max_of(
                    (0..m.t)
                        .filter(|&j| m.at(i, j) > 0.0)
                        .map(|j| stat[i * m.t + j]),
                );
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            })
            .collect(),
    };
    let x: Vec<f64> = match level {
        RsLevel::Token => stat.clone(),
        _ => (0..m.data.len()).map(|k| seq_val[k / m.t]).collect(),
    };
    let keep: Vec<f64> = match level {
        RsLevel::Token => x.iter().map(|&v| f64::from(u8::from(pass(v)))).collect(),
        _ => (0..m.data.len())
            .map(|k| f64::from(u8::from(pass(seq_val[k / m.t]))))
            .collect(),
    };
    let ne = st.nonempty();
    let v: Vec<f64> = ne.iter().map(|&i| seq_val[i]).collect();
    let mut put = |k: &str, val: f64| {
        out.insert(format!("rollout_rs_{name}_{k}"), val);
    };
    put("mean", st.mm(|k| x[k]));
    match level {
        RsLevel::Token => {
            put("max", max_of(st.valid().map(|k| x[k])));
            put("min", min_of(st.valid().map(|k| x[k])));
            put("fraction_high", st.mm(|k| f64::from(u8::from(x[k] > hi))));
            let low = if kind == 1 {
                st.mm(|k| f64::from(u8::from(x[k] < lo)))
            } else {
                0.0
            };
            put("fraction_low", low);
        }
        _ => {
            put("max", max_of(v.iter().copied()));
            put("min", min_of(v.iter().copied()));
            put("fraction_high", share_f32(v.iter().map(|&s| s > hi)));
            let low = if kind == 1 {
                share_f32(v.iter().map(|&s| s < lo))
            } else {
                0.0
            };
            put("fraction_low", low);
        }
    }
    let xhat: Vec<f64> = x.iter().map(|&s| s.clamp(lo, hi)).collect();
    put("std", masked_std(st, &xhat));
    put("seq_mean", mean(&v));
    put("seq_std", std_unbiased(&v));
    put("seq_max", max_of(v.iter().copied()));
    put("seq_min", min_of(v.iter().copied()));
    put("seq_max_deviation", max_of(v.iter().map(|s| s.abs())));
    put("seq_fraction_high", share_f32(v.iter().map(|&s| s > hi)));
    if kind == 1 {
        put("seq_fraction_low", share_f32(v.iter().map(|&s| s < lo)));
    }
    put("masked_fraction", st.mm(|k| 1.0 - keep[k]));
    let rejected_seqs = ne
        .iter()
        .filter(|&&i| (0..m.t).any(|j| m.at(i, j) > 0.0 && keep[i * m.t + j] == 0.0))
        .count();
    put(
        "seq_masked_fraction",
        rejected_seqs as f64 / (ne.len() as f64).max(1.0),
    );
    Ok(Mat {
        data: keep,
        b: m.b,
        t: m.t,
    })
}

/// The mismatch metrics verl always reports (perplexities, KL, χ²).
fn offpolicy_metrics(
    old: &Mat,
    roll: &Mat,
    lam: &[f64],
    st: &Stats,
    out: &mut BTreeMap<String, f64>,
) {
    let m = st.m;
    let mu = st.mm_i(|k| old.data[k]);
    let nu = st.mm_i(|k| roll.data[k]);
    let diff: Vec<f64> = nu.iter().zip(&mu).map(|(n, u)| n - u).collect();
    let seq_lam: Vec<f64> = (0..m.b)
        .map(|i| (0..m.t).map(|j| lam[i * m.t + j] * m.at(i, j)).sum())
        .collect();
    let mut put = |k: &str, v: f64| {
        out.insert(k.to_string(), v);
    };
    put(
        "training_ppl",
        mean(&mu.iter().map(|x| (-x).exp()).collect::<Vec<_>>()),
    );
    put(
        "training_log_ppl",
        mean(&mu.iter().map(|x| -x).collect::<Vec<_>>()),
    );
    put(
        "rollout_ppl",
        mean(&nu.iter().map(|x| (-x).exp()).collect::<Vec<_>>()),
    );
    put(
        "rollout_log_ppl",
        mean(&nu.iter().map(|x| -x).collect::<Vec<_>>()),
    );
    put("kl", st.mm(|k| roll.data[k] - old.data[k]));
    put("k3_kl", st.mm(|k| lam[k].exp() - lam[k] - 1.0));
    put("log_ppl_diff", mean(&diff));
    put(
        "log_ppl_abs_diff",
        mean(&diff.iter().map(|x| x.abs()).collect::<Vec<_>>()),
    );
    put("log_ppl_diff_max", max_of(diff.iter().copied()));
    put("log_ppl_diff_min", min_of(diff.iter().copied()));
    put(
        "ppl_ratio",
        mean(&diff.iter().map(|x| x.exp()).collect::<Vec<_>>()),
    );
    put(
        "chi2_token",
        st.mm(|k| lam[k].clamp(-20.0, 20.0).exp().powi(2)) - 1.0,
    );
    let chi2_seq: Vec<f64> = seq_lam
        .iter()
        .map(|x| (2.0 * x.clamp(-20.0, 20.0)).exp())
        .collect();
    put("chi2_seq", mean(&chi2_seq) - 1.0);
}
