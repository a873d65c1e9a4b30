//! GRPO with a reward model in the reward, end to end: a tiny ORM trained for a few steps on
//! arithmetic preference pairs and saved, then a short `rlvr train` run (the library entry
//! point) whose verifier is `0.5·math + 0.5·orm:DIR`. The run completes, rewards are finite,
//! the ORM's continuous scores show in the rewards (values outside `{0, 0.5, 1}`), and the
//! stored verifier details name the reward model. And REINFORCE++ with a PRM's step scores
//! as token-level rewards (`trainer.step_rewards = "mean"`): every rollout gets step rewards.

use candle_core::Device;
use rlvr_data::tasks::Split;
use rlvr_loop::builtin::{self, BuiltinModelConfig};
use rlvr_loop::{RunOptions, TrainConfig};
use rlvr_rm::arith::ArithRmData;
use rlvr_rm::{Example, RewardModel, RmTrainConfig};
use serde_json::json;

fn small() -> BuiltinModelConfig {
    BuiltinModelConfig {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        ..BuiltinModelConfig::default()
    }
}

/// Trains an ORM from the built-in architecture for a few Bradley–Terry steps on arithmetic
/// pairs and saves it at `out`.
fn tiny_orm(base: &std::path::Path, out: &std::path::Path) {
    builtin::create(base, &small(), 7).unwrap();
    let rm = RewardModel::load(base, &Device::Cpu).unwrap();
    let data = ArithRmData::new(2, 3, 1).unwrap();
    let examples: Vec<Example> = data
        .pairs(16, Split::Train)
        .into_iter()
        .map(|record| Example {
            path: Default::default(),
            line: 0,
            record,
        })
        .collect();
    let report = rlvr_rm::train(
        &rm,
        &examples,
        &RmTrainConfig {
            steps: 4,
            batch_size: 8,
            lr: 1e-3,
            log_every: 0,
            ..RmTrainConfig::default()
        },
        |_| {},
    )
    .unwrap();
    assert!(report.final_loss.is_finite(), "{report:?}");
    rm.save(out).unwrap();
}

#[test]
fn grpo_trains_with_an_orm_in_the_reward() {
    let tmp = tempfile::tempdir().unwrap();
    let orm_dir = tmp.path().join("orm");
    tiny_orm(&tmp.path().join("orm-base"), &orm_dir);
    rlvr_rm::register().unwrap();

    let mut cfg = TrainConfig {
        name: "grpo-orm".into(),
        ..TrainConfig::default()
    };
    cfg.model.builtin = small();
    cfg.warmup.enabled = false;
    cfg.warmup.cache_dir = Some(tmp.path().join("cache"));
    cfg.rollout.prompts_per_step = 2;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 16;
    cfg.trainer.steps = 2;
    cfg.trainer.micro_batch_size = 8;
    cfg.trainer.save_every = 0;
    cfg.eval.before = false;
    cfg.eval.after = false;
    cfg.data.heldout_size = 2;
    cfg.verifier = json!({
        "type": "weighted_sum",
        "parts": [
            {"weight": 0.5, "verifier": "math"},
            {"weight": 0.5, "verifier": format!("orm:{}", orm_dir.display())},
        ],
    });
    cfg.validate("test").unwrap();
    // The same spec from the command line (`rlvr train --set verifier={...}`).
    let set = format!(
        r#"verifier={{type = "weighted_sum", parts = [{{weight = 0.5, verifier = "math"}}, {{weight = 0.5, verifier = "orm:{}"}}]}}"#,
        orm_dir.display()
    );
    let from_cli = TrainConfig::from_toml("", "<test>", &[set]).unwrap();
    assert_eq!(from_cli.verifier, cfg.verifier);

    let run_dir = tmp.path().join("run");
    let summary = rlvr_loop::train(RunOptions {
        config: cfg,
        run_dir: Some(run_dir.clone()),
        ..RunOptions::default()
    })
    .unwrap();
    assert_eq!(summary["steps"], json!(2), "{summary}");

    // Metrics: one record per step, finite reward means.
    let metrics = rlvr_store::read_metrics(&run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 2, "{metrics:?}");
    for m in &metrics {
        let r = m["reward/mean"].as_f64().unwrap();
        assert!(r.is_finite() && (0.0..=1.0).contains(&r), "{m}");
    }

    // The stored rollouts: rewards in [0, 1], not only the values math alone could give, and
    // verifier details naming the reward model.
    let store = rlvr_store::Store::open(&run_dir.join("store")).unwrap();
    let mut rewards = Vec::new();
    let mut mentions = 0;
    for step in store.rollout_steps().unwrap() {
        for r in store.rollouts(step).unwrap() {
            let reward = r["reward"].as_f64().unwrap();
            assert!(reward.is_finite() && (0.0..=1.0).contains(&reward), "{r}");
            rewards.push(reward);
            let details = r["details"].to_string();
            if details.contains(&*orm_dir.display().to_string()) && details.contains("\"orm\"") {
                mentions += 1;
            }
        }
    }
    assert_eq!(
        rewards.len(),
        2 * 2 * 4,
        "two steps of 2 prompts × 4 samples"
    );
    let math_only = |x: f64| [0.0, 0.5, 1.0].iter().any(|v| (x - v).abs() < 1e-6);
    assert!(
        rewards.iter().any(|&x| !math_only(x)),
        "the ORM must contribute: {rewards:?}"
    );
    assert_eq!(
        mentions,
        rewards.len(),
        "every rollout's details name the ORM"
    );
}

/// A PRM trained for a few steps on arithmetic step labels, saved at `out`.
fn tiny_prm(base: &std::path::Path, out: &std::path::Path) {
    builtin::create(base, &small(), 8).unwrap();
    let mut rm = RewardModel::load(base, &Device::Cpu).unwrap();
    rm.settings.kind = rlvr_rm::RmKind::Prm;
    let data = ArithRmData::new(2, 3, 1).unwrap();
    let examples: Vec<Example> = data
        .step_siblings(8, Split::Train)
        .into_iter()
        .map(|record| Example {
            path: Default::default(),
            line: 0,
            record,
        })
        .collect();
    rlvr_rm::train(
        &rm,
        &examples,
        &RmTrainConfig {
            steps: 4,
            batch_size: 8,
            lr: 1e-3,
            log_every: 0,
            ..RmTrainConfig::default()
        },
        |_| {},
    )
    .unwrap();
    rm.save(out).unwrap();
}

#[test]
fn reinforce_plus_plus_trains_on_prm_step_rewards() {
    let tmp = tempfile::tempdir().unwrap();
    let prm_dir = tmp.path().join("prm");
    tiny_prm(&tmp.path().join("prm-base"), &prm_dir);
    rlvr_rm::register().unwrap();
    let sets = vec![
        "algorithm.preset=reinforce_plus_plus".to_string(),
        "algorithm.kl.use_kl_loss=false".to_string(),
        "trainer.step_rewards=mean".to_string(),
        format!(
            r#"verifier={{type = "weighted_sum", parts = [{{weight = 1.0, verifier = "math"}}, {{weight = 0.5, verifier = "prm:{}", normalize = "running", clip = 3.0}}]}}"#,
            prm_dir.display()
        ),
    ];
    let mut cfg = TrainConfig::load(None, &sets).unwrap();
    cfg.model.builtin = small();
    cfg.warmup.enabled = false;
    cfg.rollout.prompts_per_step = 2;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 16;
    cfg.trainer.steps = 2;
    cfg.trainer.micro_batch_size = 8;
    cfg.trainer.save_every = 0;
    cfg.eval.before = false;
    cfg.eval.after = false;
    cfg.data.heldout_size = 2;
    cfg.validate("test").unwrap();
    let run_dir = tmp.path().join("run");
    let summary = rlvr_loop::train(RunOptions {
        config: cfg,
        run_dir: Some(run_dir.clone()),
        ..RunOptions::default()
    })
    .unwrap();
    assert_eq!(summary["steps"], json!(2), "{summary}");
    let metrics = rlvr_store::read_metrics(&run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 2);
    for m in &metrics {
        // Every completion has at least one step (a PRM scores even an empty response as one).
        assert_eq!(m["reward/step_rewarded_frac"], json!(1.0), "{m}");
        assert!(
            m["reward/steps_per_response"].as_f64().unwrap() >= 1.0,
            "{m}"
        );
        assert!(
            m["actor/advantage_abs_mean"].as_f64().unwrap().is_finite(),
            "{m}"
        );
    }
    // The stored details carry the PRM's steps and their ends, normalised by the part.
    let store = rlvr_store::Store::open(&run_dir.join("store")).unwrap();
    let step = store.rollout_steps().unwrap()[0];
    for r in store.rollouts(step).unwrap() {
        let part = &r["details"]["parts"][1];
        assert!(part["norm"]["scale"].is_number(), "{r}");
        let d = &part["details"];
        assert_eq!(
            d["steps"].as_array().unwrap().len(),
            d["step_end_bytes"].as_array().unwrap().len(),
            "{r}"
        );
    }
}
