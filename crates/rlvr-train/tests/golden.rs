//! Every number of `../shared/golden/algorithms.json` (verl's `core_algos.py`) reproduced in
//! f64 (1e-9 relative, floor 1e-12) and f32 (1e-5 relative, floor 1e-6).

use candle_core::DType;
use rlvr_conformance::{read_json, require_shared};
use rlvr_train::golden::{check_golden, GoldenReport};

/// The fields the shared golden file has; all must be compared.
const FIELDS: [&str; 19] = [
    "advantages.gae_gamma1_lam095",
    "advantages.gae_returns",
    "advantages.grpo",
    "advantages.grpo_no_std",
    "advantages.reinforce_plus_plus",
    "advantages.reinforce_plus_plus_baseline",
    "advantages.remax",
    "advantages.rloo",
    "dapo_overlong",
    "entropy.token_mean",
    "kl.abs",
    "kl.k1",
    "kl.k2",
    "kl.k3",
    "pass_at_k",
    "policy_loss.clipfrac",
    "policy_loss.clipfrac_lower",
    "policy_loss.grad_log_prob",
    "policy_loss.loss",
];

fn run(dtype: DType) -> Option<GoldenReport> {
    let path = require_shared("golden/algorithms.json")?;
    let golden = read_json(&path);
    let rep = check_golden(&golden, dtype).expect("golden file recomputes");
    for (name, f) in &rep.fields {
        eprintln!(
            "{dtype:?} {name:<42} n={:<5} max_abs={:.3e} max_rel={:.3e} worst/tol={:.3} at {}",
            f.count, f.max_abs, f.max_rel, f.worst_ratio, f.worst_at
        );
    }
    Some(rep)
}

fn assert_all(rep: &GoldenReport) {
    for name in FIELDS
        .iter()
        .chain(&["policy_loss.ppo_kl", "value_loss.loss"])
    {
        let f = rep
            .fields
            .get(*name)
            .unwrap_or_else(|| panic!("{name} not compared"));
        assert!(f.count > 0, "{name}: nothing compared");
        assert!(
            f.worst_ratio <= 1.0,
            "{:?} {name}: error {:.3e} abs / {:.3e} rel exceeds tolerance (at {})",
            rep.dtype,
            f.max_abs,
            f.max_rel,
            f.worst_at
        );
    }
    assert!(rep.passed());
}

#[test]
fn golden_f64() {
    let Some(rep) = run(DType::F64) else { return };
    assert_all(&rep);
    // 4 cases × 10 policy-loss configurations; 40 pass@k and 8 overlong entries
    assert_eq!(rep.fields["policy_loss.loss"].count, 40);
    assert_eq!(rep.fields["pass_at_k"].count, 40);
    assert_eq!(rep.fields["dapo_overlong"].count, 8);
    assert_eq!(rep.fields["value_loss.loss"].count, 4);
}

#[test]
fn golden_f32() {
    let Some(rep) = run(DType::F32) else { return };
    assert_all(&rep);
}

#[test]
fn a_wrong_golden_number_is_caught() {
    let Some(path) = require_shared("golden/algorithms.json") else {
        return;
    };
    let mut golden = read_json(&path);
    let key = "eps_low=0.2,eps_high=0.28,clip_c=10.0,agg=token-mean";
    let g = &mut golden["cases"][3]["policy_loss_on_grpo_advantages"][key]["grad_log_prob"][0][0];
    *g = serde_json::json!(g.as_f64().unwrap() * (1.0 + 1e-7) + 1e-11);
    golden["cases"][1]["advantages"]["gae_gamma1_lam095"][2][3] = serde_json::json!(123.0);
    let rep = check_golden(&golden, DType::F64).unwrap();
    assert!(!rep.passed());
    assert!(rep.fields["policy_loss.grad_log_prob"].worst_ratio > 1.0);
    assert!(rep.fields["advantages.gae_gamma1_lam095"].worst_ratio > 1.0);
    assert!(rep.fields["advantages.grpo"].worst_ratio <= 1.0);
}

#[test]
fn malformed_golden_is_an_error() {
    let bad = serde_json::json!({"cases": [{"index": ["a"]}]});
    assert!(check_golden(&bad, DType::F64).is_err());
    assert!(check_golden(&serde_json::json!({}), DType::F64).is_err());
    assert!(check_golden(&serde_json::json!({"cases": []}), DType::BF16).is_err());
}
