//! Micro-batch invariance: with the global normaliser, accumulating the gradients of 1, 2
//! and 4 micro-batches gives the one-batch gradient (≤ 1e-6 relative) in every mode.

use candle_core::{DType, Device, Tensor, Var};
use rlvr_train::agg::{agg_loss, LossAggMode};
use rlvr_train::policy::{ppo_clip_loss, ClipConfig};

/// Deterministic pseudo-random numbers in [-1, 1).
fn lcg(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

struct Batch {
    logp: Var,
    old: Tensor,
    adv: Tensor,
    mask: Tensor,
}

fn batch(dtype: DType) -> Batch {
    let (b, t) = (8, 7);
    let dev = Device::Cpu;
    let lengths = [7, 3, 0, 5, 1, 7, 2, 6]; // row 2 fully masked
    let mut mask = vec![0.0; b * t];
    for (i, &l) in lengths.iter().enumerate() {
        for j in 0..l {
            mask[i * t + j] = 1.0;
        }
    }
    let old: Vec<f64> = lcg(1, b * t).iter().map(|x| -1.5 + x).collect();
    let logp: Vec<f64> = old
        .iter()
        .zip(lcg(2, b * t))
        .map(|(o, n)| o + 0.4 * n)
        .collect();
    let adv = lcg(3, b);
    let adv: Vec<f64> = (0..b * t).map(|k| adv[k / t] * mask[k]).collect();
    let mk = |v: Vec<f64>| {
        Tensor::from_vec(v, (b, t), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    Batch {
        logp: Var::from_tensor(&mk(logp)).unwrap(),
        old: mk(old),
        adv: mk(adv),
        mask: mk(mask),
    }
}

/// Gradient of the summed micro-batch losses w.r.t. the whole log-prob tensor.
fn accumulated_grad(bt: &Batch, mode: LossAggMode, micro: usize, global: bool) -> Vec<f64> {
    let lsf = Some(5.0);
    let norm = mode.normaliser(&bt.mask, lsf).unwrap();
    let (b, _) = bt.mask.dims2().unwrap();
    let size = b / micro;
    let clip = ClipConfig {
        clip_ratio_low: 0.2,
        clip_ratio_high: 0.28,
        clip_ratio_c: 3.0,
    };
    let mut total: Option<Tensor> = None;
    for k in 0..micro {
        let n = |x: &Tensor| x.narrow(0, k * size, size).unwrap();
        let mask = n(&bt.mask);
        let local = mode.normaliser(&mask, lsf).unwrap();
        let out = ppo_clip_loss(
            &n(bt.logp.as_tensor()),
            &n(&bt.old),
            &n(&bt.adv),
            &mask,
            &clip,
            if global { &norm } else { &local },
        )
        .unwrap();
        let loss = if global {
            out.loss
        } else {
            // the common bug: average micro-batch means
            (out.loss / micro as f64).unwrap()
        };
        let grads = loss.backward().unwrap();
        let g = grads.get(bt.logp.as_tensor()).unwrap().clone();
        total = Some(match total {
            Some(t) => (t + g).unwrap(),
            None => g,
        });
    }
    total
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn every_mode_is_micro_batch_invariant() {
    for dtype in [DType::F64, DType::F32] {
        let bt = batch(dtype);
        for (name, mode) in LossAggMode::ALL {
            let one = accumulated_grad(&bt, mode, 1, true);
            assert!(one.iter().any(|g| *g != 0.0), "{name}: zero gradient");
            for micro in [2, 4] {
                let many = accumulated_grad(&bt, mode, micro, true);
                let d = max_rel_diff(&many, &one);
                assert!(
                    d <= 1e-6,
                    "{dtype:?} {name}: {micro} micro-batches differ by {d:.3e}"
                );
            }
        }
    }
}

#[test]
fn micro_batch_normalisers_would_differ() {
    // the test above can fail: per-micro-batch normalisation changes the gradient
    let bt = batch(DType::F64);
    for mode in [
        LossAggMode::TokenMean,
        LossAggMode::SeqMeanTokenSum,
        LossAggMode::SeqMeanTokenMean,
    ] {
        let one = accumulated_grad(&bt, mode, 1, true);
        let wrong = accumulated_grad(&bt, mode, 4, false);
        assert!(max_rel_diff(&wrong, &one) > 1e-3, "{mode}");
    }
}

#[test]
fn aggregation_values_by_hand() {
    let dev = Device::Cpu;
    let loss = Tensor::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &dev).unwrap();
    let mask = Tensor::new(&[[1.0f64, 1.0, 0.0], [1.0, 0.0, 0.0]], &dev).unwrap();
    let v = |mode: LossAggMode, lsf: Option<f64>| {
        let n = mode.normaliser(&mask, lsf).unwrap();
        agg_loss(&loss, &mask, &n)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert!((v(LossAggMode::TokenMean, None) - 7.0 / 3.0).abs() < 1e-12);
    assert!((v(LossAggMode::SeqMeanTokenSum, None) - 3.5).abs() < 1e-12);
    assert!((v(LossAggMode::SeqMeanTokenMean, None) - (1.5 + 4.0) / 2.0).abs() < 1e-7);
    assert!((v(LossAggMode::SeqMeanTokenSumNorm, None) - 7.0 / 3.0).abs() < 1e-12);
    assert!((v(LossAggMode::SeqMeanTokenSumNorm, Some(10.0)) - 0.7).abs() < 1e-12);
    // fully masked batch: 0, not NaN
    let zero = mask.zeros_like().unwrap();
    let n = LossAggMode::TokenMean.normaliser(&zero, None).unwrap();
    assert_eq!(
        agg_loss(&loss, &zero, &n)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        0.0
    );
    // errors, not panics
    assert!(LossAggMode::SeqMeanTokenSumNorm
        .normaliser(&mask, Some(0.0))
        .is_err());
    assert!(agg_loss(&loss, &mask.narrow(1, 0, 2).unwrap(), &n).is_err());
    assert!("token_mean".parse::<LossAggMode>().is_err());
    assert_eq!(
        "seq-mean-token-sum-norm".parse::<LossAggMode>().unwrap(),
        LossAggMode::SeqMeanTokenSumNorm
    );
}
