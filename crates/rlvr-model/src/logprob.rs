//! Log-probabilities of target tokens under logits: the training primitive's last step.
//!
//! `log p(target) = logit[target] − logsumexp(logits)`. Written with candle's basic ops this
//! creates six vocabulary-sized tensors and as many in the backward pass; for a 150k
//! vocabulary that is gigabytes per sequence batch. On the CPU, f32 logits go through a fused
//! op instead: one pass forward (per-row max, sum of exponentials, pick), and a backward that
//! writes `∂/∂logits = g · (onehot(target) − softmax)` in one pass. Other devices and dtypes use
//! the composite form; both are tested against each other.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};

use crate::error::Result;
use crate::fused::contiguous_slice;

/// Log-probabilities of `targets` `(B, T)` (u32) under `logits` `(B, T, V)`, f32, differentiable
/// with respect to the logits.
pub fn logprobs_of(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logits = logits.to_dtype(DType::F32)?;
    if crate::fused::fused_enabled() && logits.device().is_cpu() && targets.dtype() == DType::U32 {
        let flat = logits.reshape((b * t, v))?.contiguous()?;
        let tg = targets.reshape(b * t)?.contiguous()?;
        return Ok(flat.apply_op2(&tg, FusedLogProbs)?.reshape((b, t))?);
    }
    composite(&logits, targets)
}

/// The same computation with basic candle ops (any device, backward by candle).
pub fn composite(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = logits.to_dtype(DType::F32)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(2)?.contiguous()?, 2)?;
    Ok((picked - lse)?.squeeze(2)?)
}

/// logsumexp of one row (max-shifted).
fn row_lse(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    max + sum.ln()
}

/// `(N, V)` f32 logits, `(N,)` u32 targets → `(N,)` log-probabilities.
struct FusedLogProbs;

impl CustomOp2 for FusedLogProbs {
    fn name(&self) -> &'static str {
        "fused-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        let logits = contiguous_slice::<f32>(s1, l1, "logits")?;
        let targets = contiguous_slice::<u32>(s2, l2, "targets")?;
        if targets.len() != n {
            candle_core::bail!("{n} rows of logits but {} targets", targets.len());
        }
        let mut out = Vec::with_capacity(n);
        for (row, &t) in logits.chunks_exact(v).zip(targets) {
            let t = t as usize;
            if t >= v {
                candle_core::bail!("target {t} outside the vocabulary ({v})");
            }
            out.push(row[t] - row_lse(row));
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // Pack (log-prob, incoming gradient) per row: the grad op recovers logsumexp from
        // logit[target] − log-prob, so the row's statistics are not recomputed.
        let packed = Tensor::stack(&[res, grad_res], 1)?.contiguous()?;
        let grad = logits.apply_op3_no_bwd(targets, &packed, &FusedLogProbsGrad)?;
        Ok((Some(grad), None))
    }
}

/// `∂ log p(target) / ∂ logits = g · (onehot(target) − softmax(logits))`.
struct FusedLogProbsGrad;

impl CustomOp3 for FusedLogProbsGrad {
    fn name(&self) -> &'static str {
        "fused-logprobs-grad"
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
        let (n, v) = l1.shape().dims2()?;
        let logits = contiguous_slice::<f32>(s1, l1, "logits")?;
        let targets = contiguous_slice::<u32>(s2, l2, "targets")?;
        let packed = contiguous_slice::<f32>(s3, l3, "log-probs and gradients")?;
        let mut out = vec![0f32; n * v];
        for (i, (row, dst)) in logits
            .chunks_exact(v)
            .zip(out.chunks_exact_mut(v))
            .enumerate()
        {
            let t = targets[i] as usize;
            let (lp, g) = (packed[2 * i], packed[2 * i + 1]);
            if g == 0.0 {
                continue;
            }
            let lse = row[t] - lp;
            for (d, &x) in dst.iter_mut().zip(row) {
                *d = -g * (x - lse).exp();
            }
            dst[t] += g;
        }
        Ok((CpuStorage::F32(out), Shape::from((n, v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_equals_composite_values_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // Fixed inputs (spread like N(0, 3²) logits and N(0, 1) weights): random ones made the
        // f32 comparison below fail now and then in CI.
        let spread = |n: usize, scale: f32, phase: f32| -> Vec<f32> {
            (0..n)
                .map(|i| scale * ((i as f32 * 12.9898 + phase).sin() * 43758.547).fract() * 1.7)
                .collect()
        };
        let logits = Var::from_tensor(&Tensor::from_vec(
            spread(3 * 5 * 41, 3.0, 0.3),
            (3, 5, 41),
            &dev,
        )?)?;
        let targets = Tensor::from_vec(
            (0..15u32).map(|i| (i * 7) % 41).collect::<Vec<_>>(),
            (3, 5),
            &dev,
        )?;
        let weights = Tensor::from_vec(spread(15, 1.0, 7.1), (3, 5), &dev)?;

        let fused = logprobs_of(logits.as_tensor(), &targets)?;
        let reference = composite(logits.as_tensor(), &targets)?;
        let diff: f32 = (&fused - &reference)?.abs()?.max_all()?.to_scalar()?;
        assert!(diff < 1e-5, "values differ by {diff}");

        let g1 = (fused * &weights)?.sum_all()?.backward()?;
        let g2 = (reference * &weights)?.sum_all()?.backward()?;
        let (a, b) = (
            g1.get(logits.as_tensor()).unwrap(),
            g2.get(logits.as_tensor()).unwrap(),
        );
        let diff: f32 = (a - b)?.abs()?.max_all()?.to_scalar()?;
        assert!(diff < 1e-6, "gradients differ by {diff}");
        // Each row's gradient sums to zero (softmax minus a one-hot, scaled).
        let row_sums = a.sum(D::Minus1)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(row_sums < 1e-5);
        Ok(())
    }

    #[test]
    fn out_of_vocabulary_target_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((1, 2, 4), DType::F32, &dev)?;
        let targets = Tensor::from_vec(vec![1u32, 9], (1, 2), &dev)?;
        assert!(logprobs_of(&logits, &targets).is_err());
        Ok(())
    }
}
