//! Recomputes every value of a golden file in the format of `../shared/golden/losses.json`
//! (verl 1dda039's policy losses, extra advantage estimators and rollout correction) and
//! reports the worst error per field, with the tolerances of losses.md: f64 1e-9 relative
//! (floor 1e-12), 1e-6 for what verl computes in float32 (shares of sequences,
//! `grpo_vectorized`); f32 1e-5 (floor 1e-6). Entries verl reports as NaN must come out NaN,
//! entries it refuses (`error`) must be refused. Used by `rlvr selftest losses`.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

use crate::advantages::AdvantageParams;
use crate::agg::LossAggMode;
use crate::error::{Result, TrainError};
use crate::estimators::{estimator_fn, EstimatorConfig, EstimatorInputs};
use crate::golden::{FieldReport, Tolerance};
use crate::losses::{policy_loss_fn, ActorLossConfig, PolicyLossInputs, PolicyLossOutput};
use crate::rollout_correction::{
    compute_rollout_correction, RolloutCorrectionConfig, ROLLOUT_CORRECTION_PRESETS,
};

/// Tolerance class of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolClass {
    /// The dtype's tolerance (f64 1e-9).
    Exact,
    /// Values verl computes in float32 (1e-6 relative in f64).
    Float32,
}

/// The comparison of a losses golden file in one dtype.
#[derive(Clone, Debug)]
pub struct LossesReport {
    /// Compute dtype.
    pub dtype: DType,
    /// Per field: its tolerance and errors.
    pub fields: BTreeMap<String, (Tolerance, FieldReport)>,
}

impl LossesReport {
    /// The tolerance of `class` in this report's dtype.
    pub fn tolerance(&self, class: TolClass) -> Tolerance {
        let base = Tolerance::for_dtype(self.dtype);
        match class {
            TolClass::Exact => base,
            TolClass::Float32 => Tolerance {
                rel: base.rel.max(1e-6),
                abs: base.abs.max(1e-9),
            },
        }
    }

    /// Whether every field is within tolerance (and something was compared).
    pub fn passed(&self) -> bool {
        !self.fields.is_empty()
            && self
                .fields
                .values()
                .all(|(_, f)| f.worst_ratio <= 1.0 && f.count > 0)
    }

    /// Total number of values compared.
    pub fn count(&self) -> usize {
        self.fields.values().map(|(_, f)| f.count).sum()
    }

    /// Compares `got` with `want` (NaN must meet NaN).
    pub fn record(
        &mut self,
        field: &str,
        class: TolClass,
        at: &str,
        got: &[f64],
        want: &[f64],
    ) -> Result<()> {
        if got.len() != want.len() {
            return Err(TrainError::Shape(format!(
                "{field} at {at}: computed {} values, golden has {}",
                got.len(),
                want.len()
            )));
        }
        let tol = self.tolerance(class);
        let (_, r) = self
            .fields
            .entry(field.to_string())
            .or_insert((tol, FieldReport::default()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let (err, ratio) = match (g.is_nan(), w.is_nan()) {
                (true, true) => (0.0, 0.0),
                (false, false) if g == w => (0.0, 0.0),
                (false, false) => {
                    let e = (g - w).abs();
                    (
                        e,
                        if e.is_nan() {
                            f64::INFINITY
                        } else {
                            e / (tol.rel * w.abs()).max(tol.abs)
                        },
                    )
                }
                _ => (f64::INFINITY, f64::INFINITY),
            };
            r.count += 1;
            r.max_abs = r.max_abs.max(err);
            if *w != 0.0 && w.is_finite() {
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

    /// Records a yes/no check (0 error when `ok`).
    fn check(&mut self, field: &str, at: &str, ok: bool) -> Result<()> {
        let got = if ok { 0.0 } else { f64::INFINITY };
        self.record(field, TolClass::Exact, at, &[got], &[0.0])
    }
}

fn field<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a Value> {
    v.get(key)
        .ok_or_else(|| TrainError::Input(format!("golden: {at}: missing field `{key}`")))
}

/// Numbers of a nested array; `null` reads as NaN.
fn numbers(v: &Value, at: &str) -> Result<Vec<f64>> {
    fn go(v: &Value, out: &mut Vec<f64>, at: &str) -> Result<()> {
        match v {
            Value::Array(a) => a.iter().try_for_each(|x| go(x, out, at)),
            Value::Null => {
                out.push(f64::NAN);
                Ok(())
            }
            _ => {
                let x = v
                    .as_f64()
                    .ok_or_else(|| TrainError::Input(format!("golden: {at}: not a number")))?;
                out.push(x);
                Ok(())
            }
        }
    }
    let mut out = Vec::new();
    go(v, &mut out, at)?;
    Ok(out)
}

fn tensor(v: &Value, at: &str, dtype: DType) -> Result<Tensor> {
    let rows = v
        .as_array()
        .ok_or_else(|| TrainError::Input(format!("golden: {at}: not an array")))?;
    let data = numbers(v, at)?;
    let b = rows.len();
    if b == 0 || data.len() % b != 0 {
        return Err(TrainError::Shape(format!(
            "golden: {at}: ragged or empty array"
        )));
    }
    Ok(Tensor::from_vec(data.clone(), (b, data.len() / b), &Device::Cpu)?.to_dtype(dtype)?)
}

fn values_of(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

fn parse<T: serde::de::DeserializeOwned>(v: &Value, at: &str) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| TrainError::Config(format!("golden: {at}: {e}")))
}

/// Metrics verl computes in float32: shares of sequences (`mean_i[...]`).
fn metric_class(name: &str, float32_shares: &[String]) -> TolClass {
    if float32_shares.iter().any(|s| s == name) {
        TolClass::Float32
    } else {
        TolClass::Exact
    }
}

/// The metric names that are float32 shares of sequences under `cfg`.
fn float32_shares(cfg: Option<&RolloutCorrectionConfig>) -> Vec<String> {
    let mut out = vec!["rollout_corr/rollout_rs_seq_masked_fraction".to_string()];
    for s in ["seq_fraction_high", "seq_fraction_low"] {
        out.push(format!("rollout_corr/rollout_is_{s}"));
    }
    let Some(cfg) = cfg else { return out };
    if cfg.rollout_is == Some(crate::rollout_correction::IsLevel::Sequence) {
        out.push("rollout_corr/rollout_is_ratio_fraction_high".into());
        out.push("rollout_corr/rollout_is_ratio_fraction_low".into());
    }
    for o in cfg
        .rollout_rs
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
    {
        for s in ["seq_fraction_high", "seq_fraction_low"] {
            out.push(format!("rollout_corr/rollout_rs_{o}_{s}"));
        }
        if !o.starts_with("token_") {
            out.push(format!("rollout_corr/rollout_rs_{o}_fraction_high"));
            out.push(format!("rollout_corr/rollout_rs_{o}_fraction_low"));
        }
    }
    out
}

/// One case's tensors.
struct Case {
    dtype: DType,
    at: String,
    index: Vec<String>,
    mask: Tensor,
    old: Tensor,
    logp: Tensor,
    rollout: Tensor,
    adv: Tensor,
    v: Value,
}

impl Case {
    fn t(&self, key: &str) -> Result<Tensor> {
        tensor(
            field(&self.v, key, &self.at)?,
            &format!("{}.{key}", self.at),
            self.dtype,
        )
    }
}

/// Recomputes every entry of a losses golden file in `dtype` (F32 or F64) and compares.
pub fn check_losses_golden(golden: &Value, dtype: DType) -> Result<LossesReport> {
    if !matches!(dtype, DType::F32 | DType::F64) {
        return Err(TrainError::Input(format!(
            "golden check runs in f32 or f64, not {dtype:?}"
        )));
    }
    let mut rep = LossesReport {
        dtype,
        fields: BTreeMap::new(),
    };
    let cases = field(golden, "cases", "file")?
        .as_array()
        .ok_or_else(|| TrainError::Input("golden: `cases` is not an array".into()))?;
    for (ci, v) in cases.iter().enumerate() {
        let at = format!("cases[{ci}]");
        let index = field(v, "index", &at)?
            .as_array()
            .ok_or_else(|| TrainError::Input(format!("golden: {at}.index: not an array")))?
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect();
        let t = |k: &str| tensor(field(v, k, &at)?, &format!("{at}.{k}"), dtype);
        let case = Case {
            dtype,
            index,
            mask: t("response_mask")?,
            old: t("old_log_prob")?,
            logp: t("log_prob")?,
            rollout: t("rollout_log_prob")?,
            adv: t("advantages")?,
            at: at.clone(),
            v: v.clone(),
        };
        policy_losses(&mut rep, &case)?;
        estimators(&mut rep, &case)?;
        rollout_correction(&mut rep, &case)?;
    }
    Ok(rep)
}

/// Runs a loss on a fresh `Var` of `log_prob`; returns the output and d loss / d logπ.
fn run_loss(
    name: &str,
    inp: PolicyLossInputs,
    cfg: &ActorLossConfig,
) -> Result<(PolicyLossOutput, Tensor)> {
    let var = Var::from_tensor(inp.log_prob)?;
    let inp = PolicyLossInputs {
        log_prob: var.as_tensor(),
        ..inp
    };
    let out = policy_loss_fn(name)?(&inp, cfg)?;
    let grads = out.loss.backward()?;
    let grad = grads
        .get(var.as_tensor())
        .cloned()
        .unwrap_or(var.as_tensor().zeros_like()?);
    Ok((out, grad))
}

/// Compares loss, gradient, token loss and metrics of one entry under `prefix`.
fn compare_loss(
    rep: &mut LossesReport,
    prefix: &str,
    here: &str,
    (out, grad): (&PolicyLossOutput, &Tensor),
    want: &Value,
    shares: &[String],
) -> Result<()> {
    let loss = values_of(&out.loss)?;
    if want.get("nan_loss").and_then(Value::as_bool) == Some(true) {
        rep.record(
            &format!("{prefix}.loss"),
            TolClass::Exact,
            here,
            &loss,
            &[f64::NAN],
        )?;
    } else {
        let w = numbers(field(want, "loss", here)?, here)?;
        rep.record(&format!("{prefix}.loss"), TolClass::Exact, here, &loss, &w)?;
        let g = numbers(field(want, "grad_log_prob", here)?, here)?;
        rep.record(
            &format!("{prefix}.grad_log_prob"),
            TolClass::Exact,
            here,
            &values_of(grad)?,
            &g,
        )?;
    }
    if let (Some(tl), Some(w)) = (&out.token_loss, want.get("token_loss")) {
        rep.record(
            &format!("{prefix}.token_loss"),
            TolClass::Exact,
            here,
            &values_of(tl)?,
            &numbers(w, here)?,
        )?;
    }
    if let Some(m) = want.get("metrics").and_then(Value::as_object) {
        let missing: Vec<&String> = m.keys().filter(|k| !out.metrics.contains_key(*k)).collect();
        let extra: Vec<&String> = out.metrics.keys().filter(|k| !m.contains_key(*k)).collect();
        let at = format!("{here} (missing {missing:?}, extra {extra:?})");
        rep.check(
            &format!("{prefix}.metric_names"),
            &at,
            missing.is_empty() && extra.is_empty(),
        )?;
        for (k, w) in m {
            if let Some(g) = out.metrics.get(k) {
                let class = metric_class(k, shares);
                rep.record(
                    &format!("{prefix}.{k}"),
                    class,
                    here,
                    &[*g],
                    &numbers(w, here)?,
                )?;
            }
        }
    }
    if let Some(w) = want.get("loss_agg_mode_used").and_then(Value::as_str) {
        let ok = out.loss_agg_mode_used.as_deref() == Some(w);
        rep.check(&format!("{prefix}.loss_agg_mode_used"), here, ok)?;
    }
    Ok(())
}

fn tokens_of(v: &Value, at: &str) -> Result<Vec<(usize, usize)>> {
    let n = numbers(v, at)?;
    let mut out: Vec<(usize, usize)> = n
        .chunks(2)
        .map(|c| (c[0] as usize, c[1] as usize))
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn policy_losses(rep: &mut LossesReport, c: &Case) -> Result<()> {
    let Some(list) = c.v.get("policy_losses").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, e) in list.iter().enumerate() {
        let here = format!("{}.policy_losses[{i}]", c.at);
        let mode = field(e, "loss_mode", &here)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut cfg: ActorLossConfig = parse(field(e, "params", &here)?, &here)?;
        cfg.loss_agg_mode = parse(field(e, "loss_agg_mode", &here)?, &here)?;
        cfg.loss_scale_factor = e.get("loss_scale_factor").and_then(Value::as_f64);
        cfg.policy_loss.loss_mode = mode.clone();
        let selection = match e.get("selected_tokens") {
            Some(s) if mode == "clip_cov" => Some(tokens_of(s, &here)?),
            _ => None,
        };
        let mut inp = PolicyLossInputs::new(&c.old, &c.logp, &c.adv, &c.mask);
        inp.clip_cov_selection = selection.as_deref();
        let (out, grad) = run_loss(&mode, inp, &cfg)?;
        compare_loss(
            rep,
            &format!("policy_loss.{mode}"),
            &here,
            (&out, &grad),
            e,
            &[],
        )?;
        if let (Some(want), Some(got)) = (e.get("selected_tokens"), &out.selected_tokens) {
            let ok = tokens_of(want, &here)? == *got;
            rep.check(&format!("policy_loss.{mode}.selected_tokens"), &here, ok)?;
        }
    }
    Ok(())
}

/// `name[k=v,...]` into the name and the bracketed options.
fn split_key(key: &str) -> (&str, BTreeMap<&str, &str>) {
    match key.split_once('[') {
        Some((name, rest)) => {
            let opts = rest
                .trim_end_matches(']')
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            (name, opts)
        }
        None => (key, BTreeMap::new()),
    }
}

fn estimators(rep: &mut LossesReport, c: &Case) -> Result<()> {
    let Some(map) = c.v.get("advantage_estimators").and_then(Value::as_object) else {
        return Ok(());
    };
    let rewards = c.t("token_level_rewards")?;
    let sps = c.t("sum_pi_squared")?;
    let comps = reward_components(&c.v, &c.at)?;
    for (key, e) in map {
        let here = format!("{}.advantage_estimators[{key}]", c.at);
        let (name, opts) = split_key(key);
        let mut cfg = EstimatorConfig::default();
        if let Some(v) = opts.get("norm_adv_by_std_in_grpo") {
            cfg.norm_adv_by_std_in_grpo = *v == "True" || *v == "true";
        }
        if let Some(k) = e.get("gdpo_reward_keys") {
            cfg.gdpo_reward_keys = parse(k, &here)?;
        }
        if let Some(w) = e.get("gdpo_reward_weights") {
            cfg.gdpo_reward_weights = parse(w, &here)?;
        }
        if let Some(x) = e.get("f_norm").and_then(Value::as_f64) {
            cfg.f_norm = x;
        }
        if let Some(x) = e.get("epsilon").and_then(Value::as_f64) {
            cfg.epsilon = x;
        }
        if let Some(x) = e.get("handle_zero_tail").and_then(Value::as_bool) {
            cfg.handle_zero_tail = x;
        }
        let mask = match e.get("mask").and_then(Value::as_str) {
            Some(m) => c.t(m)?,
            None => c.mask.clone(),
        };
        let is = match e.get("rollout_is_weights").and_then(Value::as_str) {
            Some(preset) => {
                let rc = RolloutCorrectionConfig::preset(preset)?;
                compute_rollout_correction(&c.old, &c.rollout, &c.mask, &rc)?.rollout_is_weights
            }
            None => None,
        };
        let mut inp = EstimatorInputs::new(&rewards, &mask, &c.index);
        inp.reward_components = Some(&comps);
        inp.old_log_prob = Some(&c.old);
        inp.sum_pi_squared = Some(&sps);
        inp.rollout_is_weights = is.as_ref();
        let class = if name == "grpo_vectorized" {
            TolClass::Float32
        } else {
            TolClass::Exact
        };
        let params = AdvantageParams {
            extra: cfg,
            ..AdvantageParams::default()
        };
        let result = estimator_fn(name)?(&inp, &params);
        let fname = format!("advantages.{name}");
        match (e.get("error"), result) {
            (Some(err), Err(got)) => {
                let want = err.as_str().unwrap_or_default();
                let msg = got.to_string();
                let ok = want.split_once(": ").is_some_and(|(_, m)| msg.contains(m));
                rep.check(&format!("{fname}.error"), &format!("{here}: {msg}"), ok)?;
            }
            (Some(_), Ok(_)) => rep.check(
                &format!("{fname}.error"),
                &format!("{here}: not refused"),
                false,
            )?,
            (None, Err(err)) => return Err(err),
            (None, Ok((adv, ret))) => {
                let w = numbers(field(e, "advantages", &here)?, &here)?;
                rep.record(&fname, class, &here, &values_of(&adv)?, &w)?;
                if let Some(r) = e.get("returns") {
                    rep.record(
                        &format!("{fname}.returns"),
                        class,
                        &here,
                        &values_of(&ret)?,
                        &numbers(r, &here)?,
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn reward_components(v: &Value, at: &str) -> Result<BTreeMap<String, Vec<f64>>> {
    let mut out = BTreeMap::new();
    let Some(rc) = v.get("reward_components") else {
        return Ok(out);
    };
    let keys: Vec<String> = parse(field(rc, "keys", at)?, at)?;
    let values: Vec<Vec<f64>> = parse(field(rc, "values", at)?, at)?;
    for (k, key) in keys.into_iter().enumerate() {
        out.insert(
            key,
            values
                .iter()
                .map(|row| row.get(k).copied().unwrap_or(f64::NAN))
                .collect(),
        );
    }
    Ok(out)
}

fn optional_tensor(
    rep: &mut LossesReport,
    name: &str,
    here: &str,
    got: Option<&Tensor>,
    want: Option<&Value>,
) -> Result<()> {
    match (got, want.filter(|w| !w.is_null())) {
        (Some(g), Some(w)) => rep.record(
            name,
            TolClass::Exact,
            here,
            &values_of(g)?,
            &numbers(w, here)?,
        ),
        (None, None) => Ok(()),
        _ => rep.check(&format!("{name}.presence"), here, false),
    }
}

fn rollout_correction(rep: &mut LossesReport, c: &Case) -> Result<()> {
    let Some(rc) = c.v.get("rollout_correction") else {
        return Ok(());
    };
    for (i, e) in rc
        .get("decoupled")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let here = format!("{}.rollout_correction.decoupled[{i}]", c.at);
        let cfg: RolloutCorrectionConfig = parse(field(e, "config", &here)?, &here)?;
        check_preset(rep, e, &cfg, &here)?;
        let corr = compute_rollout_correction(&c.old, &c.rollout, &c.mask, &cfg)?;
        let w = corr.rollout_is_weights.as_ref();
        optional_tensor(
            rep,
            "rollout_correction.rollout_is_weights",
            &here,
            w,
            e.get("rollout_is_weights"),
        )?;
        let mm = corr.modified_response_mask.as_ref();
        optional_tensor(
            rep,
            "rollout_correction.modified_response_mask",
            &here,
            mm,
            e.get("modified_response_mask"),
        )?;
        let shares = float32_shares(Some(&cfg));
        let fake = PolicyLossOutput {
            loss: Tensor::new(0f64, &Device::Cpu)?,
            token_loss: None,
            metrics: corr.metrics.clone(),
            loss_agg_mode_used: None,
            selected_tokens: None,
        };
        let metrics_only = serde_json::json!({"metrics": field(e, "metrics", &here)?, "loss": 0.0, "grad_log_prob": []});
        compare_metrics_only(rep, &here, &fake, &metrics_only, &shares)?;
        for (key, mode) in [("vanilla_token_mean", "vanilla"), ("geo_mean", "geo_mean")] {
            let Some(want) = e.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            let at = format!("{here}.{key}");
            let mut lc: ActorLossConfig = parse(field(want, "params", &at)?, &at)?;
            lc.policy_loss.loss_mode = mode.into();
            let mut inp = PolicyLossInputs::new(&c.old, &c.logp, &c.adv, &corr.response_mask);
            inp.rollout_is_weights = w;
            let (out, grad) = run_loss(mode, inp, &lc)?;
            compare_loss(
                rep,
                &format!("rollout_correction.{key}"),
                &at,
                (&out, &grad),
                want,
                &shares,
            )?;
        }
    }
    for (i, e) in rc
        .get("bypass")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let here = format!("{}.rollout_correction.bypass[{i}]", c.at);
        let rcfg: RolloutCorrectionConfig = parse(field(e, "config", &here)?, &here)?;
        check_preset(rep, e, &rcfg, &here)?;
        let mut cfg: ActorLossConfig = parse(field(e, "params", &here)?, &here)?;
        cfg.loss_agg_mode = parse::<LossAggMode>(field(e, "loss_agg_mode", &here)?, &here)?;
        cfg.policy_loss.loss_mode = "bypass_mode".into();
        let shares = float32_shares(Some(&rcfg));
        cfg.policy_loss.rollout_correction = Some(rcfg);
        let inp = PolicyLossInputs::new(&c.rollout, &c.logp, &c.adv, &c.mask);
        let (out, grad) = run_loss("bypass_mode", inp, &cfg)?;
        compare_loss(
            rep,
            "rollout_correction.bypass",
            &here,
            (&out, &grad),
            e,
            &shares,
        )?;
    }
    Ok(())
}

/// Compares only the metrics of a rollout correction (prefix `rollout_correction`).
fn compare_metrics_only(
    rep: &mut LossesReport,
    here: &str,
    out: &PolicyLossOutput,
    want: &Value,
    shares: &[String],
) -> Result<()> {
    let m = want
        .get("metrics")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let missing: Vec<&String> = m.keys().filter(|k| !out.metrics.contains_key(*k)).collect();
    let extra: Vec<&String> = out.metrics.keys().filter(|k| !m.contains_key(*k)).collect();
    let at = format!("{here} (missing {missing:?}, extra {extra:?})");
    rep.check(
        "rollout_correction.metric_names",
        &at,
        missing.is_empty() && extra.is_empty(),
    )?;
    for (k, w) in &m {
        if let Some(g) = out.metrics.get(k) {
            let f = format!(
                "rollout_correction.{}",
                k.trim_start_matches("rollout_corr/")
            );
            rep.record(&f, metric_class(k, shares), here, &[*g], &numbers(w, here)?)?;
        }
    }
    Ok(())
}

/// When an entry's `preset` is one of verl's constructors, its config must equal ours.
fn check_preset(
    rep: &mut LossesReport,
    e: &Value,
    cfg: &RolloutCorrectionConfig,
    here: &str,
) -> Result<()> {
    let Some(name) = e.get("preset").and_then(Value::as_str) else {
        return Ok(());
    };
    if ROLLOUT_CORRECTION_PRESETS.contains(&name) {
        let ok = RolloutCorrectionConfig::preset(name)? == *cfg;
        rep.check(
            "rollout_correction.preset_config",
            &format!("{here} ({name})"),
            ok,
        )?;
    }
    Ok(())
}
