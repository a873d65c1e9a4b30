//! `rlvr rm train` as a library call: load the base model, read the data, train, measure,
//! save the reward model with its head and its metrics.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::data::{read_jsonl, Example};
use crate::error::{Result, RmError};
use crate::model::{RewardModel, RmKind, RmSettings};
use crate::train::{evaluate, split_eval, train, RmMetrics, RmTrainConfig, TrainReport};

/// Everything `rlvr rm train` needs.
#[derive(Clone, Debug)]
pub struct TrainJob {
    pub kind: RmKind,
    /// Base model directory (a causal LM or a reward model).
    pub model: PathBuf,
    /// Training data (JSONL).
    pub data: PathBuf,
    /// Evaluation data; default: `eval_fraction` of `data`, held out.
    pub eval: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// `KEY=VALUE` overrides of [`RmTrainConfig`] and [`RmSettings`] fields.
    pub sets: Vec<String>,
    /// Verifier that labels `{prompt, response, ground_truth}` lines (e.g. `math`).
    pub label_verifier: Option<String>,
    /// Where the model trains (default CPU).
    pub device: rlvr_model::DeviceSpec,
}

/// What a job did.
#[derive(Clone, Debug, Serialize)]
pub struct JobSummary {
    pub kind: RmKind,
    pub out: PathBuf,
    pub train_records: usize,
    pub eval_records: usize,
    pub head_initialised: bool,
    pub config: RmTrainConfig,
    pub settings: RmSettings,
    pub report: TrainReport,
    pub before: Option<RmMetrics>,
    pub after: Option<RmMetrics>,
}

/// Applies `KEY=VALUE` to the training config or the model settings; the value is JSON when
/// it parses as JSON, else a string.
pub fn apply_set(cfg: &mut RmTrainConfig, settings: &mut RmSettings, set: &str) -> Result<()> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| RmError::config(set, "expected KEY=VALUE"))?;
    let key = key.trim();
    let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
    let mut c = serde_json::to_value(&*cfg).expect("config serializes");
    let mut s = serde_json::to_value(&*settings).expect("settings serialize");
    if c.get(key).is_some() {
        c[key] = value;
        *cfg = serde_json::from_value(c).map_err(|e| RmError::config(key, e.to_string()))?;
    } else if s.get(key).is_some() {
        s[key] = value;
        *settings = serde_json::from_value(s).map_err(|e| RmError::config(key, e.to_string()))?;
    } else {
        let mut known: Vec<String> = c.as_object().unwrap().keys().cloned().collect();
        known.extend(s.as_object().unwrap().keys().cloned());
        return Err(RmError::config(
            key,
            format!("unknown (known: {})", known.join(", ")),
        ));
    }
    Ok(())
}

fn read(path: &Path, label: Option<&str>) -> Result<Vec<Example>> {
    let v = match label {
        None => None,
        Some(name) => Some(
            rlvr_verify::registry::build(name)
                .map_err(|e| RmError::config("label_verifier", e.to_string()))?,
        ),
    };
    read_jsonl(path, v.as_deref())
}

impl TrainJob {
    /// Runs the job; `on_step` sees every step (for a progress display).
    pub fn run(&self, mut on_step: impl FnMut(&crate::train::StepLog)) -> Result<JobSummary> {
        let device = self.device.open()?;
        let mut rm = RewardModel::load(&self.model, &device)?;
        let mut cfg = RmTrainConfig::default();
        rm.settings.kind = self.kind;
        for s in &self.sets {
            apply_set(&mut cfg, &mut rm.settings, s)?;
        }
        if rm.settings.kind != self.kind {
            return Err(RmError::config("kind", "set with --kind, not --set"));
        }
        let all = read(&self.data, self.label_verifier.as_deref())?;
        let (train_set, eval_set) = match &self.eval {
            Some(p) => (all, read(p, self.label_verifier.as_deref())?),
            None => split_eval(all, cfg.eval_fraction, cfg.seed),
        };
        crate::data::check_kind(&train_set, self.kind)?;
        crate::data::check_kind(&eval_set, self.kind)?;
        let before = if eval_set.is_empty() {
            None
        } else {
            Some(evaluate(&rm, &eval_set)?)
        };
        let report = train(&rm, &train_set, &cfg, &mut on_step)?;
        let after = if eval_set.is_empty() {
            None
        } else {
            Some(evaluate(&rm, &eval_set)?)
        };
        rm.save(&self.out)?;
        let summary = JobSummary {
            kind: self.kind,
            out: self.out.clone(),
            train_records: train_set.len(),
            eval_records: eval_set.len(),
            head_initialised: rm.head_was_initialised(),
            config: cfg,
            settings: rm.settings.clone(),
            report,
            before,
            after,
        };
        let path = self.out.join("rm_metrics.json");
        let text = serde_json::to_string_pretty(&summary).expect("summary serializes") + "\n";
        std::fs::write(&path, text).map_err(|e| RmError::io(&path, e))?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_reach_config_and_settings_and_unknown_keys_are_named() {
        let mut c = RmTrainConfig::default();
        let mut s = RmSettings::default();
        apply_set(&mut c, &mut s, "steps=7").unwrap();
        apply_set(&mut c, &mut s, "lr=0.5").unwrap();
        apply_set(&mut c, &mut s, "aggregation=product").unwrap();
        apply_set(&mut c, &mut s, "step_separator=ки").unwrap();
        assert_eq!((c.steps, c.lr), (7, 0.5));
        assert_eq!(s.aggregation, crate::Aggregation::Product);
        assert_eq!(s.step_separator, "ки");
        let e = apply_set(&mut c, &mut s, "stepz=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("stepz") && e.contains("unknown"), "{e}");
        let e = apply_set(&mut c, &mut s, "steps=many")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`steps`"), "{e}");
    }
}
