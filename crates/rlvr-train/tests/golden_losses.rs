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
