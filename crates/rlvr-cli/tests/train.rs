//! `rlvr train` end to end with a tiny built-in policy: a short run writes every record of a
//! run directory; a run killed with SIGKILL mid-step and resumed reproduces the metrics of an
//! uninterrupted run; every preset config runs; a user checkpoint trains on a user dataset.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rlvr_conformance::{require_shared, run_json};
use serde_json::Value;

fn rlvr(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn")
        .env("RLVR_CACHE", cache)
        .env("RAYON_NUM_THREADS", "1");
    c
}

/// A policy small enough for tests, a short warm-up and small batches.
const TINY: &[&str] = &[
    "model.builtin.hidden_size=32",
    "model.builtin.intermediate_size=64",
    "model.builtin.num_hidden_layers=2",
    "warmup.steps=20",
    "warmup.batch_size=8",
    "rollout.prompts_per_step=4",
    "rollout.n=4",
    "rollout.max_new_tokens=24",
    "data.heldout_size=16",
    "eval.n=2",
    "trainer.micro_batch_size=8",
];

fn sets(extra: &[&str]) -> Vec<String> {
    TINY.iter()
        .chain(extra)
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_short_run_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let summary = run_json(
        rlvr(&tmp.path().join("cache"))
            .arg("train")
            .args(["--run-dir", run.to_str().unwrap()])
            .args(sets(&[
                "trainer.steps=3",
                "trainer.save_every=2",
                "eval.every=2",
            ])),
    );
    // summary.json: the keys the README promises.
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(on_disk, summary);
    for k in ["eval_before", "eval_after"] {
        let acc = summary[k]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{k}: {acc}");
        assert!(summary[k]["greedy_accuracy"].is_number());
        assert_eq!(summary[k]["num_problems"], 16);
    }
    assert_eq!(summary["steps"], 3);
    assert!(summary["wall_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["warmup"]["cached"], false);

    // metrics.jsonl: one line per step with the promised metrics.
    let metrics = read_lines(&run.join("metrics.jsonl"));
    assert_eq!(metrics.len(), 3);
    for (i, m) in metrics.iter().enumerate() {
        assert_eq!(m["step"], i + 1);
        for k in [
            "reward/mean",
            "reward/std",
            "accuracy",
            "status/correct",
            "status/incorrect",
            "status/invalid",
            "status/error",
            "response_length/mean",
            "response_length/max",
            "response_length/truncation_rate",
            "actor/kl_ref",
            "actor/entropy",
            "actor/pg_clipfrac",
            "actor/grad_norm",
            "actor/lr",
            "timing/rollout_s",
            "timing/verify_s",
            "timing/update_s",
            "timing/step_s",
            "rollout/tokens_per_s",
        ] {
            assert!(m[k].is_number(), "step {}: {k} missing in {m}", i + 1);
        }
        let statuses: u64 = ["correct", "incorrect", "invalid", "error"]
            .iter()
            .map(|s| m[format!("status/{s}")].as_u64().unwrap())
            .sum();
        assert_eq!(statuses, 16, "4 prompts × 4 samples verified");
    }
    // The periodic held-out evaluation (rlvr eval's metrics) is logged at step 2.
    for k in [
        "eval/accuracy",
        "eval/greedy_accuracy",
        "eval/pass@1",
        "eval/pass@2",
        "eval/maj@2",
    ] {
        assert!(
            metrics[1][k].is_number(),
            "{k} missing at step 2: {}",
            metrics[1]
        );
    }
    assert!(metrics[0].get("eval/pass@1").is_none());
    // Run records: resolved config (loads back), metadata, checkpoints in HF format with the
    // optimiser state, TensorBoard events, plots, the store with every rollout.
    let cfg = rlvr_loop::TrainConfig::from_toml(
        &std::fs::read_to_string(run.join("config.resolved.toml")).unwrap(),
        "config.resolved.toml",
        &[],
    )
    .unwrap();
    assert_eq!(cfg.trainer.steps, 3);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["seed"], 0);
    assert!(meta["rlvr_version"].is_string());
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "step-000003");
    let ck = run.join("checkpoints/step-000003");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ck.join(f).exists(), "{f} missing in the checkpoint");
    }
    assert!(run.join("checkpoints/step-000002").exists());
    let tb: Vec<_> = std::fs::read_dir(run.join("tensorboard"))
        .unwrap()
        .collect();
    assert!(!tb.is_empty());
    assert!(run.join("plots/reward_mean.svg").exists());
    assert!(run.join("plots/accuracy.png").exists());
    let store = rlvr_store::Store::open(&run.join("store")).unwrap();
    assert_eq!(store.rollout_count(), 3 * 16);
    let r = &store.rollouts(2).unwrap()[0];
    for k in [
        "prompt",
        "completion",
        "tokens",
        "reward",
        "status",
        "details",
        "step",
    ] {
        assert!(!r[k].is_null(), "rollout record lacks {k}: {r}");
    }
    drop(store);
    // The checkpoint is a model directory rlvr (and transformers) can load.
    let out = Command::new(env!("CARGO_BIN_EXE_rlvr"))
        .args(["model", "inspect", "--model", ck.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second run reuses the cached warm-up.
    let summary = run_json(
        rlvr(&tmp.path().join("cache"))
            .arg("train")
            .args(["--run-dir", tmp.path().join("run2").to_str().unwrap()])
            .args(sets(&[
                "trainer.steps=1",
                "eval.before=false",
                "eval.after=false",
            ])),
    );
    assert_eq!(summary["warmup"]["cached"], true);
}

/// Metrics that must be identical between an interrupted+resumed run and an uninterrupted one
/// (everything but wall-clock timings).
fn deterministic(m: &Value) -> Value {
    let mut m = m.as_object().unwrap().clone();
    m.retain(|k, _| !k.starts_with("timing/") && k != "rollout/tokens_per_s");
    Value::Object(m)
}

#[test]
fn resume_after_sigkill_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let common = sets(&[
        "trainer.steps=12",
        "trainer.save_every=3",
        "eval.before=false",
    ]);
    let full = tmp.path().join("full");
    let full_summary = run_json(
        rlvr(&cache)
            .arg("train")
            .args(["--run-dir", full.to_str().unwrap()])
            .args(&common),
    );
    let cut = tmp.path().join("cut");
    let mut child = rlvr(&cache)
        .arg("train")
        .args(["--run-dir", cut.to_str().unwrap()])
        .args(&common)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill (SIGKILL) once step 5 is logged: the process is inside step 6, between checkpoints.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // Complete lines only: the run may be writing the next one.
        let logged = std::fs::read_to_string(cut.join("metrics.jsonl")).unwrap_or_default();
        if logged.matches('\n').count() >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the run never reached step 5");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed run must not report success");
    let before = read_lines(&cut.join("metrics.jsonl")).len();
    assert!(
        (5..12).contains(&before),
        "{before} steps logged before the kill"
    );

    let resumed = run_json(
        rlvr(&cache)
            .arg("train")
            .args(["--resume", cut.to_str().unwrap()]),
    );
    // From a checkpoint at or before the last step logged before the kill (under load the
    // process may have finished step 6 and its checkpoint before the kill landed).
    let from = resumed["resumed_from_step"].as_u64().unwrap();
    assert!(
        from as usize <= before && from < 12,
        "resumed from step {from}"
    );
    let a: Vec<Value> = read_lines(&full.join("metrics.jsonl"))
        .iter()
        .map(deterministic)
        .collect();
    let b: Vec<Value> = read_lines(&cut.join("metrics.jsonl"))
        .iter()
        .map(deterministic)
        .collect();
    assert_eq!(a.len(), 12);
    assert_eq!(
        b.len(),
        12,
        "steps after the checkpoint are redone, not duplicated"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "step {} differs after resume", x["step"]);
    }
    let no_time = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(
        no_time(&full_summary["eval_after"]),
        no_time(&resumed["eval_after"])
    );
    // The final weights are identical too.
    let wa = std::fs::read(full.join("checkpoints/step-000012/model.safetensors")).unwrap();
    let wb = std::fs::read(cut.join("checkpoints/step-000012/model.safetensors")).unwrap();
    assert!(wa == wb, "final weights differ");
    let store = rlvr_store::Store::open(&cut.join("store")).unwrap();
    assert_eq!(store.rollout_count(), 12 * 16);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

#[test]
fn ppo_resumes_exactly_with_its_critic() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let full = tmp.path().join("full");
    run_json(
        rlvr(&cache)
            .arg("train")
            .args(["--config", configs().join("ppo.toml").to_str().unwrap()])
            .args(["--run-dir", full.to_str().unwrap()])
            .args(sets(&[
                "trainer.steps=4",
                "trainer.save_every=2",
                "eval.before=false",
                "eval.after=false",
            ])),
    );
    // The same run stopped after its step-2 checkpoint: later checkpoints gone, `latest` back.
    let cut = tmp.path().join("cut");
    copy_dir(&full, &cut);
    std::fs::remove_dir_all(cut.join("checkpoints/step-000004")).unwrap();
    std::fs::write(cut.join("checkpoints/latest"), "step-000002").unwrap();
    let resumed = run_json(
        rlvr(&cache)
            .arg("train")
            .args(["--resume", cut.to_str().unwrap()]),
    );
    assert_eq!(resumed["resumed_from_step"], 2);
    let a: Vec<Value> = read_lines(&full.join("metrics.jsonl"))
        .iter()
        .map(deterministic)
        .collect();
    let b: Vec<Value> = read_lines(&cut.join("metrics.jsonl"))
        .iter()
        .map(deterministic)
        .collect();
    assert_eq!((a.len(), b.len()), (4, 4));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "step {} differs after resume", x["step"]);
    }
    for f in [
        "model.safetensors",
        "critic/model.safetensors",
        "critic/config.json",
        "critic/optimizer.safetensors",
    ] {
        let wa = std::fs::read(full.join("checkpoints/step-000004").join(f)).unwrap();
        let wb = std::fs::read(cut.join("checkpoints/step-000004").join(f)).unwrap();
        assert!(wa == wb, "{f} differs after resume");
    }
}

#[test]
fn every_preset_config_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for preset in [
        "grpo",
        "dr_grpo",
        "dapo",
        "rloo",
        "reinforce_plus_plus",
        "remax",
    ] {
        let run = tmp.path().join(preset);
        let summary = run_json(
            rlvr(&cache)
                .arg("train")
                .args([
                    "--config",
                    configs().join(format!("{preset}.toml")).to_str().unwrap(),
                ])
                .args(["--run-dir", run.to_str().unwrap()])
                .args(sets(&[
                    "trainer.steps=2",
                    "eval.before=false",
                    "eval.after=false",
                ])),
        );
        assert_eq!(summary["algorithm"], preset);
        let metrics = read_lines(&run.join("metrics.jsonl"));
        assert_eq!(metrics.len(), 2, "{preset}");
        if preset == "dapo" {
            assert!(metrics[0]["rollout/rounds"].as_u64().unwrap() >= 1);
        }
        if preset == "ppo" {
            for m in &metrics {
                assert!(m["critic/vf_loss"].as_f64().unwrap().is_finite(), "{m}");
                assert_eq!(m["critic/skipped_updates"], 0, "{m}");
            }
            // The critic is checkpointed with the policy.
            let ck = run.join("checkpoints/step-000002/critic");
            assert!(ck.join("model.safetensors").exists());
            assert!(ck.join("optimizer.safetensors").exists());
        }
        if preset == "remax" {
            // The greedy baseline and the KL penalty in the reward (a reference model).
            for m in &metrics {
                assert!(m["reward/greedy_baseline_mean"].is_number(), "{m}");
                assert!(m["actor/reward_kl_penalty"].is_number(), "{m}");
            }
        }
    }
}

#[test]
fn a_user_checkpoint_trains_on_a_user_dataset() {
    let Some(model) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| serde_json::json!({"question": format!("What is {i}+{i}?"), "answer": format!("{}", 2 * i)}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let run = tmp.path().join("run");
    let summary = run_json(
        rlvr(&tmp.path().join("cache"))
            .arg("train")
            .args(["--model", model.to_str().unwrap()])
            .args(["--data", data.to_str().unwrap()])
            .args(["--run-dir", run.to_str().unwrap()])
            .args(["--set", "trainer.steps=2", "--set", "data.heldout_size=4"])
            .args([
                "--set",
                "rollout.prompts_per_step=2",
                "--set",
                "rollout.n=2",
                "--set",
                "rollout.max_new_tokens=8",
            ]),
    );
    assert_eq!(summary["eval_before"]["num_problems"], 4);
    assert!(summary.get("warmup").is_none());
    // With --data and no verifier given, the math verifier alone scores (not the built-in
    // task's math + format sum).
    let cfg = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    assert!(cfg.contains("verifier = \"math\""), "{cfg}");
    let ck = run.join("checkpoints/step-000002");
    // The user's tokenizer travels with the checkpoint.
    assert_eq!(
        std::fs::read(ck.join("tokenizer.json")).unwrap(),
        std::fs::read(model.join("tokenizer.json")).unwrap()
    );
    // A bad dataset line is reported with its line number and the run does not start.
    std::fs::write(
        &data,
        "{\"question\": \"1+1\", \"answer\": \"2\"}\n{not json\n",
    )
    .unwrap();
    let out = rlvr(&tmp.path().join("cache"))
        .arg("train")
        .args([
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .args(["--run-dir", tmp.path().join("bad").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data.jsonl:2"), "{err}");
}

#[test]
fn every_new_loss_and_correction_preset_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for preset in [
        "gspo",
        "cispo",
        "sapo",
        "gpg",
        "gmpo",
        "clip_cov",
        "kl_cov",
        "dppo_tv",
        "dppo_kl",
        "grpo_tis",
        "grpo_icepop",
        "grpo_bypass",
        "gdpo",
        "opo",
    ] {
        let run = tmp.path().join(preset);
        let summary = run_json(
            rlvr(&cache)
                .arg("train")
                .args([
                    "--config",
                    configs().join(format!("{preset}.toml")).to_str().unwrap(),
                ])
                .args(["--run-dir", run.to_str().unwrap()])
                .args(sets(&[
                    "trainer.steps=2",
                    "eval.before=false",
                    "eval.after=false",
                ])),
        );
        assert_eq!(summary["algorithm"], preset);
        let metrics = read_lines(&run.join("metrics.jsonl"));
        assert_eq!(metrics.len(), 2, "{preset}");
        for m in &metrics {
            let loss = m["actor/loss"].as_f64().unwrap_or(f64::NAN);
            assert!(loss.is_finite(), "{preset}: {m}");
            assert_eq!(m["actor/skipped_updates"], 0, "{preset}: {m}");
            assert!(m["actor/updates"].as_u64().unwrap() >= 1, "{preset}: {m}");
            if preset.starts_with("grpo_") {
                // the mismatch metrics of the rollout correction
                assert!(m["rollout_corr/kl"].is_number(), "{preset}: {m}");
            }
        }
    }
}

/// Every estimator of the registry (as `rlvr algorithms --json` lists it) trains through
/// `--set algorithm.adv_estimator=NAME`, and the phases its needs name run: GDPO reads the
/// main job's two verifier parts, the optimal token baselines get the old log-prob pass.
#[test]
fn every_registered_estimator_trains_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let out = rlvr(&cache)
        .args(["algorithms", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let estimators = reg["adv_estimators"].as_array().unwrap();
    assert_eq!(estimators.len(), 15);
    for e in estimators {
        let name = e["name"].as_str().unwrap();
        let needs: Vec<&str> = e["needs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        if needs.contains(&"critic") || needs.contains(&"greedy baseline") {
            continue; // the ppo and remax presets train in their own tests
        }
        let run = tmp.path().join(name);
        let est = format!("algorithm.adv_estimator={name}");
        run_json(
            rlvr(&cache)
                .arg("train")
                .args(["--run-dir", run.to_str().unwrap()])
                .args(sets(&[
                    &est,
                    "trainer.steps=2",
                    "eval.before=false",
                    "eval.after=false",
                ])),
        );
        let metrics = read_lines(&run.join("metrics.jsonl"));
        assert_eq!(metrics.len(), 2, "{name}");
        for m in &metrics {
            let loss = m["actor/loss"].as_f64().unwrap_or(f64::NAN);
            assert!(loss.is_finite(), "{name}: {m}");
            assert!(m["actor/advantage_abs_mean"].is_number(), "{name}: {m}");
            assert_eq!(
                m["timing/old_logprob_s"].is_number(),
                needs.contains(&"old log-probs"),
                "{name}: {m}"
            );
            if name == "gdpo" {
                assert_eq!(m["reward/gdpo_components"], 2.0, "{m}");
            }
        }
    }
    let bad = rlvr(&cache)
        .arg("train")
        .args(["--run-dir", tmp.path().join("bad").to_str().unwrap()])
        .args(sets(&["algorithm.adv_estimator=grpo_pass_k"]))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("grpo_passk") && err.contains("optimal_token_baseline"),
        "{err}"
    );
}
