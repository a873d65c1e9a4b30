//! The policy-loss and estimator registries, their configs and the rollout-correction presets.

use candle_core::{DType, Device, Tensor, Var};
use rlvr_train::advantages::AdvantageParams;
use rlvr_train::estimators::{estimator_fn, EstimatorInputs, ESTIMATORS};
use rlvr_train::losses::{policy_loss_fn, ActorLossConfig, PolicyLossInputs, POLICY_LOSSES};
use rlvr_train::rollout_correction::{
    compute_rollout_correction, BypassLossType, IsLevel, RolloutCorrectionConfig, Threshold,
    ROLLOUT_CORRECTION_PRESETS,
};
use rlvr_train::TrainError;

fn t(rows: &[[f64; 3]], dtype: DType) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 3), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn unknown_names_list_the_known_ones() {
    let Err(TrainError::UnknownName { known, .. }) = policy_loss_fn("ppo2") else {
        panic!("ppo2 accepted")
    };
    for (name, _, _) in POLICY_LOSSES {
        assert!(known.contains(name));
    }
    assert!(matches!(
        estimator_fn("nope"),
        Err(TrainError::UnknownName { .. })
    ));
    assert!(RolloutCorrectionConfig::preset("decoupled_nope").is_err());
    assert_eq!(ESTIMATORS.len(), 15);
}

#[test]
fn configs_use_verl_names_and_defaults() {
    let c: ActorLossConfig = serde_json::from_value(serde_json::json!({
        "clip_ratio": 0.3, "clip_ratio_high": 0.28,
        "policy_loss": {"loss_mode": "kl_cov", "kl_cov_ratio": 0.2}
    }))
    .unwrap();
    assert_eq!(
        (c.eps_low(), c.eps_high(), c.clip_ratio_c),
        (0.3, 0.28, 3.0)
    );
    assert_eq!((c.tau_pos, c.tau_neg), (1.0, 1.05));
    assert_eq!(c.policy_loss.ppo_kl_coef, 0.1);
    assert_eq!(c.policy_loss.clip_cov_ratio, 0.0002);
    assert!(
        serde_json::from_value::<ActorLossConfig>(serde_json::json!({"clip_ratoi": 1})).is_err()
    );
    let r = RolloutCorrectionConfig::default();
    assert_eq!(r.rollout_is, None);
    assert_eq!(r.rollout_is_threshold, Threshold::Number(2.0));
    assert_eq!(r.loss_type, BypassLossType::PpoClip);
}

#[test]
fn every_preset_builds() {
    for name in ROLLOUT_CORRECTION_PRESETS {
        let c = RolloutCorrectionConfig::preset(name).unwrap();
        assert_eq!(c.bypass_mode, name.starts_with("bypass_"), "{name}");
    }
    let c = RolloutCorrectionConfig::preset("bypass_pg_geo_rs_token_tis").unwrap();
    assert_eq!(c.rollout_is, Some(IsLevel::Token));
    assert_eq!(c.rollout_rs.as_deref(), Some("seq_mean_k1"));
    assert_eq!(c.loss_type, BypassLossType::Reinforce);
}

#[test]
fn every_loss_runs_and_differentiates_in_both_dtypes() {
    for dtype in [DType::F64, DType::F32] {
        let old = t(&[[-1.0, -0.5, -2.0], [-0.3, -1.2, -0.7]], dtype);
        let lp = Var::from_tensor(&t(&[[-0.9, -0.6, -2.2], [-0.2, -1.1, -0.9]], dtype)).unwrap();
        let adv = t(&[[1.0, 1.0, 1.0], [-0.5, -0.5, 0.0]], dtype);
        let mask = t(&[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype);
        for (name, f, _) in POLICY_LOSSES {
            let mut cfg = ActorLossConfig::default();
            cfg.policy_loss.dro_beta = Some(0.1);
            let inp = PolicyLossInputs::new(&old, lp.as_tensor(), &adv, &mask);
            let out = f(&inp, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.loss.dtype(), dtype, "{name}");
            let g = out.loss.backward().unwrap();
            let grad = g
                .get(lp.as_tensor())
                .expect(name)
                .to_dtype(DType::F64)
                .unwrap();
            let grad = grad.to_vec2::<f64>().unwrap();
            assert_eq!(grad[0][2], 0.0, "{name}: padding got a gradient");
            assert!(
                grad.iter().flatten().any(|x| *x != 0.0),
                "{name}: no gradient"
            );
        }
    }
}

#[test]
fn dro_needs_a_beta_and_a_mask_with_no_token_gives_nan() {
    let z = t(&[[0.0, 0.0, 0.0]], DType::F64);
    let inp = PolicyLossInputs::new(&z, &z, &z, &z);
    assert!(policy_loss_fn("dro").unwrap()(&inp, &ActorLossConfig::default()).is_err());
    let out = policy_loss_fn("vanilla").unwrap()(&inp, &ActorLossConfig::default()).unwrap();
    assert!(out.loss.to_scalar::<f64>().unwrap().is_nan());
}

#[test]
fn rejection_and_truncation_on_a_small_batch() {
    let old = t(&[[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]], DType::F64);
    let roll = t(&[[-1.0, -3.0, -1.0], [-1.0, -1.1, -1.0]], DType::F64);
    let mask = t(&[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], DType::F64);
    let cfg = RolloutCorrectionConfig {
        rollout_is: Some(IsLevel::Token),
        rollout_rs: Some("token_k1".into()),
        rollout_rs_threshold: Some(Threshold::Text("0.5_2.0".into())),
        ..Default::default()
    };
    let c = compute_rollout_correction(&old, &roll, &mask, &cfg).unwrap();
    let w = c.rollout_is_weights.unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(w[0][1], 2.0); // e² truncated at 2
    let m = c.modified_response_mask.unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(m, vec![vec![1.0, 0.0, 1.0], vec![1.0, 1.0, 0.0]]);
    assert!(c
        .metrics
        .contains_key("rollout_corr/rollout_rs_token_k1_masked_fraction"));
}

#[test]
fn grpo_passk_refuses_a_group_of_one() {
    let r = t(&[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]], DType::F64);
    let index = vec!["a".to_string(), "b".to_string()];
    let inp = EstimatorInputs::new(&r, &r, &index);
    let err = estimator_fn("grpo_passk").unwrap()(&inp, &AdvantageParams::default()).unwrap_err();
    assert!(err.to_string().contains("at least 2 samples per group"));
}
