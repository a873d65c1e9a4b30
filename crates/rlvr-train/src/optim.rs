//! Optimiser pieces candle-nn lacks: AdamW (Loshchilov & Hutter 2019) with gradient clipping
//! by global norm (Pascanu et al. 2013), learning-rate schedules, gradient accumulation.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
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
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), g.affine(coef, 0.0)?);
            }
        }
    }
    Ok(norm)
}

/// AdamW with global-norm gradient clipping and an LR schedule. The update is candle-nn's
/// (and PyTorch's) to the operation: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)`; the moments are exposed ([`AdamW::state`],
/// [`AdamW::load_state`]) so a checkpoint can resume the optimiser exactly.
pub struct AdamW {
    vars: Vec<Var>,
    moments: Vec<(Tensor, Tensor)>,
    cfg: OptimConfig,
    step: usize,
}

/// The optimiser's state: steps taken and the first/second moments of each variable, in the
/// order of the variables given to [`AdamW::new`].
#[derive(Clone, Debug)]
pub struct AdamWState {
    /// Optimiser steps taken.
    pub steps: usize,
    /// `(m, v)` per variable.
    pub moments: Vec<(Tensor, Tensor)>,
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
        })
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.step
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
            moments: self.moments.clone(),
        }
    }

    /// Restores a state saved by [`state`](Self::state); shapes must match the variables.
    pub fn load_state(&mut self, state: AdamWState) -> Result<()> {
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
        Ok(())
    }

    /// Clips `grads` (if configured), applies one AdamW update at the scheduled LR, and
    /// returns the gradient norm before clipping.
    pub fn step(&mut self, mut grads: GradStore) -> Result<f64> {
        let norm = match self.cfg.grad_clip {
            Some(max) => clip_grad_norm(&self.vars, &mut grads, max)?,
            None => global_grad_norm(&self.vars, &grads)?,
        };
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
        Ok(norm)
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
