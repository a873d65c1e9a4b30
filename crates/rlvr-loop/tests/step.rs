//! One RL step at the library level: a verifier that returns NaN scores makes the loss
//! non-finite, and the step is skipped (counted, weights untouched) instead of corrupting the
//! policy; with a sane verifier the same step updates the weights.

use std::sync::Arc;

use candle_core::Device;
use rlvr_data::tasks::{ArithmeticConfig, ArithmeticTask};
use rlvr_loop::builtin::{self, BuiltinModelConfig};
use rlvr_loop::prompts::PromptSource;
use rlvr_loop::trainer::Trainer;
use rlvr_loop::TrainConfig;
use rlvr_model::ModelDir;
use rlvr_rewards::Verifiers;
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

/// A tiny built-in policy (in its own directory), the arithmetic prompts and a runtime for
/// the verifier pool.
struct Fixture {
    tmp: tempfile::TempDir,
    md: ModelDir,
    source: PromptSource,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let small = BuiltinModelConfig {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        ..BuiltinModelConfig::default()
    };
    builtin::create(tmp.path(), &small, 3).unwrap();
    let md = ModelDir::load(tmp.path(), &Device::Cpu, None).unwrap();
    let source = PromptSource::Arithmetic {
        task: ArithmeticTask::new(ArithmeticConfig::default()).unwrap(),
        seed: 0,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        tmp,
        md,
        source,
        rt,
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
    let Fixture {
        tmp: _tmp,
        md,
        source,
        rt,
    } = fixture();
    let mut cfg = TrainConfig::default();
    cfg.rollout.prompts_per_step = 2;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 12;
    cfg.algorithm.kl.use_kl_loss = false;
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
        critic: None,
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

/// Scores a response by its length modulo 3 (0, 0.5 or 1): deterministic, with spread.
struct LenScore;

impl Verifier for LenScore {
    fn name(&self) -> &str {
        "len"
    }
    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        Outcome {
            score: (input.response.len() % 3) as f32 / 2.0,
            status: Status::Incorrect,
            details: serde_json::json!({}),
        }
    }
}

#[test]
fn remax_uses_the_greedy_completions_reward_as_baseline() {
    let Fixture {
        tmp: _tmp,
        md,
        source,
        rt,
    } = fixture();
    let mut cfg = TrainConfig {
        algorithm: rlvr_train::AlgorithmConfig::preset("remax").unwrap(),
        ..TrainConfig::default()
    };
    cfg.algorithm.kl.use_kl_in_reward = false;
    cfg.algorithm.kl.use_kl_loss = false;
    cfg.rollout.prompts_per_step = 3;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 10;
    cfg.validate("test").unwrap();
    let mut opt = AdamW::new(md.model.vars(), cfg.algorithm.optim).unwrap();
    let verifiers = Verifiers::single(Arc::new(LenScore));

    // The greedy completions of the step's prompts, scored by hand.
    let tok = &md.tokenizer;
    let prompts: Vec<rlvr_rollout::Prompt> = (0..3u64)
        .map(|pos| {
            let ex = source.at(pos);
            let (_, ids) =
                rlvr_loop::prompts::prompt_text_and_ids(tok, &ex, cfg.data.chat_template).unwrap();
            rlvr_rollout::Prompt { ids, key: pos }
        })
        .collect();
    let greedy = rlvr_rollout::RolloutEngine::from_model_dir(&md)
        .generate_keyed(
            &prompts,
            &rlvr_rollout::SamplingParams {
                temperature: 0.0,
                n: 1,
                max_new_tokens: 10,
                max_prompt_len: Some(cfg.rollout.max_prompt_len),
                ..Default::default()
            },
        )
        .unwrap();
    let want: Vec<f64> = greedy
        .completions
        .iter()
        .map(|c| (rlvr_eval::jobs::response_text(c).len() % 3) as f64 / 2.0)
        .collect();

    let mut trainer = Trainer {
        cfg: &cfg,
        policy: &md,
        reference: None,
        opt: &mut opt,
        verifiers: &verifiers,
        source: &source,
        rt: &rt,
        data_pos: 0,
        critic: None,
    };
    let out = trainer.step(0).unwrap();
    assert_eq!(out.metrics["actor/updates"], 1, "{:?}", out.metrics);
    assert_eq!(out.samples.len(), 12);
    for s in &out.samples {
        let b = s.baseline.expect("every remax sample has a baseline");
        assert_eq!(
            b, want[s.completion.prompt_index],
            "{:?}",
            s.completion.text
        );
    }
    // Advantages are R − b on every token: their token mean is the length-weighted mean.
    let (mut num, mut den) = (0.0, 0.0);
    for s in &out.samples {
        let len = s.completion.tokens.len() as f64;
        num += len * (s.reward - s.baseline.unwrap());
        den += len;
    }
    let adv = out.metrics["actor/advantage_mean"].as_f64().unwrap();
    assert!((adv - num / den).abs() < 1e-5, "{adv} vs {}", num / den);
    let b = out.metrics["reward/greedy_baseline_mean"].as_f64().unwrap();
    assert!(
        (b - want.iter().sum::<f64>() / 3.0).abs() < 1e-9,
        "{b} {want:?}"
    );
}

#[test]
fn ppo_trains_its_critic_and_the_critic_round_trips() {
    let Fixture {
        tmp,
        md,
        source,
        rt,
    } = fixture();
    let mut cfg = TrainConfig {
        algorithm: rlvr_train::AlgorithmConfig::preset("ppo").unwrap(),
        ..TrainConfig::default()
    };
    cfg.algorithm.critic.as_mut().unwrap().optim.lr = 1e-2;
    cfg.rollout.prompts_per_step = 2;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 10;
    cfg.validate("test").unwrap();
    let mut opt = AdamW::new(md.model.vars(), cfg.algorithm.optim).unwrap();
    let critic_optim = cfg.algorithm.critic.as_ref().unwrap().optim;
    let mut critic = rlvr_loop::critic::Critic::new(
        ModelDir::load(tmp.path(), &Device::Cpu, None).unwrap(),
        critic_optim,
    )
    .unwrap();
    let verifiers = Verifiers::single(Arc::new(LenScore));
    let mut trainer = Trainer {
        cfg: &cfg,
        policy: &md,
        reference: None,
        opt: &mut opt,
        verifiers: &verifiers,
        source: &source,
        rt: &rt,
        data_pos: 0,
        critic: Some(&mut critic),
    };
    let first = trainer.step(0).unwrap().metrics;
    assert_eq!(first["actor/updates"], 1, "{first:?}");
    // The zero head values everything 0 at first; the value loss is then 0.5·mean(R_t²) > 0.
    assert_eq!(first["critic/values_mean"], 0.0, "{first:?}");
    assert!(first["critic/vf_loss"].as_f64().unwrap() > 0.0, "{first:?}");
    assert_eq!(first["critic/skipped_updates"], 0);
    let second = trainer.step(1).unwrap().metrics;
    assert_ne!(
        second["critic/values_mean"], 0.0,
        "the critic learned: {second:?}"
    );
    assert_eq!(critic.opt.steps(), 2);

    // Save and load: same values, same optimiser state.
    let dir = tmp.path().join("critic");
    critic.save(&dir).unwrap();
    let back = rlvr_loop::critic::Critic::load(&dir, &Device::Cpu, None, critic_optim).unwrap();
    assert_eq!(back.opt.steps(), 2);
    let rows: Vec<(&[u32], &[u32])> = vec![(&[5, 6, 7], &[8, 9]), (&[5], &[10, 11, 12])];
    let packed = rlvr_loop::batch::pack(&rows, 0, &Device::Cpu).unwrap();
    let a = critic
        .values(&packed, rlvr_model::Mode::Infer)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let b = back
        .values(&packed, rlvr_model::Mode::Infer)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(a, b);
    assert!(a.iter().flatten().any(|v| *v != 0.0));
    // The scalar-head format the reward model shares: a sequence classifier with `score.weight`.
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_labels"], 1);
    assert!(cfg["architectures"][0]
        .as_str()
        .unwrap()
        .ends_with("ForSequenceClassification"));
    assert!(!dir.join("value_head.safetensors").exists());
    // The optimiser's state file, damaged, is an error naming it.
    std::fs::write(dir.join("optimizer.safetensors"), b"nope").unwrap();
    let e = rlvr_loop::critic::Critic::load(&dir, &Device::Cpu, None, critic_optim)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("optimizer.safetensors"), "{e}");
}

#[test]
fn a_critic_of_the_earlier_format_loads() {
    // Before the scalar-head format: the backbone as a causal LM, the head [hidden, 1] in
    // `value_head.safetensors`, moments named `value_head.weight.exp_avg(_sq)`.
    let Fixture { tmp, md, .. } = fixture();
    let optim = rlvr_train::optim::OptimConfig::default();
    let dir = tmp.path().join("old-critic");
    rlvr_model::save::save_model(&md.model, &dir, None, Some(tmp.path())).unwrap();
    let h = md.model.config().hidden_size;
    let head: Vec<f32> = (0..h).map(|i| (i as f32 * 0.3).sin()).collect();
    let t = candle_core::Tensor::from_vec(head.clone(), (h, 1), &Device::Cpu).unwrap();
    safetensors::serialize_to_file(
        [("value_head.weight", &t)],
        None,
        &dir.join("value_head.safetensors"),
    )
    .unwrap();
    let mut tensors: Vec<(String, candle_core::Tensor)> = Vec::new();
    for (n, v) in md.model.named_vars() {
        let z = v.as_tensor().ones_like().unwrap();
        tensors.push((format!("{n}.exp_avg"), (&z * 0.5).unwrap()));
        tensors.push((format!("{n}.exp_avg_sq"), (&z * 0.25).unwrap()));
    }
    tensors.push(("value_head.weight.exp_avg".into(), (&t * 2.0).unwrap()));
    tensors.push(("value_head.weight.exp_avg_sq".into(), (&t * 3.0).unwrap()));
    let meta: std::collections::HashMap<String, String> =
        [("optimizer_steps".to_string(), "7".to_string())].into();
    safetensors::serialize_to_file(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(meta),
        &dir.join("optimizer.safetensors"),
    )
    .unwrap();
    let c = rlvr_loop::critic::Critic::load(&dir, &Device::Cpu, None, optim).unwrap();
    assert_eq!(c.opt.steps(), 7);
    assert_eq!(
        c.head()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        head
    );
    let st = c.opt.state();
    let (m, v) = st.moments.last().unwrap();
    assert_eq!(m.dims(), &[1, h]);
    let want: Vec<f32> = head.iter().map(|x| x * 3.0).collect();
    assert_eq!(v.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
    // Saved again, it is in the new format.
    c.save(&dir).unwrap();
    assert!(!dir.join("value_head.safetensors").exists());
    let back = rlvr_loop::critic::Critic::load(&dir, &Device::Cpu, None, optim).unwrap();
    assert_eq!(back.opt.steps(), 7);
    assert_eq!(
        back.head()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        head
    );
}
