//! Every value of `../shared/golden/losses.json` (verl 1dda039: policy losses, extra
//! advantage estimators, rollout correction) reproduced in f64 and f32 with the tolerances of
//! losses.md, NaN entries as NaN and refusals as refusals; and a wrong number is caught.

use candle_core::DType;
use rlvr_conformance::{read_json, require_shared};
use rlvr_train::golden_losses::{check_losses_golden, LossesReport};

fn run(dtype: DType) -> Option<LossesReport> {
    let path = require_shared("golden/losses.json")?;
    let golden = read_json(&path);
    let rep = check_losses_golden(&golden, dtype).expect("golden file recomputes");
    for (name, (tol, f)) in &rep.fields {
        eprintln!(
            "{dtype:?} {name:<70} n={:<5} max_abs={:.3e} max_rel={:.3e} tol={:.0e} worst/tol={:.3} at {}",
            f.count, f.max_abs, f.max_rel, tol.rel, f.worst_ratio, f.worst_at
        );
    }
    Some(rep)
}

fn assert_all(rep: &LossesReport) {
    let failed: Vec<String> = rep
        .fields
        .iter()
        .filter(|(_, (_, f))| f.worst_ratio > 1.0 || f.count == 0)
        .map(|(n, (_, f))| format!("{n} at {} ({:.3e} abs)", f.worst_at, f.max_abs))
        .collect();
    assert!(
        failed.is_empty(),
        "{:?}: {} field(s) out of tolerance:\n{}",
        rep.dtype,
        failed.len(),
        failed.join("\n")
    );
    assert!(rep.passed());
}

/// Every loss, estimator and rollout-correction family of the file is compared.
fn assert_coverage(rep: &LossesReport) {
    for name in [
        "policy_loss.vanilla.grad_log_prob",
        "policy_loss.dppo_tv.grad_log_prob",
        "policy_loss.dppo_kl.grad_log_prob",
        "policy_loss.gspo.grad_log_prob",
        "policy_loss.cispo.grad_log_prob",
        "policy_loss.sapo.grad_log_prob",
        "policy_loss.gpg.grad_log_prob",
        "policy_loss.dro.grad_log_prob",
        "policy_loss.clip_cov.grad_log_prob",
        "policy_loss.kl_cov.grad_log_prob",
        "policy_loss.geo_mean.grad_log_prob",
        "advantages.gdpo",
        "advantages.opo",
        "advantages.gpg",
        "advantages.grpo_passk",
        "advantages.grpo_passk.error",
        "advantages.rloo_vectorized",
        "advantages.grpo_vectorized",
        "advantages.optimal_token_baseline",
        "advantages.optimal_token_baseline.returns",
        "advantages.tir_optimal_token_baseline",
        "rollout_correction.rollout_is_weights",
        "rollout_correction.modified_response_mask",
        "rollout_correction.vanilla_token_mean.grad_log_prob",
        "rollout_correction.geo_mean.grad_log_prob",
        "rollout_correction.bypass.loss",
        "rollout_correction.bypass.grad_log_prob",
        "rollout_correction.preset_config",
    ] {
        let (_, f) = rep
            .fields
            .get(name)
            .unwrap_or_else(|| panic!("{name} not compared"));
        assert!(f.count > 0, "{name}: nothing compared");
    }
}

#[test]
fn losses_golden_f64() {
    let Some(rep) = run(DType::F64) else { return };
    assert_coverage(&rep);
    assert_all(&rep);
    // 4 cases × 42 policy-loss entries, 19 estimator entries, 22 bypass entries
    assert_eq!(rep.fields["policy_loss.vanilla.loss"].1.count, 24);
    assert_eq!(rep.fields["rollout_correction.bypass.loss"].1.count, 88);
}

#[test]
fn losses_golden_f32() {
    let Some(rep) = run(DType::F32) else { return };
    assert_coverage(&rep);
    assert_all(&rep);
}

fn golden() -> Option<serde_json::Value> {
    Some(read_json(&require_shared("golden/losses.json")?))
}

fn ratio(rep: &LossesReport, field: &str) -> f64 {
    rep.fields[field].1.worst_ratio
}

#[test]
fn a_wrong_golden_number_is_caught() {
    let Some(mut g) = golden() else { return };
    // a gradient off by 1e-7 relative, a rollout metric, a NaN entry made finite
    let x = &mut g["cases"][3]["policy_losses"][38]["grad_log_prob"][2][1];
    *x = serde_json::json!(x.as_f64().unwrap() * (1.0 + 1e-7) + 1e-11);
    let dec = &mut g["cases"][2]["rollout_correction"]["decoupled"][3]["metrics"];
    dec["rollout_corr/rollout_rs_seq_sum_k1_std"] = serde_json::json!(0.5);
    let grad0 = g["cases"][0]["rollout_correction"]["bypass"][0]["grad_log_prob"].clone();
    let byp = &mut g["cases"][0]["rollout_correction"]["bypass"][2];
    byp["nan_loss"] = serde_json::json!(false);
    byp["loss"] = serde_json::json!(0.0);
    byp["grad_log_prob"] = grad0;
    let rep = check_losses_golden(&g, DType::F64).unwrap();
    assert!(!rep.passed());
    assert!(ratio(&rep, "policy_loss.geo_mean.grad_log_prob") > 1.0);
    assert!(ratio(&rep, "rollout_correction.rollout_rs_seq_sum_k1_std") > 1.0);
    assert!(ratio(&rep, "rollout_correction.bypass.loss") > 1.0);
    assert!(ratio(&rep, "policy_loss.gspo.loss") <= 1.0);
}

#[test]
fn a_wrong_formula_is_caught() {
    let Some(mut g) = golden() else { return };
    // perturbed inputs stand in for a wrong formula: every quantity that reads them must fail
    let lp = &mut g["cases"][1]["log_prob"][0][0];
    *lp = serde_json::json!(lp.as_f64().unwrap() + 1e-3);
    let sps = &mut g["cases"][2]["sum_pi_squared"][1][0];
    *sps = serde_json::json!(sps.as_f64().unwrap() + 0.1);
    let rw = &mut g["cases"][0]["reward_components"]["values"][0][1];
    *rw = serde_json::json!(rw.as_f64().unwrap() + 0.25);
    let rep = check_losses_golden(&g, DType::F64).unwrap();
    for f in [
        "policy_loss.dppo_kl.grad_log_prob",
        "policy_loss.sapo.loss",
        "policy_loss.geo_mean.loss",
        "rollout_correction.bypass.loss",
        "advantages.optimal_token_baseline",
        "advantages.gdpo",
    ] {
        assert!(ratio(&rep, f) > 1.0, "{f} did not notice");
    }
    assert!(ratio(&rep, "advantages.opo") <= 1.0);
    // a refusal that is not refused is an error too
    let mut g2 = golden().unwrap();
    g2["cases"][1]["index"][12] = serde_json::json!("p2");
    let rep = check_losses_golden(&g2, DType::F64).unwrap();
    assert!(ratio(&rep, "advantages.grpo_passk.error") > 1.0);
}

#[test]
fn malformed_golden_is_an_error() {
    use serde_json::json;
    assert!(check_losses_golden(&json!({}), DType::F64).is_err());
    assert!(check_losses_golden(&json!({"cases": [{"index": ["a"]}]}), DType::F64).is_err());
    assert!(check_losses_golden(&json!({"cases": []}), DType::BF16).is_err());
    assert!(!check_losses_golden(&json!({"cases": []}), DType::F64)
        .unwrap()
        .passed());
}
