//! One RL step at the library level: a verifier that returns NaN scores makes the loss
//! non-finite, and the step is skipped (counted, weights untouched) instead of corrupting the
//! policy; with a sane verifier the same step updates the weights.

use std::sync::Arc;

use candle_core::Device;
use rlvr_data::tasks::{ArithmeticConfig, ArithmeticTask};
use rlvr_loop::builtin::{self, BuiltinModelConfig};
use rlvr_loop::prompts::PromptSource;
use rlvr_loop::trainer::Trainer;
use rlvr_loop::verify_pool::Verifiers;
use rlvr_loop::TrainConfig;
use rlvr_model::ModelDir;
use rlvr_train::optim::AdamW;
use rlvr_verify::{Outcome, Status, Verifier, VerifyInput};

struct NanScore;

impl Verifier for NanScore {
    fn name(&self) -> &str {
        "nan"
    }
    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        // Half NaN, half a real score, so the group has variance.
        let score = if input.response.len().is_multiple_of(2) {
            f32::NAN
        } else {
            1.0
        };
        Outcome {
            score,
            status: Status::Incorrect,
            details: serde_json::json!({}),
        }
    }
}

fn weights(md: &ModelDir) -> Vec<f32> {
    md.model
        .vars()
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_non_finite_loss_skips_the_update_and_training_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let small = BuiltinModelConfig {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        ..BuiltinModelConfig::default()
    };
    builtin::create(tmp.path(), &small, 3).unwrap();
    let md = ModelDir::load(tmp.path(), &Device::Cpu, None).unwrap();
    let mut cfg = TrainConfig::default();
    cfg.rollout.prompts_per_step = 2;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 12;
    cfg.algorithm.kl.use_kl_loss = false;
    let source = PromptSource::Arithmetic {
        task: ArithmeticTask::new(ArithmeticConfig::default()).unwrap(),
        seed: 0,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut opt = AdamW::new(md.model.vars(), cfg.algorithm.optim).unwrap();
    let nan = Verifiers::single(Arc::new(NanScore));
    let before = weights(&md);
    let mut trainer = Trainer {
        cfg: &cfg,
        policy: &md,
        reference: None,
        opt: &mut opt,
        verifiers: &nan,
        source: &source,
        rt: &rt,
        data_pos: 0,
    };
    let out = trainer.step(0).unwrap();
    assert_eq!(out.metrics["actor/skipped_updates"], 1, "{:?}", out.metrics);
    assert_eq!(out.metrics["actor/updates"], 0);
    assert_eq!(
        weights(&md),
        before,
        "a skipped update must not touch the weights"
    );

    // The run goes on: the next step with a sane verifier updates the policy.
    let sane = Verifiers::new(&serde_json::json!("math"), &Default::default()).unwrap();
    trainer.verifiers = &sane;
    let out = trainer.step(1).unwrap();
    assert_eq!(out.metrics["actor/skipped_updates"], 0);
    assert_eq!(out.metrics["actor/updates"], 1);
    assert_ne!(weights(&md), before);
    assert_eq!(trainer.data_pos, 4, "two steps of two prompts");
}
