//! AdamW with global-norm clipping, LR schedules, gradient accumulation; the algorithm
//! registry and its presets.

use candle_core::{DType, Device, Tensor, Var};
use rlvr_train::advantages::AdvantageEstimator;
use rlvr_train::optim::{
    clip_grad_norm, global_grad_norm, AdamW, GradAccumulator, LrSchedule, OptimConfig,
};
use rlvr_train::{AlgorithmConfig, LossAggMode, TrainError, PRESETS};

#[test]
fn schedules() {
    assert_eq!(LrSchedule::Constant.factor(123), 1.0);
    let w = LrSchedule::LinearWarmup { warmup_steps: 4 };
    assert_eq!(
        (w.factor(0), w.factor(2), w.factor(4), w.factor(9)),
        (0.0, 0.5, 1.0, 1.0)
    );
    let c = LrSchedule::Cosine {
        total_steps: 10,
        min_lr_ratio: 0.1,
    };
    assert_eq!(c.factor(0), 1.0);
    assert!((c.factor(5) - 0.55).abs() < 1e-12);
    assert!((c.factor(10) - 0.1).abs() < 1e-12 && (c.factor(50) - 0.1).abs() < 1e-12);
    let wc = LrSchedule::WarmupCosine {
        warmup_steps: 2,
        total_steps: 12,
        min_lr_ratio: 0.0,
    };
    assert_eq!(wc.factor(1), 0.5);
    assert_eq!(wc.factor(2), 1.0);
    assert!((wc.factor(7) - 0.5).abs() < 1e-12);
    assert!(wc.factor(12).abs() < 1e-12);
    let parsed: LrSchedule = serde_json::from_value(
        serde_json::json!({"kind": "warmup_cosine", "warmup_steps": 2, "total_steps": 12}),
    )
    .unwrap();
    assert_eq!(parsed, wc);
}

#[test]
fn clipping_and_adamw() {
    let dev = Device::Cpu;
    let a = Var::new(&[3.0f64, 0.0], &dev).unwrap();
    let b = Var::new(&[0.0f64, 4.0], &dev).unwrap();
    let vars = vec![a.clone(), b.clone()];
    // loss = a·(1,0) + b·(0,1) scaled: grads (3,0) and (0,4) → norm 5
    let loss = ((a.as_tensor().sqr().unwrap().sum_all().unwrap()
        + b.as_tensor().sqr().unwrap().sum_all().unwrap())
    .unwrap()
        * 0.5)
        .unwrap();
    let mut grads = loss.backward().unwrap();
    assert!((global_grad_norm(&vars, &grads).unwrap() - 5.0).abs() < 1e-12);
    let before = clip_grad_norm(&vars, &mut grads, 1.0).unwrap();
    assert!((before - 5.0).abs() < 1e-12);
    assert!((global_grad_norm(&vars, &grads).unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(
        grads.get(a.as_tensor()).unwrap().to_vec1::<f64>().unwrap()[1],
        0.0
    );

    // AdamW minimises a quadratic; the first step moves each coordinate by ≈ lr
    let x = Var::new(&[1.0f32, -2.0], &dev).unwrap();
    let cfg = OptimConfig {
        lr: 0.1,
        weight_decay: 0.0,
        grad_clip: Some(1.0),
        schedule: LrSchedule::LinearWarmup { warmup_steps: 1 },
        ..OptimConfig::default()
    };
    let mut opt = AdamW::new(vec![x.clone()], cfg).unwrap();
    assert_eq!(opt.learning_rate(), 0.0);
    let step = |opt: &mut AdamW| {
        let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(loss.backward().unwrap()).unwrap()
    };
    step(&mut opt);
    assert_eq!(
        x.as_tensor().to_vec1::<f32>().unwrap(),
        vec![1.0, -2.0],
        "warmup step 0 has lr 0"
    );
    assert!((step(&mut opt) - 20f64.sqrt()).abs() < 1e-5);
    let v = x.as_tensor().to_vec1::<f32>().unwrap();
    assert!(
        (v[0] - 0.9).abs() < 1e-4 && (v[1] + 1.9).abs() < 1e-4,
        "{v:?}"
    );
    for _ in 0..200 {
        step(&mut opt);
    }
    let v = x.as_tensor().to_vec1::<f32>().unwrap();
    assert!(v[0].abs() < 0.1 && v[1].abs() < 0.1, "{v:?}");
    assert_eq!(opt.steps(), 202);
}

#[test]
fn accumulation_equals_one_batch() {
    let dev = Device::Cpu;
    let w = Var::new(&[0.5f64, -1.0, 2.0], &dev).unwrap();
    let data = Tensor::new(
        &[
            [1.0f64, 2.0, 3.0],
            [0.0, 1.0, -1.0],
            [2.0, 0.5, 0.0],
            [1.0, 1.0, 1.0],
        ],
        &dev,
    )
    .unwrap();
    let loss_of = |x: &Tensor| {
        x.broadcast_mul(w.as_tensor())
            .unwrap()
            .sum(1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let full = loss_of(&data).backward().unwrap();
    let full = full.get(w.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    let mut acc = GradAccumulator::new(vec![w.clone()]);
    assert!(acc.take().is_err());
    for k in 0..2 {
        acc.backward(&loss_of(&data.narrow(0, 2 * k, 2).unwrap()))
            .unwrap();
    }
    assert_eq!(acc.micro_batches(), 2);
    let g = acc.grad(&w).unwrap().to_vec1::<f64>().unwrap();
    for (a, b) in g.iter().zip(&full) {
        assert!((a - b).abs() < 1e-12);
    }
    let store = acc.take().unwrap();
    assert!(store.get(w.as_tensor()).is_some());
    assert_eq!(acc.micro_batches(), 0);
    let _ = DType::F64;
}

#[test]
fn presets_and_overrides() {
    for name in PRESETS {
        let c = AlgorithmConfig::preset(name).unwrap();
        c.validate().unwrap();
        // round-trips through serde
        let back: AlgorithmConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
    let dapo = AlgorithmConfig::preset("dapo").unwrap();
    assert_eq!(
        (dapo.clip.clip_ratio_low, dapo.clip.clip_ratio_high),
        (0.2, 0.28)
    );
    assert_eq!(dapo.loss_agg_mode, LossAggMode::TokenMean);
    assert!(dapo.dynamic_sampling.is_some() && dapo.overlong.is_some());
    assert!(!dapo.kl.use_kl_loss && !dapo.kl.use_kl_in_reward);
    let dr = AlgorithmConfig::preset("dr_grpo").unwrap();
    assert_eq!(dr.adv_estimator, AdvantageEstimator::GrpoNoStd);
    assert_eq!(dr.loss_agg_mode, LossAggMode::SeqMeanTokenSumNorm);
    assert!(AlgorithmConfig::preset("ppo").unwrap().critic.is_some());
    assert_eq!(
        AlgorithmConfig::preset("remax").unwrap().adv_estimator,
        AdvantageEstimator::Remax
    );

    let o = dapo
        .with_overrides(&serde_json::json!({
            "clip": {"clip_ratio_high": 0.3},
            "loss_agg_mode": "seq-mean-token-sum-norm",
            "loss_scale_factor": 4096.0,
            "dynamic_sampling": {"max_rounds": 5},
            "optim": {"lr": 2e-6, "schedule": {"kind": "cosine", "total_steps": 100}},
            "grpo": {"eps": 1e-4, "std": "population"}
        }))
        .unwrap();
    assert_eq!(o.clip.clip_ratio_high, 0.3);
    assert_eq!(
        o.clip.clip_ratio_low, 0.2,
        "untouched fields keep the preset's value"
    );
    assert_eq!(o.dynamic_sampling.unwrap().max_rounds, 5);
    assert_eq!(o.loss_scale_factor, Some(4096.0));
    assert_eq!(o.optim.lr, 2e-6);
    // the critic can be switched on from nothing, with defaults for what is not given
    let p = AlgorithmConfig::preset("grpo")
        .unwrap()
        .with_overrides(
            &serde_json::json!({"adv_estimator": "gae", "critic": {"cliprange_value": 0.2}}),
        )
        .unwrap();
    assert_eq!(p.critic.unwrap().cliprange_value, 0.2);

    assert!(matches!(
        AlgorithmConfig::preset("grpoo"),
        Err(TrainError::UnknownName { .. })
    ));
    assert!(dapo
        .with_overrides(&serde_json::json!({"clip": {"eps": 0.1}}))
        .is_err());
    assert!(dapo
        .with_overrides(&serde_json::json!({"loss_agg_mode": "mean"}))
        .is_err());
    assert!(dapo
        .with_overrides(&serde_json::json!({"clip": {"clip_ratio_c": 0.5}}))
        .is_err());
    assert!(dapo
        .with_overrides(&serde_json::json!({"adv_estimator": "gae"}))
        .is_err());
}
