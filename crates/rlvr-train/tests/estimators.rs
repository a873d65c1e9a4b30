//! Advantage estimators, policy/value losses, KL and entropy: conventions on small
//! hand-checked batches, and bad input as errors rather than panics.

use candle_core::{DType, Device, Tensor, Var};
use rlvr_train::advantages::{
    compute_advantages, gae, grpo, grpo_scores, reinforce_plus_plus, remax, rloo, rloo_scores,
    AdvantageEstimator, AdvantageParams, GrpoConfig, StdKind,
};
use rlvr_train::entropy::{entropy_from_logits, entropy_loss};
use rlvr_train::estimators::{EstimatorInputs, ESTIMATORS};
use rlvr_train::kl::{apply_kl_penalty, kl_penalty, KlEstimator};
use rlvr_train::policy::{ppo_clip_loss, ClipConfig};
use rlvr_train::value::value_loss;
use rlvr_train::{LossAggMode, TrainError};

fn m2(v: &[&[f64]]) -> Tensor {
    let rows: Vec<Vec<f64>> = v.iter().map(|r| r.to_vec()).collect();
    let (b, t) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).unwrap()
}

fn rows(x: &Tensor) -> Vec<Vec<f64>> {
    x.to_dtype(DType::F64).unwrap().to_vec2().unwrap()
}

#[test]
fn grpo_conventions() {
    let idx = ["a", "a", "a", "b"];
    let s = [1.0, 0.0, 0.0, 0.7];
    let a = grpo_scores(&s, &idx, &GrpoConfig::default()).unwrap();
    let (mu, sd) = (
        1.0 / 3.0,
        (((2.0f64 / 3.0).powi(2) + 2.0 * (1.0f64 / 3.0).powi(2)) / 2.0).sqrt(),
    );
    assert!((a[0] - (1.0 - mu) / (sd + 1e-6)).abs() < 1e-14);
    // a one-sample group: mean 0, std 1 (verl) → R / (1 + ε)
    assert!((a[3] - 0.7 / (1.0 + 1e-6)).abs() < 1e-15);
    let pop = GrpoConfig {
        std: StdKind::Population,
        eps: 1e-4,
        ..GrpoConfig::default()
    };
    let p = grpo_scores(&s, &idx, &pop).unwrap();
    let psd = sd * (2.0f64 / 3.0).sqrt();
    assert!((p[0] - (1.0 - mu) / (psd + 1e-4)).abs() < 1e-14);
    // all-equal group → 0
    assert_eq!(
        grpo_scores(&[1.0, 1.0], &[0, 0], &GrpoConfig::default()).unwrap(),
        vec![0.0, 0.0]
    );
    // RLOO: R minus the mean of the others; a group of one keeps R
    let r = rloo_scores(&s, &idx).unwrap();
    assert!((r[0] - 1.0).abs() < 1e-15 && (r[1] + 0.5).abs() < 1e-15 && r[3] == 0.7);
    // tensor form: broadcast over the mask, in the input dtype
    let rewards = m2(&[&[0.0, 1.0, 0.0], &[0.0, 0.0, 0.0]])
        .to_dtype(DType::F32)
        .unwrap();
    let mask = m2(&[&[1.0, 1.0, 0.0], &[1.0, 1.0, 1.0]]);
    let (adv, _) = grpo(&rewards, &mask, &[7u32, 7], &GrpoConfig::default()).unwrap();
    assert_eq!(adv.dtype(), DType::F32);
    let adv = rows(&adv);
    let want = 0.5 / (0.5f64.sqrt() + 1e-6);
    assert!((adv[0][0] - want).abs() < 1e-6 && adv[0][2] == 0.0 && (adv[1][2] + want).abs() < 1e-6);
    let (r, _) = rloo(&rewards, &mask, &[7u32, 7]).unwrap();
    assert!((rows(&r)[0][1] - 1.0).abs() < 1e-7);
}

#[test]
fn scans_by_hand() {
    // REINFORCE++ with γ: returns reset after masked positions
    let r = m2(&[&[0.0, 0.0, 1.0, 0.0], &[0.0, 2.0, 0.0, 0.0]]);
    let m = m2(&[&[1.0, 1.0, 1.0, 0.0], &[1.0, 1.0, 0.0, 0.0]]);
    let (adv, ret) = reinforce_plus_plus(&r, &m, 0.5).unwrap();
    assert_eq!(
        rows(&ret),
        vec![vec![0.25, 0.5, 1.0, 0.0], vec![1.0, 2.0, 0.0, 0.0]]
    );
    let a = rows(&adv);
    assert_eq!(a[0][3], 0.0);
    let sum: f64 = a.iter().flatten().sum();
    assert!(sum.abs() < 1e-6, "whitened over the masked tokens: {sum}");
    // ReMax
    let (adv, ret) = remax(&r, &Tensor::new(&[0.5, 1.5], &Device::Cpu).unwrap(), &m).unwrap();
    assert_eq!(
        rows(&ret),
        vec![vec![1.0, 1.0, 1.0, 0.0], vec![2.0, 2.0, 0.0, 0.0]]
    );
    assert_eq!(
        rows(&adv),
        vec![vec![0.5, 0.5, 0.5, 0.0], vec![0.5, 0.5, 0.0, 0.0]]
    );
    // GAE: padding carries next value and gae unchanged; returns = gae + V
    let r = m2(&[&[0.0, 1.0, 0.0]]);
    let m = m2(&[&[1.0, 1.0, 0.0]]);
    let v = m2(&[&[0.5, 0.25, 9.0]]);
    let (_, ret) = gae(&r, &v, &m, 1.0, 1.0).unwrap();
    // t=2 masked: carries (0, 0) → gae_2 = 0 → return 9; t=1: δ=1+0−0.25 → 0.75; t=0: δ=0+0.25−0.5, gae=0.5
    let ret = rows(&ret);
    assert!((ret[0][0] - 1.0).abs() < 1e-15 && (ret[0][1] - 1.0).abs() < 1e-15 && ret[0][2] == 9.0);
}

#[test]
fn estimator_registry_and_errors() {
    assert_eq!(ESTIMATORS.len(), 15);
    for spec in ESTIMATORS {
        let e = spec.estimator;
        assert_eq!(spec.name.parse::<AdvantageEstimator>().unwrap(), e);
        assert_eq!(e.name(), spec.name);
        assert_eq!(e.needs(), spec.needs);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, format!("\"{}\"", spec.name));
        let back: AdvantageEstimator = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        // one row per estimator
        assert_eq!(ESTIMATORS.iter().filter(|s| s.estimator == e).count(), 1);
    }
    let err = serde_json::from_str::<AdvantageEstimator>("\"gpro\"").unwrap_err();
    assert!(err.to_string().contains("optimal_token_baseline"), "{err}");
    assert_eq!(
        "dr_grpo".parse::<AdvantageEstimator>().unwrap(),
        AdvantageEstimator::GrpoNoStd
    );
    assert!(matches!(
        "gpro".parse::<AdvantageEstimator>(),
        Err(TrainError::UnknownName { .. })
    ));
    let r = m2(&[&[0.0, 1.0], &[1.0, 0.0]]);
    let m = m2(&[&[1.0, 1.0], &[1.0, 1.0]]);
    // missing inputs, mismatched shapes, empty batches: errors
    let inputs = EstimatorInputs::new(&r, &m, &[]);
    let p = AdvantageParams::default();
    for e in [
        AdvantageEstimator::Grpo,
        AdvantageEstimator::Rloo,
        AdvantageEstimator::Gae,
        AdvantageEstimator::Remax,
    ] {
        assert!(compute_advantages(e, &inputs, &p).is_err(), "{e:?}");
    }
    assert!(compute_advantages(AdvantageEstimator::ReinforcePlusPlus, &inputs, &p).is_ok());
    let ids = ["x".to_string(), "x".to_string()];
    let with_index = EstimatorInputs {
        index: &ids,
        ..inputs
    };
    let (a, _) = compute_advantages(AdvantageEstimator::GrpoNoStd, &with_index, &p).unwrap();
    assert_eq!(rows(&a), vec![vec![0.0, 0.0], vec![0.0, 0.0]]);
    assert!(matches!(
        grpo(&r, &m, &["x"], &GrpoConfig::default()),
        Err(TrainError::Shape(_))
    ));
    assert!(grpo(
        &r,
        &m.narrow(1, 0, 1).unwrap(),
        &["x", "x"],
        &GrpoConfig::default()
    )
    .is_err());
    assert!(grpo_scores::<u8>(&[], &[], &GrpoConfig::default()).is_err());
    assert!(reinforce_plus_plus(&r.flatten_all().unwrap(), &m, 1.0).is_err());
    // whitening needs two valid tokens
    let one = m2(&[&[1.0, 0.0]]);
    assert!(reinforce_plus_plus(&m2(&[&[1.0, 0.0]]), &one, 1.0).is_err());
    assert!(remax(&r, &Tensor::new(&[1.0], &Device::Cpu).unwrap(), &m).is_err());
    assert!(rloo(&r, &m2(&[&[1.0, 0.5], &[1.0, 1.0]]), &[0, 0]).is_err());
    assert!(gae(&r, &m2(&[&[1.0, 2.0]]), &m, 1.0, 1.0).is_err());
}

#[test]
fn policy_loss_clipping_and_dual_clip() {
    let old = m2(&[&[0.0, 0.0, 0.0, 0.0]]);
    // ratios e^0.5 (above 1.28), 1.1 (inside), e^-0.5 (below 0.8), e^3 (dual clip at c=3)
    let lp = m2(&[&[0.5, 1.1f64.ln(), -0.5, 3.0]]);
    let adv = m2(&[&[1.0, 1.0, 1.0, -1.0]]);
    let mask = m2(&[&[1.0, 1.0, 1.0, 1.0]]);
    let clip = ClipConfig {
        clip_ratio_low: 0.2,
        clip_ratio_high: 0.28,
        clip_ratio_c: 3.0,
    };
    let var = Var::from_tensor(&lp).unwrap();
    let norm = LossAggMode::SeqMeanTokenSum
        .normaliser(&mask, None)
        .unwrap();
    let out = ppo_clip_loss(var.as_tensor(), &old, &adv, &mask, &clip, &norm).unwrap();
    let per = rows(&out.per_token)[0].clone();
    assert!(
        (per[0] + 1.28).abs() < 1e-12,
        "clipped above at 1 + eps_high"
    );
    assert!((per[1] + 1.1).abs() < 1e-12);
    assert!(
        (per[2] + 0.5f64.exp().recip()).abs() < 1e-12,
        "min(ρ, clip) for A > 0 keeps ρ"
    );
    assert!((per[3] - 3.0).abs() < 1e-12, "dual clip caps −A·ρ at −A·c");
    let g = rows(
        &out.loss
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .clone(),
    )[0]
    .clone();
    assert_eq!(g[0], 0.0);
    assert!((g[1] + 1.1).abs() < 1e-12 && (g[2] + 0.5f64.exp().recip()).abs() < 1e-12);
    assert_eq!(g[3], 0.0);
    assert!((out.clipfrac - 0.25 / (1.0 + 1e-8 / 4.0)).abs() < 1e-12);
    assert!((out.clipfrac_lower - 0.25 / (1.0 + 1e-8 / 4.0)).abs() < 1e-12);
    let bad = ClipConfig {
        clip_ratio_c: 1.0,
        ..clip
    };
    assert!(ppo_clip_loss(&lp, &old, &adv, &mask, &bad, &norm).is_err());
    assert!(ppo_clip_loss(
        &lp,
        &old.narrow(1, 0, 2).unwrap(),
        &adv,
        &mask,
        &clip,
        &norm
    )
    .is_err());
}

#[test]
fn value_kl_entropy() {
    let vp = m2(&[&[1.0, 0.0]]);
    let ret = m2(&[&[0.0, 0.0]]);
    let old = m2(&[&[0.0, 0.0]]);
    let mask = m2(&[&[1.0, 1.0]]);
    let norm = LossAggMode::TokenMean.normaliser(&mask, None).unwrap();
    let v = value_loss(&vp, &ret, &old, &mask, 0.2, &norm).unwrap();
    // max(1², 0.2²) = 1 → 0.5 · mean(1, 0) = 0.25
    assert!((v.loss.to_scalar::<f64>().unwrap() - 0.25).abs() < 1e-15);
    assert!(value_loss(&vp, &ret, &old, &mask, -1.0, &norm).is_err());

    let lp = m2(&[&[-1.0, -2.0, -30.0]]);
    let rf = m2(&[&[-1.5, -2.0, -1.0]]);
    let k = |e| rows(&kl_penalty(&lp, &rf, e).unwrap())[0].clone();
    assert_eq!(k(KlEstimator::K1), vec![0.5, 0.0, -29.0]);
    assert_eq!(k(KlEstimator::Abs), vec![0.5, 0.0, 29.0]);
    assert_eq!(k(KlEstimator::K2), vec![0.125, 0.0, 420.5]);
    let k3 = k(KlEstimator::K3);
    assert!((k3[0] - ((-0.5f64).exp() + 0.5 - 1.0)).abs() < 1e-15 && k3[1] == 0.0);
    assert_eq!(k3[2], 10.0, "k3 is clamped at 10");
    for (n, e) in KlEstimator::ALL {
        assert_eq!(n.parse::<KlEstimator>().unwrap(), e);
    }
    assert_eq!(
        "low_var_kl".parse::<KlEstimator>().unwrap(),
        KlEstimator::K3
    );
    assert!("k4".parse::<KlEstimator>().is_err());
    let (shaped, mean_kl) = apply_kl_penalty(
        &m2(&[&[0.0, 0.0, 1.0]]),
        &lp,
        &rf,
        &m2(&[&[1.0, 1.0, 0.0]]),
        KlEstimator::K1,
        0.1,
    )
    .unwrap();
    assert_eq!(rows(&shaped)[0], vec![-0.05, 0.0, 1.0]);
    assert!((mean_kl - 0.25).abs() < 1e-8);

    // entropy: uniform logits give ln V; gradient by finite differences
    let h =
        entropy_from_logits(&Tensor::zeros((2, 3, 5), DType::F64, &Device::Cpu).unwrap()).unwrap();
    for x in h.flatten_all().unwrap().to_vec1::<f64>().unwrap() {
        assert!((x - 5f64.ln()).abs() < 1e-14);
    }
    let z0 = [0.3, -1.2, 2.0, 0.0];
    let var = Var::from_tensor(&Tensor::new(&[[z0]], &Device::Cpu).unwrap()).unwrap();
    let m1 = Tensor::new(&[[1.0]], &Device::Cpu).unwrap();
    let n1 = LossAggMode::TokenMean.normaliser(&m1, None).unwrap();
    let g = entropy_loss(var.as_tensor(), &m1, &n1)
        .unwrap()
        .backward()
        .unwrap();
    let g = g
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let ent = |z: [f64; 4]| {
        entropy_from_logits(&Tensor::new(&z, &Device::Cpu).unwrap())
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    for i in 0..4 {
        let (mut up, mut dn) = (z0, z0);
        up[i] += 1e-6;
        dn[i] -= 1e-6;
        let fd = (ent(up) - ent(dn)) / 2e-6;
        assert!(
            (fd - g[i]).abs() < 1e-8,
            "entropy grad {i}: {} vs {fd}",
            g[i]
        );
    }
    assert!(
        entropy_from_logits(&Tensor::zeros((2, 0), DType::F64, &Device::Cpu).unwrap()).is_err()
    );
}

#[test]
fn sum_pi_squared_is_the_collision_probability() {
    use rlvr_train::entropy::sum_pi_squared_from_logits;
    // uniform over 4 → 1/4; probabilities (0.5, 0.25, 0.25) → 0.375; a peaked row → ~1
    let l = Tensor::new(
        &[
            [0.0f64, 0.0, 0.0, 0.0],
            [2f64.ln(), 0.0, 0.0, f64::NEG_INFINITY],
            [50.0, 0.0, 0.0, 0.0],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let s: Vec<f64> = sum_pi_squared_from_logits(&l).unwrap().to_vec1().unwrap();
    assert!((s[0] - 0.25).abs() < 1e-12, "{s:?}");
    assert!((s[1] - 0.375).abs() < 1e-12, "{s:?}");
    assert!((s[2] - 1.0).abs() < 1e-12, "{s:?}");
    let empty = Tensor::zeros((2, 0), DType::F64, &Device::Cpu).unwrap();
    assert!(sum_pi_squared_from_logits(&empty).is_err());
}
