//! `rlvr selftest device`: the model core on a device, checked against the CPU and against
//! PyTorch on the fixtures (`reference.json` of `../shared/fixtures/tiny-*`).
//!
//! The *candidate* is the device under test; the *reference* is the CPU with rlvr's fused
//! kernels (the path the conformance tests pin to PyTorch). On a CPU the candidate is the CPU
//! again with the fused kernels switched off ([`rlvr_model::fused::with_composed_ops`]): the
//! composed ops that CUDA runs, so a comparison never checks a computation against itself.
//!
//! Per fixture:
//! - token log-probs (inference and training forward) and logits against the CPU and PyTorch,
//!   f32 within 1e-4;
//! - bf16 log-probs within 1e-2 of the largest |log-prob|: against the CPU in bf16 on a GPU,
//!   against f32 arithmetic on the same bf16-rounded weights on a CPU;
//! - the gradients of a GRPO loss (ratio 1) and a PPO loss (clipping active) against the CPU,
//!   and every parameter's gradient non-zero;
//! - PyTorch's policy-gradient step (gradients, then one AdamW step) against its parameters;
//!   on a GPU also one AdamW step from the same gradients against the CPU's;
//! - greedy tokens against PyTorch's.
//!
//! Then one op of every candle kernel module ([`rlvr_model::device::touch_kernels`]; on a CPU
//! this only shows that each runs).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rlvr_model::{Batch, DeviceSpec, Mode, ModelDir};
use rlvr_train::agg::{LossAggMode, Normaliser};
use rlvr_train::optim::{AdamW, LrSchedule, OptimConfig};
use rlvr_train::policy::{ppo_clip_loss, ClipConfig};
use serde::Serialize;
use serde_json::Value;

use crate::error::{LoopError, Result};

/// Tolerance of f32 log-probs and logits (the and the conformance tests').
pub const TOL_F32: f64 = 1e-4;
/// Tolerance of bf16 log-probs, relative to the largest |log-prob| of the batch.
pub const TOL_BF16: f64 = 1e-2;
/// Tolerance of a parameter's gradient, relative to its L2 norm.
pub const TOL_GRAD: f64 = 1e-3;
/// Tolerance of parameters after one AdamW step (absolute, as the conformance tests).
pub const TOL_PARAM: f64 = 1e-5;

/// What to check.
#[derive(Clone, Debug)]
pub struct DeviceCheck {
    /// The device under test.
    pub device: DeviceSpec,
    /// Fixture directories (each with `reference.json`).
    pub fixtures: Vec<PathBuf>,
    /// Scale one weight matrix of the candidate by `1 + perturb` (0: off). Shows that the
    /// checks fail when the candidate computes something else.
    pub perturb: f64,
}

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct CheckRow {
    /// Fixture name (`kernels` for the kernel modules).
    pub fixture: String,
    /// What was compared.
    pub check: String,
    /// The worst error (its unit is the check's).
    pub error: f64,
    /// The bound.
    pub tolerance: f64,
    /// `error ≤ tolerance` (NaN fails).
    pub ok: bool,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceReport {
    /// The device under test.
    pub device: String,
    /// What ran as the candidate.
    pub candidate: String,
    /// What it was compared with.
    pub reference: String,
    /// Every check.
    pub rows: Vec<CheckRow>,
}

impl DeviceReport {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.ok)
    }

    fn push(&mut self, fixture: &str, check: &str, error: f64, tolerance: f64) {
        self.rows.push(CheckRow {
            fixture: fixture.into(),
            check: check.into(),
            error,
            tolerance,
            ok: error <= tolerance,
        });
    }
}

/// Runs every check; a fixture that cannot be read is an error, a failed comparison a row.
pub fn run_device_check(c: &DeviceCheck) -> Result<DeviceReport> {
    let device = c.device.open()?;
    let composed = device.is_cpu();
    let mut rep = DeviceReport {
        device: c.device.to_string(),
        candidate: if composed {
            "cpu, composed ops (the path CUDA runs)".into()
        } else {
            format!("{}, f32 and bf16", c.device)
        },
        reference: "cpu with rlvr's fused kernels, and PyTorch (reference.json)".into(),
        rows: Vec::new(),
    };
    if c.fixtures.is_empty() {
        return Err(LoopError::Other(
            "selftest device: no fixtures given".into(),
        ));
    }
    for dir in &c.fixtures {
        let fx = Fixture::load(dir, &device, c.perturb)?;
        let on: &On = &|f| {
            if composed {
                rlvr_model::fused::with_composed_ops(f)
            } else {
                f()
            }
        };
        fx.check_forward(&mut rep, on)?;
        fx.check_bf16(&mut rep, &device, on)?;
        fx.check_gradients(&mut rep, on)?;
        fx.check_greedy(&mut rep, on)?;
        fx.check_train_step(&mut rep, on)?;
    }
    for k in rlvr_model::device::touch_kernels(&device) {
        let err = if k.error.is_some() {
            f64::NAN
        } else {
            k.max_abs_diff
        };
        rep.push("kernels", k.module, err, 1e-3);
    }
    Ok(rep)
}

type On<'a> = dyn Fn(&mut dyn FnMut() -> Result<()>) -> Result<()> + 'a;

/// A fixture loaded twice: on the CPU (reference) and on the device (candidate).
struct Fixture {
    name: String,
    dir: PathBuf,
    json: Value,
    cpu: ModelDir,
    cand: ModelDir,
    ids: Vec<Vec<u32>>,
    mask: Vec<Vec<u32>>,
    perturb: f64,
}

impl Fixture {
    fn load(dir: &Path, device: &Device, perturb: f64) -> Result<Self> {
        let path = dir.join("reference.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LoopError::Other(format!("{}: {e}", path.display())))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| LoopError::Other(format!("{}: {e}", path.display())))?;
        let cand = load_perturbed(dir, device, DType::F32, perturb)?;
        let fx = Fixture {
            name: dir
                .file_name()
                .map_or("?".into(), |n| n.to_string_lossy().into_owned()),
            dir: dir.to_path_buf(),
            ids: u32_rows(&json["batch"]["input_ids"], &path)?,
            mask: u32_rows(&json["batch"]["attention_mask"], &path)?,
            json,
            cpu: ModelDir::load(dir, &Device::Cpu, Some(DType::F32))?,
            cand,
            perturb,
        };
        Ok(fx)
    }

    fn batch(&self, device: &Device) -> Result<Batch> {
        Ok(Batch::from_padded(&self.ids, &self.mask, device)?)
    }

    /// `(B, T−1)` target mask (1 where the target is a real token).
    fn target_mask(&self, device: &Device) -> Result<Tensor> {
        let rows: Vec<f32> = self
            .mask
            .iter()
            .flat_map(|r| r[1..].iter().map(|&x| x as f32))
            .collect();
        let (b, t) = (self.ids.len(), self.ids[0].len());
        Ok(Tensor::from_vec(rows, (b, t - 1), device)?)
    }

    /// Token log-probs and sequence-0 logits against the CPU and PyTorch.
    fn check_forward(&self, rep: &mut DeviceReport, on: &On) -> Result<()> {
        let cpu_lp = host2(
            &self
                .cpu
                .model
                .token_logprobs(&self.batch(&Device::Cpu)?, Mode::Train)?,
        )?;
        let torch_lp = f64_rows(&self.json["batch"]["next_token_logprobs"])?;
        for (mode, label) in [(Mode::Infer, "infer"), (Mode::Train, "train")] {
            let mut lp = Vec::new();
            on(&mut || {
                let b = self.batch(self.cand.model.device())?;
                lp = host2(&self.cand.model.token_logprobs(&b, mode)?)?;
                Ok(())
            })?;
            let (vs_cpu, vs_torch) = (
                self.masked_diff(&lp, &cpu_lp),
                self.masked_diff(&lp, &torch_lp),
            );
            rep.push(
                &self.name,
                &format!("logprobs_{label}_vs_cpu"),
                vs_cpu,
                TOL_F32,
            );
            rep.push(
                &self.name,
                &format!("logprobs_{label}_vs_pytorch"),
                vs_torch,
                TOL_F32,
            );
        }
        if self.json["batch"].get("logits_seq0").is_none() {
            return Ok(());
        }
        let mut logits = Vec::new();
        on(&mut || {
            let b = self.batch(self.cand.model.device())?;
            logits = host2(&self.cand.model.forward(&b, None, Mode::Infer)?.get(0)?)?;
            Ok(())
        })?;
        let torch = f64_rows(&self.json["batch"]["logits_seq0"])?;
        rep.push(
            &self.name,
            "logits_vs_pytorch",
            max_diff(&logits, &torch),
            TOL_F32,
        );
        Ok(())
    }

    /// Largest |a − b| over the positions whose target is a real token; the reference rows
    /// may be ragged (PyTorch's hold only those positions).
    fn masked_diff(&self, a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        let mut worst = 0f64;
        for (i, m) in self.mask.iter().enumerate() {
            let n = m.iter().filter(|&&x| x == 1).count().saturating_sub(1);
            for j in 0..n {
                let (x, y) = (a[i].get(j), b.get(i).and_then(|r| r.get(j)));
                worst = match (x, y) {
                    (Some(x), Some(y)) => worst.max((x - y).abs()),
                    _ => f64::NAN,
                };
            }
        }
        worst
    }

    /// [`Self::masked_diff`] relative to the largest |reference| value (bf16 keeps 8
    /// significant bits: its error scales with the log-probs, ~5–10 on the fixtures).
    fn relative(&self, a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        let scale = self.masked_diff(b, &vec![vec![0.0; b[0].len()]; b.len()]);
        self.masked_diff(a, b) / scale.max(1e-12)
    }

    /// bf16 log-probs (error relative to the largest |log-prob|): against the CPU in bf16 on a GPU; on a CPU (where bf16 is always
    /// composed) against f32 arithmetic on the same bf16-rounded weights.
    fn check_bf16(&self, rep: &mut DeviceReport, device: &Device, on: &On) -> Result<()> {
        let cand = load_perturbed(&self.dir, device, DType::BF16, self.perturb)?;
        let mut lp = Vec::new();
        on(&mut || {
            let b = self.batch(device)?;
            lp = host2(&cand.model.token_logprobs(&b, Mode::Infer)?)?;
            Ok(())
        })?;
        if device.is_cpu() {
            // f32 arithmetic on the same (bf16-rounded) weights: what bf16 compute costs
            let f32m = ModelDir::load(&self.dir, &Device::Cpu, Some(DType::F32))?;
            for (_, v) in f32m.model.named_vars() {
                v.set(&v.as_tensor().to_dtype(DType::BF16)?.to_dtype(DType::F32)?)?;
            }
            let b = self.batch(&Device::Cpu)?;
            let r = host2(&f32m.model.token_logprobs(&b, Mode::Infer)?)?;
            let check = "logprobs_bf16_vs_f32_same_weights";
            rep.push(&self.name, check, self.relative(&lp, &r), TOL_BF16);
        } else {
            let cpu = ModelDir::load(&self.dir, &Device::Cpu, Some(DType::BF16))?;
            let r = host2(
                &cpu.model
                    .token_logprobs(&self.batch(&Device::Cpu)?, Mode::Infer)?,
            )?;
            let check = "logprobs_bf16_vs_cpu_bf16";
            rep.push(&self.name, check, self.relative(&lp, &r), TOL_BF16);
        }
        Ok(())
    }

    /// GRPO (ratio 1, seq-mean-token-mean) and PPO (old log-probs shifted so that both clip
    /// sides bind, token-mean) losses: per-parameter gradients against the CPU's, and every
    /// parameter's gradient non-zero on the candidate.
    fn check_gradients(&self, rep: &mut DeviceReport, on: &On) -> Result<()> {
        for (label, shift) in [("grpo", 0.0), ("ppo", 0.3)] {
            let r = self.policy_grads(&self.cpu, shift)?;
            let mut c = Vec::new();
            on(&mut || {
                c = self.policy_grads(&self.cand, shift)?;
                Ok(())
            })?;
            let mut worst = 0f64;
            let mut zero = 0usize;
            for ((gc, gr), _) in c.iter().zip(&r).zip(self.cand.model.named_vars()) {
                let (nc, nr) = (l2(gc), l2(gr));
                let diff: Vec<f64> = gc.iter().zip(gr).map(|(a, b)| a - b).collect();
                worst = worst.max(l2(&diff) / nr.max(1e-30));
                if nc == 0.0 || !nc.is_finite() {
                    zero += 1;
                }
            }
            rep.push(&self.name, &format!("grad_{label}_vs_cpu"), worst, TOL_GRAD);
            rep.push(
                &self.name,
                &format!("grad_{label}_zero_params"),
                zero as f64,
                0.0,
            );
        }
        Ok(())
    }

    /// Flattened gradients of every parameter (in `named_vars` order) of a clipped policy
    /// loss with the fixture's weights as advantages.
    fn policy_grads(&self, m: &ModelDir, shift: f64) -> Result<Vec<Vec<f64>>> {
        let dev = m.model.device();
        let b = self.batch(dev)?;
        let lp = m.model.token_logprobs(&b, Mode::Train)?;
        let (rows, cols) = lp.dims2()?;
        let adv = self.advantages(dev)?;
        let pattern: Vec<f32> = (0..rows * cols)
            .map(|k| [shift, -shift, 0.0][k % 3] as f32)
            .collect();
        let old = (lp.detach() + Tensor::from_vec(pattern, (rows, cols), dev)?)?;
        let mask = self.target_mask(dev)?;
        let count = mask.sum_all()?.to_scalar::<f32>()? as f64;
        let norm = if shift == 0.0 {
            Normaliser {
                mode: LossAggMode::SeqMeanTokenMean,
                denom: rows as f64,
            }
        } else {
            Normaliser {
                mode: LossAggMode::TokenMean,
                denom: count,
            }
        };
        let loss = ppo_clip_loss(&lp, &old, &adv, &mask, &ClipConfig::default(), &norm)
            .map_err(|e| LoopError::Other(e.to_string()))?;
        let grads = loss.loss.backward()?;
        m.model
            .named_vars()
            .iter()
            .map(|(_, v)| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?),
                None => Ok(vec![0.0; v.as_tensor().elem_count()]),
            })
            .collect()
    }

    /// The fixture's per-token weights `(B, T−1)` (PyTorch's policy-gradient step) as f32;
    /// a fixed pattern in [−1, 1] for a fixture without a train step.
    fn advantages(&self, dev: &Device) -> Result<Tensor> {
        let (b, t) = (self.ids.len(), self.ids[0].len() - 1);
        let flat: Vec<f32> = match self.json["train_step"].get("weights") {
            Some(w) => f64_rows(w)?.iter().flatten().map(|&x| x as f32).collect(),
            None => (0..b * t)
                .map(|k| ((k * 7) % 11) as f32 / 5.0 - 1.0)
                .collect(),
        };
        Ok(Tensor::from_vec(flat, (b, t), dev)?)
    }

    /// Greedy continuations of the fixture's prompts, one at a time: tokens that differ from
    /// PyTorch's.
    fn check_greedy(&self, rep: &mut DeviceReport, on: &On) -> Result<()> {
        let cases = self.json["greedy"].as_array().cloned().unwrap_or_default();
        if cases.is_empty() {
            return Ok(());
        }
        let mut wrong = 0usize;
        on(&mut || {
            for case in &cases {
                let prompt = u32s(&case["prompt_ids"])?;
                let want = u32s(&case["new_ids"])?;
                let got = self.cand.model.greedy(&[prompt], want.len(), &[])?;
                wrong += want.iter().zip(&got[0]).filter(|(a, b)| a != b).count();
                wrong += want.len().abs_diff(got[0].len());
            }
            Ok(())
        })?;
        rep.push(&self.name, "greedy_tokens_differing", wrong as f64, 0.0);
        Ok(())
    }

    /// PyTorch's policy-gradient step on the candidate: −mean(w·logπ) in f64, backward, one
    /// AdamW step with the reference's settings, parameters against PyTorch's
    /// (`params_after_head`). Then the optimiser alone: the CPU gets the candidate's weights
    /// and its gradients there, the candidate the same gradients, and one fresh AdamW step on
    /// each side must agree. (Two first steps from each side's own gradients would measure
    /// Adam's `g/(|g|+ε)` turning rounding noise in near-zero gradients into updates of size
    /// lr.) Mutates both models.
    fn check_train_step(&self, rep: &mut DeviceReport, on: &On) -> Result<()> {
        on(&mut || {
            let grads = self.reference_grads(&self.cand)?;
            self.step(&self.cand, grads)
        })?;
        if let Some(heads) = self.json["train_step"]["params_after_head"].as_object() {
            let mut vs_torch = 0f64;
            for (name, v) in self.cand.model.named_vars() {
                let c = host1(v.as_tensor())?;
                let head = heads.get(name).map(f64s).transpose()?.unwrap_or_default();
                let n = head.len().min(c.len());
                vs_torch = vs_torch.max(max_diff(&[c[..n].to_vec()], &[head[..n].to_vec()]));
            }
            rep.push(&self.name, "adamw_step_vs_pytorch", vs_torch, TOL_PARAM);
        }
        if self.cand.model.device().is_cpu() {
            // both sides would run the same AdamW arithmetic: nothing to compare
            return Ok(());
        }
        let pairs = || {
            self.cand
                .model
                .named_vars()
                .iter()
                .zip(self.cpu.model.named_vars())
        };
        for ((_, vc), (_, vr)) in pairs() {
            vr.set(&vc.as_tensor().to_device(&Device::Cpu)?)?;
        }
        let grads = self.reference_grads(&self.cpu)?;
        let mut moved = candle_core::backprop::GradStore::default();
        for ((_, vc), (_, vr)) in pairs() {
            if let Some(g) = grads.get(vr.as_tensor()) {
                moved.insert(vc.as_tensor(), g.to_device(self.cand.model.device())?);
            }
        }
        self.step(&self.cpu, grads)?;
        on(&mut || self.step(&self.cand, std::mem::take(&mut moved)))?;
        let mut vs_cpu = 0f64;
        for ((_, vc), (_, vr)) in pairs() {
            vs_cpu = vs_cpu.max(max_diff(
                &[host1(vc.as_tensor())?],
                &[host1(vr.as_tensor())?],
            ));
        }
        rep.push(&self.name, "adamw_step_vs_cpu", vs_cpu, TOL_PARAM);
        Ok(())
    }

    /// Gradients of PyTorch's reference loss `−Σ w·logπ·m / Σ m` (in f64) on `m`.
    fn reference_grads(&self, m: &ModelDir) -> Result<candle_core::backprop::GradStore> {
        let dev = m.model.device();
        let lp = m
            .model
            .token_logprobs(&self.batch(dev)?, Mode::Train)?
            .to_dtype(DType::F64)?;
        let w = self.advantages(dev)?.to_dtype(DType::F64)?;
        let mask = self.target_mask(dev)?.to_dtype(DType::F64)?;
        let count = mask.sum_all()?.to_scalar::<f64>()?;
        let loss = ((((lp * w)? * mask)?.sum_all()?.neg()?) / count)?;
        Ok(loss.backward()?)
    }

    /// One step of a fresh AdamW with PyTorch's settings (lr 1e-3 for a fixture without them).
    fn step(&self, m: &ModelDir, grads: candle_core::backprop::GradStore) -> Result<()> {
        let h = &self.json["train_step"]["adamw"];
        let betas = h.get("betas").map(f64s).transpose()?.unwrap_or_default();
        let num = |k: &str, default: f64| h.get(k).and_then(Value::as_f64).unwrap_or(default);
        let cfg = OptimConfig {
            lr: num("lr", 1e-3),
            beta1: betas.first().copied().unwrap_or(0.9),
            beta2: betas.get(1).copied().unwrap_or(0.999),
            eps: num("eps", 1e-8),
            weight_decay: num("weight_decay", 0.01),
            grad_clip: None,
            schedule: LrSchedule::Constant,
        };
        let mut opt =
            AdamW::new(m.model.vars(), cfg).map_err(|e| LoopError::Other(e.to_string()))?;
        opt.step(grads)
            .map_err(|e| LoopError::Other(e.to_string()))?;
        Ok(())
    }
}

/// The model of `dir` on `device` in `dtype`, one weight matrix scaled by `1 + perturb`.
fn load_perturbed(dir: &Path, device: &Device, dtype: DType, perturb: f64) -> Result<ModelDir> {
    let m = ModelDir::load(dir, device, Some(dtype))?;
    if perturb != 0.0 {
        if let Some((_, v)) = m
            .model
            .named_vars()
            .iter()
            .find(|(n, _)| n.contains("q_proj.weight"))
        {
            v.set(&v.as_tensor().affine(1.0 + perturb, 0.0)?)?;
        }
    }
    Ok(m)
}

fn host1(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?)
}

fn host2(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?)
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        if x.len() != y.len() {
            return f64::NAN;
        }
        for (p, q) in x.iter().zip(y) {
            worst = worst.max((p - q).abs());
        }
    }
    worst
}

fn l2(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn bad(what: &str) -> LoopError {
    LoopError::Other(format!("reference.json: `{what}` is missing or malformed"))
}

fn f64s(v: &Value) -> Result<Vec<f64>> {
    v.as_array()
        .ok_or_else(|| bad("numbers"))?
        .iter()
        .map(|x| x.as_f64().ok_or_else(|| bad("number")))
        .collect()
}

fn f64_rows(v: &Value) -> Result<Vec<Vec<f64>>> {
    v.as_array()
        .ok_or_else(|| bad("rows"))?
        .iter()
        .map(f64s)
        .collect()
}

fn u32s(v: &Value) -> Result<Vec<u32>> {
    v.as_array()
        .ok_or_else(|| bad("ids"))?
        .iter()
        .map(|x| {
            x.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("id"))
        })
        .collect()
}

fn u32_rows(v: &Value, path: &Path) -> Result<Vec<Vec<u32>>> {
    v.as_array()
        .ok_or_else(|| LoopError::Other(format!("{}: batch rows missing", path.display())))?
        .iter()
        .map(u32s)
        .collect()
}
