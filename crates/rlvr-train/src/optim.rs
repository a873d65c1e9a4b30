//! Optimiser pieces candle-nn lacks: AdamW (Loshchilov & Hutter 2019) with gradient clipping
//! by global norm (Pascanu et al. 2013), a guarded step that skips (and counts) updates with
//! a non-finite gradient ([`AdamW::try_step`]), the optimiser's state file
//! ([`AdamW::save_state`] / [`AdamW::load_state`]), learning-rate schedules, gradient
//! accumulation.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A learning-rate schedule: the multiplier of the peak LR at an optimiser step (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// Always 1. The default.
    #[default]
    Constant,
    /// `min(1, step / warmup_steps)` then 1 (verl's constant schedule with warmup).
    LinearWarmup {
        /// Steps to reach the peak LR.
        warmup_steps: usize,
    },
    /// Half-cosine from 1 to `min_lr_ratio` over `total_steps`.
    Cosine {
        /// Length of the decay.
        total_steps: usize,
        /// Final multiplier (default 0).
        #[serde(default)]
        min_lr_ratio: f64,
    },
    /// Linear warmup, then half-cosine to `min_lr_ratio` at `total_steps` (verl/transformers
    /// `get_cosine_schedule_with_warmup`).
    WarmupCosine {
        /// Warmup steps.
        warmup_steps: usize,
        /// Total steps (warmup included).
        total_steps: usize,
        /// Final multiplier (default 0).
        #[serde(default)]
        min_lr_ratio: f64,
    },
}

impl LrSchedule {
    /// The multiplier at `step`.
    pub fn factor(&self, step: usize) -> f64 {
        let cosine = |progress: f64, min: f64| {
            let p = progress.clamp(0.0, 1.0);
            min + (1.0 - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        };
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::LinearWarmup { warmup_steps } => {
                if step < warmup_steps {
                    step as f64 / warmup_steps as f64
                } else {
                    1.0
                }
            }
            LrSchedule::Cosine {
                total_steps,
                min_lr_ratio,
            } => cosine(step as f64 / total_steps.max(1) as f64, min_lr_ratio),
            LrSchedule::WarmupCosine {
                warmup_steps,
                total_steps,
                min_lr_ratio,
            } => {
                if step < warmup_steps {
                    step as f64 / warmup_steps.max(1) as f64
                } else {
                    let span = total_steps.saturating_sub(warmup_steps).max(1);
                    cosine((step - warmup_steps) as f64 / span as f64, min_lr_ratio)
                }
            }
        }
    }
}

/// Settings of [`AdamW`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate (default 1e-6, verl's actor default).
    pub lr: f64,
    /// β₁ (default 0.9).
    pub beta1: f64,
    /// β₂ (default 0.999).
    pub beta2: f64,
    /// ε (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (default 0.01).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (default 1.0; `None`/null = no clipping).
    pub grad_clip: Option<f64>,
    /// LR schedule.
    pub schedule: LrSchedule,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-6,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            grad_clip: Some(1.0),
            schedule: LrSchedule::Constant,
        }
    }
}

/// Global L2 norm `√(Σ_v ‖g_v‖²)` of the gradients of `vars` in `grads` (missing ones count 0).
pub fn global_grad_norm(vars: &[Var], grads: &GradStore) -> Result<f64> {
    let mut ss = 0.0;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            ss += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(ss.sqrt())
}

/// Scales every gradient of `vars` by `max_norm / norm` when the global norm exceeds
/// `max_norm` (PyTorch's `clip_grad_norm_`, with its +1e-6). Returns the norm before clipping.
/// A non-finite norm is an error (the step would corrupt the weights).
pub fn clip_grad_norm(vars: &[Var], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    let norm = global_grad_norm(vars, grads)?;
    if !norm.is_finite() {
        return Err(TrainError::Input(format!(
            "non-finite gradient norm {norm}"
        )));
    }
    scale_to_norm(vars, grads, norm, max_norm)?;
    Ok(norm)
}

/// Scales the gradients whose global norm is `norm` down to `max_norm` when it is above.
fn scale_to_norm(vars: &[Var], grads: &mut GradStore, norm: f64, max_norm: f64) -> Result<()> {
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), g.affine(coef, 0.0)?);
            }
        }
    }
    Ok(())
}

/// AdamW with global-norm gradient clipping and an LR schedule. The update is candle-nn's
/// (and PyTorch's) to the operation: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)`; the moments are exposed ([`AdamW::state`],
/// [`AdamW::set_state`]) and saved in one file format ([`AdamW::save_state`],
/// [`AdamW::load_state`]) so a checkpoint can resume the optimiser exactly.
pub struct AdamW {
    vars: Vec<Var>,
    moments: Vec<(Tensor, Tensor)>,
    cfg: OptimConfig,
    step: usize,
    skipped: usize,
}

/// The optimiser's state: steps taken and skipped, and the first/second moments of each
/// variable, in the order of the variables given to [`AdamW::new`].
#[derive(Clone, Debug)]
pub struct AdamWState {
    /// Optimiser steps taken.
    pub steps: usize,
    /// Steps [`AdamW::try_step`] skipped for a non-finite gradient norm.
    pub skipped: usize,
    /// `(m, v)` per variable.
    pub moments: Vec<(Tensor, Tensor)>,
}

/// What [`AdamW::try_step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The global gradient norm before clipping (non-finite when the step was skipped).
    pub grad_norm: f64,
    /// Whether the weights were updated (false: non-finite norm, nothing changed).
    pub applied: bool,
    /// The learning rate of the update (the scheduled one, also when skipped).
    pub lr: f64,
}

/// The one metadata entry of the state file: a small JSON object (`format`,
/// `optimizer_steps`, `skipped_steps`). One entry, so the file's bytes are deterministic
/// (safetensors writes several in hash order).
const META_KEY: &str = "rlvr_adamw";
const FORMAT: &str = "rlvr-adamw-v1";
/// The step-count entry of the files written before [`META_KEY`] (read, never written).
const META_STEPS_V0: &str = "optimizer_steps";

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Input(format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path` (and the directory synced), so a kill leaves the old file or the new
/// one. (rlvr-store has the same helper; this crate does not depend on it.)
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io_err(path, "no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

impl AdamW {
    /// An optimiser over `vars`.
    pub fn new(vars: Vec<Var>, cfg: OptimConfig) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|v| Ok((v.as_tensor().zeros_like()?, v.as_tensor().zeros_like()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            vars,
            moments,
            cfg,
            step: 0,
            skipped: 0,
        })
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Steps [`try_step`](Self::try_step) skipped for a non-finite gradient norm.
    pub fn skipped_steps(&self) -> usize {
        self.skipped
    }

    /// The configuration.
    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// The LR the next step will use.
    pub fn learning_rate(&self) -> f64 {
        self.cfg.lr * self.cfg.schedule.factor(self.step)
    }

    /// A copy of the state (cheap: tensors share storage until the next step replaces them).
    pub fn state(&self) -> AdamWState {
        AdamWState {
            steps: self.step,
            skipped: self.skipped,
            moments: self.moments.clone(),
        }
    }

    /// Restores a state taken by [`state`](Self::state) (or read by
    /// [`read_state`](Self::read_state)); shapes must match the variables.
    pub fn set_state(&mut self, state: AdamWState) -> Result<()> {
        if state.moments.len() != self.vars.len() {
            return Err(TrainError::Input(format!(
                "optimiser state has {} variables, the model {}",
                state.moments.len(),
                self.vars.len()
            )));
        }
        let mut moments = Vec::with_capacity(state.moments.len());
        for (i, ((m, v), var)) in state.moments.into_iter().zip(&self.vars).enumerate() {
            let want = var.as_tensor().dims();
            if m.dims() != want || v.dims() != want {
                return Err(TrainError::Input(format!(
                    "optimiser state of variable {i}: shapes {:?}/{:?}, expected {want:?}",
                    m.dims(),
                    v.dims()
                )));
            }
            let (dt, dev) = (var.as_tensor().dtype(), var.as_tensor().device());
            moments.push((
                m.to_dtype(dt)?.to_device(dev)?,
                v.to_dtype(dt)?.to_device(dev)?,
            ));
        }
        self.moments = moments;
        self.step = state.steps;
        self.skipped = state.skipped;
        Ok(())
    }

    /// Writes the state to `path` (one safetensors file, written atomically): tensors
    /// `NAME.exp_avg` / `NAME.exp_avg_sq` for each variable (`names` in the optimiser's
    /// variable order) and one metadata entry `rlvr_adamw`, a JSON object
    /// `{"format": "rlvr-adamw-v1", "optimizer_steps": N, "skipped_steps": K}`.
    pub fn save_state(&self, path: &Path, names: &[String]) -> Result<()> {
        if names.len() != self.vars.len() {
            return Err(TrainError::Input(format!(
                "{} names for {} optimiser variables",
                names.len(),
                self.vars.len()
            )));
        }
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(2 * names.len());
        for (name, (m, v)) in names.iter().zip(&self.moments) {
            tensors.push((format!("{name}.exp_avg"), m.contiguous()?));
            tensors.push((format!("{name}.exp_avg_sq"), v.contiguous()?));
        }
        let info = serde_json::json!({
            "format": FORMAT,
            "optimizer_steps": self.step,
            "skipped_steps": self.skipped,
        });
        let meta: HashMap<String, String> = [(META_KEY.to_string(), info.to_string())].into();
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
                .map_err(|e| io_err(path, e))?;
        write_atomic(path, &bytes)
    }

    /// Reads a state file written by [`save_state`](Self::save_state) for the variables
    /// `names` (tensors on the CPU). Files written before this format (rlvr-loop's
    /// checkpoints: the same tensors, metadata `optimizer_steps` only) read with 0 skipped.
    pub fn read_state(path: &Path, names: &[String]) -> Result<AdamWState> {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| io_err(path, e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let (steps, skipped) = if let Some(text) = meta.get(META_KEY) {
            let bad = |what: &str| io_err(path, format!("metadata {META_KEY}: {what}: {text}"));
            let info: serde_json::Value =
                serde_json::from_str(text).map_err(|_| bad("not JSON"))?;
            if info.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
                return Err(bad(&format!("format is not {FORMAT}")));
            }
            let count = |key: &str| {
                info.get(key)
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize)
                    .ok_or_else(|| bad(&format!("no count {key}")))
            };
            (count("optimizer_steps")?, count("skipped_steps")?)
        } else {
            let s = meta
                .get(META_STEPS_V0)
                .ok_or_else(|| io_err(path, format!("missing {META_KEY} metadata")))?;
            let steps = s
                .parse()
                .map_err(|_| io_err(path, format!("metadata {META_STEPS_V0}: not a count: {s}")))?;
            (steps, 0)
        };
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| io_err(path, e))?;
        let mut moments = Vec::with_capacity(names.len());
        for name in names {
            let get = |suffix: &str| {
                tensors
                    .get(&format!("{name}.{suffix}"))
                    .cloned()
                    .ok_or_else(|| io_err(path, format!("missing tensor {name}.{suffix}")))
            };
            moments.push((get("exp_avg")?, get("exp_avg_sq")?));
        }
        Ok(AdamWState {
            steps,
            skipped,
            moments,
        })
    }

    /// Restores the state saved by [`save_state`](Self::save_state) in `path` (same names,
    /// same order, same shapes; errors name the file).
    pub fn load_state(&mut self, path: &Path, names: &[String]) -> Result<()> {
        let state = Self::read_state(path, names)?;
        self.set_state(state).map_err(|e| io_err(path, e))
    }

    /// The guarded step: computes the global gradient norm first; a non-finite norm leaves
    /// the weights, moments and step count unchanged and counts a skipped step
    /// ([`skipped_steps`](Self::skipped_steps)); otherwise clips (if configured) and applies
    /// one AdamW update. Used by every trainer (RL, warm-up, critic, reward model).
    pub fn try_step(&mut self, mut grads: GradStore) -> Result<StepReport> {
        let lr = self.learning_rate();
        let norm = global_grad_norm(&self.vars, &grads)?;
        if !norm.is_finite() {
            self.skipped += 1;
            return Ok(StepReport {
                grad_norm: norm,
                applied: false,
                lr,
            });
        }
        if let Some(max) = self.cfg.grad_clip {
            scale_to_norm(&self.vars, &mut grads, norm, max)?;
        }
        self.apply(&grads)?;
        Ok(StepReport {
            grad_norm: norm,
            applied: true,
            lr,
        })
    }

    /// Clips `grads` (if configured), applies one AdamW update at the scheduled LR, and
    /// returns the gradient norm before clipping. A non-finite norm is an error and nothing
    /// changes (see [`try_step`](Self::try_step) to skip and count instead).
    pub fn step(&mut self, grads: GradStore) -> Result<f64> {
        let norm = global_grad_norm(&self.vars, &grads)?;
        if !norm.is_finite() {
            return Err(TrainError::Input(format!(
                "non-finite gradient norm {norm}"
            )));
        }
        let mut grads = grads;
        if let Some(max) = self.cfg.grad_clip {
            scale_to_norm(&self.vars, &mut grads, norm, max)?;
        }
        self.apply(&grads)?;
        Ok(norm)
    }

    /// One AdamW update with (already clipped) `grads` at the scheduled LR.
    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.learning_rate();
        let (beta1, beta2) = (self.cfg.beta1, self.cfg.beta2);
        let t = (self.step + 1) as i32;
        let scale_m = 1.0 / (1.0 - beta1.powi(t));
        let scale_v = 1.0 / (1.0 - beta2.powi(t));
        let decay = 1.0 - lr * self.cfg.weight_decay;
        for (var, (m, v)) in self.vars.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let next_m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let theta = (var.as_tensor() * decay)?;
            let adjusted = (m_hat / (v_hat.sqrt()? + self.cfg.eps)?)?;
            var.set(&(theta - (adjusted * lr)?)?)?;
            *m = next_m;
            *v = next_v;
        }
        self.step += 1;
        Ok(())
    }
}

/// Sums the gradients of several micro-batch backward passes (each loss normalised with the
/// global batch's normaliser, see [`crate::agg`]), for one optimiser step.
pub struct GradAccumulator {
    vars: Vec<Var>,
    sums: Vec<Option<Tensor>>,
    micro_batches: usize,
}

impl GradAccumulator {
    /// An empty accumulator over `vars`.
    pub fn new(vars: Vec<Var>) -> Self {
        let n = vars.len();
        GradAccumulator {
            vars,
            sums: vec![None; n],
            micro_batches: 0,
        }
    }

    /// Adds the gradients of one micro-batch loss (`loss.backward()`).
    pub fn add(&mut self, grads: &GradStore) -> Result<()> {
        for (v, s) in self.vars.iter().zip(self.sums.iter_mut()) {
            if let Some(g) = grads.get(v.as_tensor()) {
                let g = g.detach();
                *s = Some(match s.take() {
                    Some(acc) => (acc + g)?,
                    None => g,
                });
            }
        }
        self.micro_batches += 1;
        Ok(())
    }

    /// Backward of `loss` and [`add`](Self::add).
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.add(&grads)
    }

    /// Micro-batches added since the last [`take`](Self::take).
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// The summed gradients (as a `GradStore` for [`AdamW::step`]), resetting the sums.
    pub fn take(&mut self) -> Result<GradStore> {
        if self.micro_batches == 0 {
            return Err(TrainError::Empty(
                "no micro-batch gradients accumulated".into(),
            ));
        }
        let mut store = GradStore::default();
        for (v, s) in self.vars.iter().zip(self.sums.iter_mut()) {
            if let Some(g) = s.take() {
                store.insert(v.as_tensor(), g);
            }
        }
        self.micro_batches = 0;
        Ok(store)
    }

    /// The accumulated gradient of `var`, if any.
    pub fn grad(&self, var: &Var) -> Option<&Tensor> {
        self.vars
            .iter()
            .position(|v| v.id() == var.id())
            .and_then(|i| self.sums[i].as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(v: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap()
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1().unwrap()
    }

    /// Gradients `g` of `w` (as from `loss = Σ g·w`).
    fn grads_of(w: &Var, g: &[f32]) -> GradStore {
        let loss = (w.as_tensor() * Tensor::new(g, &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        loss.backward().unwrap()
    }

    #[test]
    fn try_step_skips_a_non_finite_gradient_and_counts_it() {
        let w = var(&[1.0, -2.0, 3.0]);
        let cfg = OptimConfig {
            lr: 0.1,
            ..OptimConfig::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], cfg).unwrap();
        let r = opt.try_step(grads_of(&w, &[0.5, 0.5, 0.5])).unwrap();
        assert!(r.applied && r.grad_norm.is_finite(), "{r:?}");
        assert_eq!((opt.steps(), opt.skipped_steps()), (1, 0));
        let after_one = values(&w);
        let moments = opt.state().moments;
        for bad in [f32::NAN, f32::INFINITY] {
            let r = opt.try_step(grads_of(&w, &[0.5, bad, 0.5])).unwrap();
            assert!(!r.applied && !r.grad_norm.is_finite(), "{r:?}");
            assert_eq!(values(&w), after_one, "no update on {bad}");
        }
        assert_eq!((opt.steps(), opt.skipped_steps()), (1, 2));
        let st = opt.state();
        assert_eq!(st.skipped, 2);
        for ((m0, v0), (m1, v1)) in moments.iter().zip(&st.moments) {
            assert_eq!(m0.to_vec1::<f32>().unwrap(), m1.to_vec1::<f32>().unwrap());
            assert_eq!(v0.to_vec1::<f32>().unwrap(), v1.to_vec1::<f32>().unwrap());
        }
        // The plain step refuses instead, also without clipping, and changes nothing.
        let mut plain = AdamW::new(
            vec![w.clone()],
            OptimConfig {
                grad_clip: None,
                ..cfg
            },
        )
        .unwrap();
        assert!(plain.step(grads_of(&w, &[f32::NAN, 0.0, 0.0])).is_err());
        assert_eq!(values(&w), after_one);
        assert_eq!((plain.steps(), plain.skipped_steps()), (0, 0));
    }

    #[test]
    fn try_step_clips_like_step() {
        let cfg = OptimConfig {
            lr: 0.1,
            grad_clip: Some(0.5),
            ..OptimConfig::default()
        };
        let (a, b) = (var(&[1.0, 2.0]), var(&[1.0, 2.0]));
        let mut oa = AdamW::new(vec![a.clone()], cfg).unwrap();
        let mut ob = AdamW::new(vec![b.clone()], cfg).unwrap();
        for g in [[3.0, 4.0], [0.1, -0.2], [10.0, 0.0]] {
            let r = oa.try_step(grads_of(&a, &g)).unwrap();
            let n = ob.step(grads_of(&b, &g)).unwrap();
            assert!(r.applied);
            assert_eq!(r.grad_norm, n);
            assert_eq!(values(&a), values(&b));
        }
    }

    #[test]
    fn the_state_file_round_trips() {
        let tmp = std::env::temp_dir().join(format!("rlvr-adamw-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let path = tmp.join("optimizer.safetensors");
        let cfg = OptimConfig {
            lr: 0.05,
            ..OptimConfig::default()
        };
        let (w, u) = (var(&[1.0, 2.0, 3.0]), var(&[-1.0]));
        let names = vec!["w".to_string(), "u".to_string()];
        let mut opt = AdamW::new(vec![w.clone(), u.clone()], cfg).unwrap();
        let grads = |gw: &[f32], gu: &[f32]| {
            let loss = ((w.as_tensor() * Tensor::new(gw, &Device::Cpu).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                + (u.as_tensor() * Tensor::new(gu, &Device::Cpu).unwrap())
                    .unwrap()
                    .sum_all()
                    .unwrap())
            .unwrap();
            loss.backward().unwrap()
        };
        opt.try_step(grads(&[0.1, 0.2, 0.3], &[1.0])).unwrap();
        opt.try_step(grads(&[f32::NAN, 0.2, 0.3], &[1.0])).unwrap();
        opt.try_step(grads(&[-0.3, 0.2, 0.0], &[0.5])).unwrap();
        opt.save_state(&path, &names).unwrap();
        // No temporary file is left behind, and the bytes are deterministic.
        let files: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert_eq!(files.len(), 1);
        let bytes = std::fs::read(&path).unwrap();
        for _ in 0..4 {
            opt.save_state(&path, &names).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }

        let (w2, u2) = (var(&values(&w)), var(&values(&u)));
        let mut back = AdamW::new(vec![w2.clone(), u2.clone()], cfg).unwrap();
        back.load_state(&path, &names).unwrap();
        assert_eq!((back.steps(), back.skipped_steps()), (2, 1));
        for ((m0, v0), (m1, v1)) in opt.state().moments.iter().zip(&back.state().moments) {
            assert_eq!(m0.to_vec1::<f32>().unwrap(), m1.to_vec1::<f32>().unwrap());
            assert_eq!(v0.to_vec1::<f32>().unwrap(), v1.to_vec1::<f32>().unwrap());
        }
        // The next step is the same from the original and the restored optimiser.
        opt.try_step(grads(&[0.2, 0.2, 0.2], &[0.1])).unwrap();
        let g2 = {
            let loss = ((w2.as_tensor() * Tensor::new(&[0.2f32, 0.2, 0.2], &Device::Cpu).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                + (u2.as_tensor() * Tensor::new(&[0.1f32], &Device::Cpu).unwrap())
                    .unwrap()
                    .sum_all()
                    .unwrap())
            .unwrap();
            loss.backward().unwrap()
        };
        back.try_step(g2).unwrap();
        assert_eq!(values(&w), values(&w2));
        assert_eq!(values(&u), values(&u2));

        // Wrong names or shapes are errors naming the file.
        let e = back
            .load_state(&path, &["w".to_string(), "x".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("optimizer.safetensors") && e.contains("x.exp_avg"),
            "{e}"
        );
        let mut other = AdamW::new(vec![var(&[0.0; 3]), var(&[0.0; 2])], cfg).unwrap();
        let e = other.load_state(&path, &names).unwrap_err().to_string();
        assert!(e.contains("optimizer.safetensors"), "{e}");
        // A file of the earlier layout (rlvr-loop's checkpoints: `optimizer_steps` only).
        let old = tmp.join("old.safetensors");
        let st = back.state();
        let tensors: Vec<(String, Tensor)> = names
            .iter()
            .zip(&st.moments)
            .flat_map(|(n, (m, v))| {
                [
                    (format!("{n}.exp_avg"), m.clone()),
                    (format!("{n}.exp_avg_sq"), v.clone()),
                ]
            })
            .collect();
        let meta: HashMap<String, String> = [("optimizer_steps".into(), "5".into())].into();
        safetensors::serialize_to_file(
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            Some(meta),
            &old,
        )
        .unwrap();
        let read = AdamW::read_state(&old, &names).unwrap();
        assert_eq!((read.steps, read.skipped), (5, 0));
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
