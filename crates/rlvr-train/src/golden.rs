//! Recomputes every field of a golden file in the format of `../shared/golden/algorithms.json`
//! (numbers produced by verl's `core_algos.py`) and reports the worst error per field. Used
//! by the conformance tests and by `rlvr selftest algorithms`.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

use crate::advantages::{self, AdvantageEstimator, AdvantageParams};
use crate::agg::LossAggMode;
use crate::dapo::soft_overlong_penalty;
use crate::entropy::entropy_from_logits;
use crate::error::{Result, TrainError};
use crate::estimators::EstimatorInputs;
use crate::kl::{kl_penalty, KlEstimator};
use crate::metrics::pass_at_k;
use crate::policy::{ppo_clip_loss, ClipConfig};
use crate::value::value_loss;

/// Comparison tolerance: an error passes when `|got − want| ≤ max(rel·|want|, abs)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rel: f64,
    /// Absolute floor (for values near zero).
    pub abs: f64,
}

impl Tolerance {
    /// The tolerance for a dtype: f64 1e-9 (floor 1e-12), f32 1e-5 (floor 1e-6).
    pub fn for_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F64 => Tolerance {
                rel: 1e-9,
                abs: 1e-12,
            },
            _ => Tolerance {
                rel: 1e-5,
                abs: 1e-6,
            },
        }
    }
}

/// Errors of one field over all its values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldReport {
    /// Number of values compared.
    pub count: usize,
    /// Largest `|got − want|`.
    pub max_abs: f64,
    /// Largest `|got − want| / |want|` over non-zero `want`.
    pub max_rel: f64,
    /// Largest `|got − want| / max(rel·|want|, abs)`: ≤ 1 passes.
    pub worst_ratio: f64,
    /// Where the worst ratio occurred (case and position).
    pub worst_at: String,
}

/// The comparison of a whole golden file in one dtype.
#[derive(Clone, Debug)]
pub struct GoldenReport {
    /// Compute dtype.
    pub dtype: DType,
    /// Tolerance applied.
    pub tol: Tolerance,
    /// Per field (e.g. `advantages.grpo`, `policy_loss.grad_log_prob`).
    pub fields: BTreeMap<String, FieldReport>,
}

impl GoldenReport {
    /// Whether every field is within tolerance (and something was compared).
    pub fn passed(&self) -> bool {
        !self.fields.is_empty()
            && self
                .fields
                .values()
                .all(|f| f.worst_ratio <= 1.0 && f.count > 0)
    }

    /// Total number of values compared.
    pub fn count(&self) -> usize {
        self.fields.values().map(|f| f.count).sum()
    }

    fn record(&mut self, field: &str, at: &str, got: &[f64], want: &[f64]) -> Result<()> {
        if got.len() != want.len() {
            return Err(TrainError::Shape(format!(
                "{field} at {at}: computed {} values, golden has {}",
                got.len(),
                want.len()
            )));
        }
        let tol = self.tol;
        let r = self.fields.entry(field.to_string()).or_default();
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (g - w).abs();
            let ratio = if err.is_nan() {
                f64::INFINITY
            } else {
                err / (tol.rel * w.abs()).max(tol.abs)
            };
            r.count += 1;
            r.max_abs = r.max_abs.max(err);
            if *w != 0.0 {
                r.max_rel = r.max_rel.max(err / w.abs());
            }
            if ratio > r.worst_ratio || (r.worst_at.is_empty() && ratio >= r.worst_ratio) {
                r.worst_ratio = ratio;
                r.worst_at = if want.len() > 1 {
                    format!("{at}[{i}]")
                } else {
                    at.to_string()
                };
            }
        }
        Ok(())
    }
}

fn field<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a Value> {
    v.get(key)
        .ok_or_else(|| TrainError::Input(format!("golden: {at}: missing field `{key}`")))
}

fn num(v: &Value, key: &str, at: &str) -> Result<f64> {
    field(v, key, at)?
        .as_f64()
        .ok_or_else(|| TrainError::Input(format!("golden: {at}.{key}: not a number")))
}

fn flat(v: &Value, out: &mut Vec<f64>, at: &str) -> Result<()> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| flat(x, out, at)),
        _ => {
            out.push(
                v.as_f64()
                    .ok_or_else(|| TrainError::Input(format!("golden: {at}: not a number")))?,
            );
            Ok(())
        }
    }
}

fn numbers(v: &Value, at: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    flat(v, &mut out, at)?;
    Ok(out)
}

fn shape_of(v: &Value) -> Vec<usize> {
    let mut dims = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        dims.push(a.len());
        match a.first() {
            Some(x) => cur = x,
            None => break,
        }
    }
    dims
}

fn tensor(v: &Value, at: &str, dtype: DType) -> Result<Tensor> {
    let data = numbers(v, at)?;
    let shape = shape_of(v);
    if shape.iter().product::<usize>() != data.len() {
        return Err(TrainError::Shape(format!("golden: {at}: ragged array")));
    }
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)?)
}

fn values_of(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// Parses `gae_gamma1_lam095` into (1.0, 0.95): digits with a leading 0 read as `0.<rest>`.
pub fn parse_gae_key(key: &str) -> Option<(f64, f64)> {
    let rest = key.strip_prefix("gae_gamma")?;
    let (g, l) = rest.split_once("_lam")?;
    let p = |s: &str| -> Option<f64> {
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        if s.contains('.') {
            s.parse().ok()
        } else if s.len() > 1 && s.starts_with('0') {
            format!("0.{}", &s[1..]).parse().ok()
        } else {
            s.parse().ok()
        }
    };
    Some((p(g)?, p(l)?))
}

/// Parses a policy-loss key `eps_low=..,eps_high=..,clip_c=..,agg=..[,loss_scale_factor=..]`.
pub fn parse_policy_key(key: &str) -> Result<(ClipConfig, LossAggMode, Option<f64>)> {
    let mut clip = ClipConfig::default();
    let (mut agg, mut lsf) = (None, None);
    let bad = |m: String| TrainError::Input(format!("golden: policy-loss key `{key}`: {m}"));
    for part in key.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("`{part}` is not k=v")))?;
        let f = || {
            v.parse::<f64>()
                .map_err(|_| bad(format!("`{v}` is not a number")))
        };
        match k {
            "eps_low" => clip.clip_ratio_low = f()?,
            "eps_high" => clip.clip_ratio_high = f()?,
            "clip_c" => clip.clip_ratio_c = f()?,
            "agg" => agg = Some(v.parse::<LossAggMode>()?),
            "loss_scale_factor" => lsf = Some(f()?),
            _ => return Err(bad(format!("unknown parameter `{k}`"))),
        }
    }
    Ok((clip, agg.ok_or_else(|| bad("no agg".into()))?, lsf))
}

/// Recomputes every field of `golden` in `dtype` (F32 or F64) and compares.
pub fn check_golden(golden: &Value, dtype: DType) -> Result<GoldenReport> {
    if !matches!(dtype, DType::F32 | DType::F64) {
        return Err(TrainError::Input(format!(
            "golden check runs in f32 or f64, not {dtype:?}"
        )));
    }
    let mut rep = GoldenReport {
        dtype,
        tol: Tolerance::for_dtype(dtype),
        fields: BTreeMap::new(),
    };
    let cases = field(golden, "cases", "file")?
        .as_array()
        .ok_or_else(|| TrainError::Input("golden: `cases` is not an array".into()))?;
    for (ci, case) in cases.iter().enumerate() {
        check_case(&mut rep, case, &format!("cases[{ci}]"), dtype)?;
    }
    if let Some(list) = golden.get("pass_at_k").and_then(Value::as_array) {
        for (i, e) in list.iter().enumerate() {
            let at = format!("pass_at_k[{i}]");
            let n = num(e, "n", &at)? as u64;
            let c = num(e, "c", &at)? as u64;
            let k = num(e, "k", &at)? as u64;
            let got = pass_at_k(n, c, k)?;
            rep.record("pass_at_k", &at, &[got], &[num(e, "pass_at_k", &at)?])?;
        }
    }
    if let Some(list) = golden.get("dapo_overlong").and_then(Value::as_array) {
        for (i, e) in list.iter().enumerate() {
            let at = format!("dapo_overlong[{i}]");
            let len = num(e, "length", &at)? as usize;
            let max = num(e, "L_max", &at)? as usize;
            let cache = num(e, "L_cache", &at)? as usize;
            let got = soft_overlong_penalty(len, max, cache, 1.0)?;
            rep.record("dapo_overlong", &at, &[got], &[num(e, "penalty", &at)?])?;
        }
    }
    Ok(rep)
}

fn check_case(rep: &mut GoldenReport, case: &Value, at: &str, dtype: DType) -> Result<()> {
    let t = |key: &str| -> Result<Tensor> {
        tensor(field(case, key, at)?, &format!("{at}.{key}"), dtype)
    };
    let index: Vec<String> = field(case, "index", at)?
        .as_array()
        .ok_or_else(|| TrainError::Input(format!("golden: {at}.index: not an array")))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    let mask = t("response_mask")?;
    let rewards = t("token_level_rewards")?;
    let advs = field(case, "advantages", at)?
        .as_object()
        .ok_or_else(|| TrainError::Input(format!("golden: {at}.advantages: not an object")))?;
    let gae_key = advs.keys().find(|k| parse_gae_key(k).is_some()).cloned();
    for (name, want) in advs {
        let here = format!("{at}.advantages.{name}");
        let want = numbers(want, &here)?;
        let (registry_name, pick_returns, (gamma, lam)) = match name.as_str() {
            "gae_returns" => {
                let key = gae_key.as_deref().ok_or_else(|| {
                    TrainError::Input(format!("golden: {here}: no gae_gamma*_lam* entry"))
                })?;
                ("gae", true, parse_gae_key(key).unwrap_or((1.0, 1.0)))
            }
            other => match parse_gae_key(other) {
                Some(gl) => ("gae", false, gl),
                None => (other, false, (1.0, 1.0)),
            },
        };
        let estimator: AdvantageEstimator = registry_name.parse()?;
        let needs = estimator.needs();
        let values = if needs.critic {
            Some(t("values")?)
        } else {
            None
        };
        let baselines = if needs.greedy_baseline {
            Some(t("remax_baselines")?)
        } else {
            None
        };
        let inputs = EstimatorInputs {
            values: values.as_ref(),
            reward_baselines: baselines.as_ref(),
            ..EstimatorInputs::new(&rewards, &mask, &index)
        };
        let params = AdvantageParams {
            gamma,
            lam,
            ..AdvantageParams::default()
        };
        let (adv, ret) = advantages::compute_advantages(estimator, &inputs, &params)?;
        let got = if pick_returns { ret } else { adv };
        rep.record(
            &format!("advantages.{name}"),
            &here,
            &values_of(&got)?,
            &want,
        )?;
    }

    // policy losses, on the golden GRPO advantages
    let old = t("old_log_prob")?;
    let logp = t("log_prob")?;
    let grpo_adv = tensor(
        advs.get("grpo")
            .ok_or_else(|| TrainError::Input(format!("golden: {at}: no grpo advantages")))?,
        at,
        dtype,
    )?;
    if let Some(pl) = case
        .get("policy_loss_on_grpo_advantages")
        .and_then(Value::as_object)
    {
        for (key, want) in pl {
            let here = format!("{at}.policy_loss[{key}]");
            let (clip, mode, lsf) = parse_policy_key(key)?;
            let var = Var::from_tensor(&logp)?;
            let norm = mode.normaliser(&mask, lsf)?;
            let out = ppo_clip_loss(var.as_tensor(), &old, &grpo_adv, &mask, &clip, &norm)?;
            let grads = out.loss.backward()?;
            let grad = grads
                .get(var.as_tensor())
                .ok_or_else(|| TrainError::Input("no gradient reached log_prob".into()))?;
            let scalar = |k: &str| num(want, k, &here);
            rep.record(
                "policy_loss.loss",
                &here,
                &values_of(&out.loss)?,
                &[scalar("loss")?],
            )?;
            rep.record(
                "policy_loss.grad_log_prob",
                &here,
                &values_of(grad)?,
                &numbers(field(want, "grad_log_prob", &here)?, &here)?,
            )?;
            rep.record(
                "policy_loss.clipfrac",
                &here,
                &[out.clipfrac],
                &[scalar("clipfrac")?],
            )?;
            rep.record(
                "policy_loss.clipfrac_lower",
                &here,
                &[out.clipfrac_lower],
                &[scalar("clipfrac_lower")?],
            )?;
            rep.record(
                "policy_loss.ppo_kl",
                &here,
                &[out.ppo_kl],
                &[scalar("ppo_kl")?],
            )?;
        }
    }

    if let Some(kls) = case.get("kl_log_prob_vs_ref").and_then(Value::as_object) {
        let reference = t("ref_log_prob")?;
        for (name, want) in kls {
            let here = format!("{at}.kl.{name}");
            let kind: KlEstimator = name.parse()?;
            let got = kl_penalty(&logp, &reference, kind)?;
            rep.record(
                &format!("kl.{name}"),
                &here,
                &values_of(&got)?,
                &numbers(want, &here)?,
            )?;
        }
    }

    if let Some(vl) = case.get("value_loss") {
        let here = format!("{at}.value_loss");
        let vpreds = tensor(field(vl, "vpreds", &here)?, &here, dtype)?;
        let returns = tensor(field(advs_value(case, at)?, "gae_returns", at)?, at, dtype)?;
        let mode: LossAggMode = field(vl, "agg", &here)?
            .as_str()
            .ok_or_else(|| TrainError::Input(format!("golden: {here}.agg: not a string")))?
            .parse()?;
        let out = value_loss(
            &vpreds,
            &returns,
            &t("values")?,
            &mask,
            num(vl, "cliprange_value", &here)?,
            &mode.normaliser(&mask, None)?,
        )?;
        rep.record(
            "value_loss.loss",
            &here,
            &values_of(&out.loss)?,
            &[num(vl, "loss", &here)?],
        )?;
    }

    if let Some(ent) = case.get("entropy") {
        let here = format!("{at}.entropy");
        let logits = tensor(field(ent, "logits", &here)?, &here, dtype)?;
        let h = entropy_from_logits(&logits)?;
        let got = crate::agg::agg_loss_local(&h, &mask, LossAggMode::TokenMean, None)?;
        rep.record(
            "entropy.token_mean",
            &here,
            &values_of(&got)?,
            &[num(ent, "token_mean", &here)?],
        )?;
    }
    Ok(())
}

fn advs_value<'a>(case: &'a Value, at: &str) -> Result<&'a Value> {
    field(case, "advantages", at)
}
