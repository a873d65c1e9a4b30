//! `rlvr selftest algorithms` on the shared golden file, on a corrupted copy, and on bad paths.

use std::process::Command;

use rlvr_conformance::{read_json, require_shared};

fn rlvr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn");
    c
}

#[test]
fn selftest_passes_on_the_golden_file() {
    let Some(path) = require_shared("golden/algorithms.json") else {
        return;
    };
    let out = rlvr()
        .args(["selftest", "algorithms", "--golden"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for field in [
        "advantages.grpo",
        "advantages.gae_returns",
        "policy_loss.grad_log_prob",
        "policy_loss.clipfrac_lower",
        "kl.k3",
        "value_loss.loss",
        "entropy.token_mean",
        "pass_at_k",
        "dapo_overlong",
    ] {
        assert!(stdout.contains(field), "{field} missing from:\n{stdout}");
    }
    assert!(stdout.contains("f64") && stdout.contains("f32"));
    assert!(stdout.contains("OK: every field within tolerance"));

    let out = rlvr()
        .args([
            "selftest",
            "algorithms",
            "--dtype",
            "f64",
            "--json",
            "--golden",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rep = &v["reports"][0];
    assert_eq!(rep["dtype"], "f64");
    assert_eq!(rep["passed"], true);
    assert!(
        rep["fields"]["policy_loss.loss"]["worst_ratio"]
            .as_f64()
            .unwrap()
            <= 1.0
    );
}

#[test]
fn selftest_fails_above_tolerance() {
    let Some(path) = require_shared("golden/algorithms.json") else {
        return;
    };
    let mut golden = read_json(&path);
    let v = &mut golden["cases"][0]["value_loss"]["loss"];
    *v = serde_json::json!(v.as_f64().unwrap() * (1.0 + 1e-6));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("algorithms.json");
    std::fs::write(&bad, serde_json::to_string(&golden).unwrap()).unwrap();
    let out = rlvr()
        .args(["selftest", "algorithms", "--dtype", "f64", "--golden"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("FAIL at cases[0].value_loss"), "{stdout}");
    assert!(stderr.contains("value_loss.loss"), "{stderr}");
}

#[test]
fn selftest_reports_missing_and_malformed_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = rlvr()
        .args(["selftest", "algorithms", "--golden"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json"));
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"cases\": [{}]}").unwrap();
    let out = rlvr()
        .args(["selftest", "algorithms", "--golden"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing field"));
}

#[test]
fn selftest_losses_passes_on_the_golden_file() {
    let Some(path) = require_shared("golden/losses.json") else {
        return;
    };
    let out = rlvr()
        .args(["selftest", "losses", "--golden"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for field in [
        "policy_loss.gspo.grad_log_prob",
        "policy_loss.clip_cov.selected_tokens",
        "advantages.gdpo",
        "advantages.grpo_passk.error",
        "rollout_correction.rollout_is_weights",
        "rollout_correction.bypass.loss",
    ] {
        assert!(stdout.contains(field), "{field} missing from:\n{stdout}");
    }
    assert!(stdout.contains("f64") && stdout.contains("f32"));
    assert!(stdout.contains("OK: every field within tolerance"));

    let out = rlvr()
        .args(["selftest", "losses", "--dtype", "f64", "--json", "--golden"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rep = &v["reports"][0];
    assert_eq!(rep["dtype"], "f64");
    assert_eq!(rep["passed"], true);
    let f = &rep["fields"]["advantages.grpo_vectorized"];
    assert_eq!(f["rel_tol"], 1e-6);
    assert!(f["worst_ratio"].as_f64().unwrap() <= 1.0);
}

#[test]
fn selftest_losses_fails_above_tolerance() {
    let Some(path) = require_shared("golden/losses.json") else {
        return;
    };
    let mut golden = read_json(&path);
    let v = &mut golden["cases"][1]["policy_losses"][14]["loss"];
    *v = serde_json::json!(v.as_f64().unwrap() * (1.0 + 1e-7));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("losses.json");
    std::fs::write(&bad, serde_json::to_string(&golden).unwrap()).unwrap();
    let out = rlvr()
        .args(["selftest", "losses", "--dtype", "f64", "--golden"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("FAIL at cases[1].policy_losses[14]"),
        "{stdout}"
    );
    assert!(stderr.contains("policy_loss.gspo.loss"), "{stderr}");
}

/// `rlvr selftest device --device cpu`: the composed ops CUDA runs, on the CPU, against the
/// fused path and PyTorch, on every fixture; a perturbed candidate fails; a GPU that cannot
/// open is an error naming it.
#[test]
fn device_selftest_passes_on_the_cpu_and_fails_when_the_candidate_differs() {
    let Some(fixtures) = require_shared("fixtures") else {
        return;
    };
    let fixture_dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    assert!(fixture_dirs.len() >= 5, "{fixture_dirs:?}");
    let run = |extra: &[&str]| {
        let mut c = rlvr();
        c.args(["selftest", "device", "--device", "cpu", "--json"]);
        for d in &fixture_dirs {
            c.arg("--fixture").arg(d);
        }
        c.args(extra).output().unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = rep["rows"].as_array().unwrap();
    for check in [
        "logprobs_infer_vs_cpu",
        "logprobs_train_vs_pytorch",
        "logprobs_bf16_vs_f32_same_weights",
        "grad_grpo_vs_cpu",
        "grad_ppo_zero_params",
    ] {
        let n = rows.iter().filter(|r| r["check"] == check).count();
        assert_eq!(n, fixture_dirs.len(), "{check}");
    }
    // the bf16-sharded fixture has no logits, greedy or train-step reference
    for check in [
        "logits_vs_pytorch",
        "greedy_tokens_differing",
        "adamw_step_vs_pytorch",
    ] {
        let n = rows.iter().filter(|r| r["check"] == check).count();
        assert!(n >= fixture_dirs.len() - 1, "{check}: {n}");
    }
    let kernels: Vec<&str> = rows
        .iter()
        .filter(|r| r["fixture"] == "kernels")
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    assert_eq!(kernels.len(), 13, "{kernels:?}");
    // The composed path really differs from the fused one (not a computation compared with
    // itself): some log-prob differs, within the tolerance.
    let worst = rows
        .iter()
        .filter(|r| r["check"] == "logprobs_train_vs_cpu")
        .map(|r| r["error"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(worst > 0.0 && worst <= 1e-4, "{worst}");

    // 1% on one weight matrix of the candidate: the comparisons fail.
    let out = run(&["--perturb", "0.01"]);
    assert!(!out.status.success());
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    for check in [
        "logprobs_train_vs_cpu",
        "logprobs_infer_vs_pytorch",
        "grad_grpo_vs_cpu",
    ] {
        assert!(failed.contains(&check), "{check} did not fail: {failed:?}");
    }

    let out = rlvr()
        .args(["selftest", "device", "--device", "cuda:7"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("device `cuda:7`"), "{err}");
}
