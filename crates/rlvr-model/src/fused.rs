//! Fused CPU kernels with hand-written backward passes for the training path (f32).
//!
//! Composed from basic candle ops, RMSNorm, RoPE, softmax and SwiGLU cost 5–10 autograd nodes
//! each, and candle's backward allocates, zero-fills and adds a gradient buffer per node; on
//! small models that overhead dominates a training step. Each op here is one node with one
//! forward and one backward pass over its data. They are used for contiguous f32 tensors on the
//! CPU; other devices and dtypes take the composed path (`transformer.rs`, `rope.rs`). The
//! conformance tests (train step against PyTorch) run through these kernels; the unit tests
//! below compare each with its composed form, values and gradients.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

use crate::error::Result;

/// The elements of a contiguous CPU tensor of dtype `T` (custom-op inputs).
pub(crate) fn contiguous_slice<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    contiguous_slice::<f32>(s, l, what)
}

thread_local! {
    static COMPOSED_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the fused CPU kernels (these and the fused log-probs) switched off on this
/// thread, so the CPU computes with the composed ops every other device runs: what
/// `rlvr selftest device --device cpu` compares with the fused path.
pub fn with_composed_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPOSED_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COMPOSED_ONLY.with(|c| c.replace(true)));
    f()
}

/// Whether the fused kernels may run on this thread (see [`with_composed_ops`]).
pub fn fused_enabled() -> bool {
    !COMPOSED_ONLY.with(|c| c.get())
}

/// Whether a tensor can take the fused path.
pub fn eligible(x: &Tensor) -> bool {
    fused_enabled() && x.device().is_cpu() && x.dtype() == DType::F32
}

fn split2(t: Tensor, first: &Shape, second: &Shape) -> candle_core::Result<(Tensor, Tensor)> {
    let n1 = first.elem_count();
    let a = t.narrow(0, 0, n1)?.reshape(first)?;
    let b = t.narrow(0, n1, second.elem_count())?.reshape(second)?;
    Ok((a, b))
}

// ---------------------------------------------------------------- RMSNorm

/// `x · rsqrt(mean(x²) + eps) · w` over the last dimension.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })?)
}

struct RmsNorm {
    eps: f32,
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ss: f32 = row.iter().map(|v| v * v).sum();
    1.0 / (ss / row.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rlvr-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rms_norm x")?;
        let w = slice(s2, l2, "rms_norm weight")?;
        let h = w.len();
        if l1.shape().dims().last() != Some(&h) {
            candle_core::bail!("rms_norm: weight of {h} for input {:?}", l1.shape());
        }
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
            let r = inv_rms(row, self.eps);
            for ((d, &v), &wv) in dst.iter_mut().zip(row).zip(w) {
                *d = v * r * wv;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &RmsNormGrad { eps: self.eps })?;
        let (dx, dw) = split2(packed, x.shape(), w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `[dx (flattened), dw]` of RMSNorm: with `r = rsqrt(mean(x²) + eps)` and `u = g · w`,
/// `dx = r·u − x·r³·mean(u·x)`, `dw = Σ_rows g·x·r`.
struct RmsNormGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rlvr-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rms_norm x")?;
        let w = slice(s2, l2, "rms_norm weight")?;
        let g = slice(s3, l3, "rms_norm grad")?;
        let h = w.len();
        let mut out = vec![0f32; x.len() + h];
        let (dx, dw) = out.split_at_mut(x.len());
        for ((row, grow), drow) in x
            .chunks_exact(h)
            .zip(g.chunks_exact(h))
            .zip(dx.chunks_exact_mut(h))
        {
            let r = inv_rms(row, self.eps);
            let mut dot = 0f32;
            for i in 0..h {
                dot += grow[i] * w[i] * row[i];
            }
            let c = r * r * r * dot / h as f32;
            for i in 0..h {
                drow[i] = r * grow[i] * w[i] - row[i] * c;
                dw[i] += grow[i] * row[i] * r;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + h)))
    }
}

// ---------------------------------------------------------------- softmax

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Softmax)?)
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "rlvr-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax input")?;
        let d = *l.shape().dims().last().unwrap_or(&1);
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (o, &v) in dst.iter_mut().zip(row) {
                *o = (v - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            dst.iter_mut().for_each(|o| *o *= inv);
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// `dx = y · (g − Σ g·y)` per row.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "rlvr-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "softmax output")?;
        let g = slice(s2, l2, "softmax grad")?;
        let d = *l1.shape().dims().last().unwrap_or(&1);
        let mut out = vec![0f32; y.len()];
        for ((yr, gr), dst) in y
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(out.chunks_exact_mut(d))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, &yv), &gv) in dst.iter_mut().zip(yr).zip(gr) {
                *o = yv * (gv - dot);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------- RoPE

/// Rotate-half RoPE: `x (B, H, T, D)`, `cos`/`sin (B, T, D/2)`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope { sign: 1.0 })?)
}

/// `sign = 1`: the rotation; `sign = −1`: its transpose (the backward pass).
struct Rope {
    sign: f32,
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "rlvr-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rope input")?;
        let cos = slice(s2, l2, "rope cos")?;
        let sin = slice(s3, l3, "rope sin")?;
        let (b, h, t, d) = l1.shape().dims4()?;
        let half = d / 2;
        if cos.len() != b * t * half || sin.len() != cos.len() {
            candle_core::bail!(
                "rope: cos/sin of {} values for input {:?}",
                cos.len(),
                l1.shape()
            );
        }
        let mut out = vec![0f32; x.len()];
        for bi in 0..b {
            for hi in 0..h {
                for ti in 0..t {
                    let base = ((bi * h + hi) * t + ti) * d;
                    let cs = (bi * t + ti) * half;
                    for i in 0..half {
                        let (c, s) = (cos[cs + i], self.sign * sin[cs + i]);
                        let (x1, x2) = (x[base + i], x[base + half + i]);
                        out[base + i] = x1 * c - x2 * s;
                        out[base + half + i] = x2 * c + x1 * s;
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = grad
            .contiguous()?
            .apply_op3_no_bwd(cos, sin, &Rope { sign: -self.sign })?;
        Ok((Some(dx), None, None))
    }
}

// ---------------------------------------------------------------- SwiGLU

/// `silu(gate) · up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?)
}

struct SwiGlu;

fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + (-a).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "rlvr-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = slice(s1, l1, "swiglu gate")?;
        let b = slice(s2, l2, "swiglu up")?;
        if a.len() != b.len() {
            candle_core::bail!("swiglu: {:?} vs {:?}", l1.shape(), l2.shape());
        }
        let out = a.iter().zip(b).map(|(&a, &b)| a * sigmoid(a) * b).collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = gate.apply_op3_no_bwd(up, &grad.contiguous()?, &SwiGluGrad)?;
        let (da, db) = split2(packed, gate.shape(), up.shape())?;
        Ok((Some(da), Some(db)))
    }
}

/// `[d gate, d up]`: `σ(a)(1 + a(1 − σ(a))) · b · g` and `a σ(a) · g`.
struct SwiGluGrad;

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "rlvr-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = slice(s1, l1, "swiglu gate")?;
        let b = slice(s2, l2, "swiglu up")?;
        let g = slice(s3, l3, "swiglu grad")?;
        let n = a.len();
        let mut out = vec![0f32; 2 * n];
        let (da, db) = out.split_at_mut(n);
        for i in 0..n {
            let s = sigmoid(a[i]);
            da[i] = g[i] * b[i] * s * (1.0 + a[i] * (1.0 - s));
            db[i] = g[i] * a[i] * s;
        }
        Ok((CpuStorage::F32(out), Shape::from(2 * n)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// Fixed pseudo-random values (mean `mean`, standard deviation `std`, uniform shape) from
    /// `seed`: the same inputs on every run and machine, unlike `Tensor::randn`.
    pub(crate) fn noise(mean: f32, std: f32, shape: impl Into<Shape>, seed: u64) -> Tensor {
        let shape = shape.into();
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| {
                // xorshift64*
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let u =
                    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
                mean + std * 3f32.sqrt() * (2.0 * u - 1.0)
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Value and gradients (w.r.t. every input) of `fused` and `composed` under a random
    /// linear functional agree.
    fn check(
        inputs: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Tensor,
        composed: impl Fn(&[Tensor]) -> Tensor,
    ) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let (yf, yc) = (fused(&ts), composed(&ts));
        assert!(
            max_diff(&yf, &yc) < 1e-5,
            "values differ by {}",
            max_diff(&yf, &yc)
        );
        let probe = noise(0f32, 1.0, yf.dims().to_vec(), 1);
        let gf = (yf * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gc = (yc * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, v) in vars.iter().enumerate() {
            let (a, b) = (
                gf.get(v.as_tensor()).unwrap(),
                gc.get(v.as_tensor()).unwrap(),
            );
            let scale = b
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1.0);
            assert!(
                max_diff(a, b) / scale < 1e-5,
                "input {i}: gradients differ by {}",
                max_diff(a, b)
            );
        }
    }

    #[test]
    fn rms_norm_matches_composed() {
        let x = noise(0f32, 2.0, (2, 3, 16), 2);
        let w = noise(1f32, 0.3, 16, 3);
        check(
            &[x, w],
            |t| rms_norm(&t[0], &t[1], 1e-6).unwrap(),
            |t| {
                let var = t[0].sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
                t[0].broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
                    .unwrap()
                    .broadcast_mul(&t[1])
                    .unwrap()
            },
        );
    }

    #[test]
    fn softmax_matches_composed() {
        let x = noise(0f32, 3.0, (2, 4, 7), 4);
        check(
            &[x],
            |t| softmax_last_dim(&t[0]).unwrap(),
            |t| candle_nn::ops::softmax(&t[0], D::Minus1).unwrap(),
        );
    }

    #[test]
    fn rope_matches_composed() {
        let dev = Device::Cpu;
        let x = noise(0f32, 1.0, (2, 3, 5, 8), 5);
        let freqs = crate::rope::frequencies(&crate::RopeScaling::Default, 10000.0, 8, 512, 0);
        let pos: Vec<u32> = vec![0, 1, 2, 3, 4, 2, 3, 4, 5, 6];
        let (c, s) = crate::rope::cos_sin_half(&freqs, &pos, 2, 5, &dev).unwrap();
        check(
            &[x],
            |t| rope(&t[0], &c, &s).unwrap(),
            |t| crate::rope::apply_composed(&t[0], &c, &s).unwrap(),
        );
    }

    #[test]
    fn swiglu_matches_composed() {
        let a = noise(0f32, 2.0, (3, 10), 6);
        let b = noise(0f32, 1.0, (3, 10), 7);
        check(
            &[a, b],
            |t| swiglu(&t[0], &t[1]).unwrap(),
            |t| (t[0].silu().unwrap() * &t[1]).unwrap(),
        );
    }
}
