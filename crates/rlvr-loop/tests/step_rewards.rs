//! Step scores as token-level rewards: a verifier reporting per-step scores (`steps` +
//! `step_end_bytes`, what a PRM reports) gets them placed on the tokens where its steps end,
//! the rest of the reward staying on the last token; and a REINFORCE++ step runs with them.

use std::sync::Arc;

use candle_core::Device;
use rlvr_data::tasks::{ArithmeticConfig, ArithmeticTask};
use rlvr_loop::builtin::{self, BuiltinModelConfig};
use rlvr_loop::prompts::PromptSource;
use rlvr_loop::step_rewards::StepRewardMode;
use rlvr_loop::trainer::{token_rewards, Sample, Trainer};
use rlvr_loop::TrainConfig;
use rlvr_model::ModelDir;
use rlvr_rewards::Verifiers;
use rlvr_rollout::{Completion, FinishReason};
use rlvr_train::advantages::AdvantageEstimator;
use rlvr_train::optim::AdamW;
use rlvr_verify::compose::{Part, WeightedSum};
use rlvr_verify::{Outcome, Status, Verifier, VerifyInput};
use serde_json::json;

/// A stand-in PRM: the response's lines are its steps; a step scores 1 when it contains a
/// digit, else 0.25; the aggregate is the minimum (details in the PRM verifier's format).
struct LinePrm;

impl Verifier for LinePrm {
    fn name(&self) -> &str {
        "line_prm"
    }
    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let (mut steps, mut ends, mut at) = (Vec::new(), Vec::new(), 0usize);
        for piece in input.response.split('\n') {
            at += piece.len();
            if !piece.is_empty() {
                steps.push(if piece.chars().any(|c| c.is_ascii_digit()) {
                    1.0f32
                } else {
                    0.25
                });
                ends.push(at);
            }
            at += 1;
        }
        let score = steps.iter().copied().fold(1.0f32, f32::min);
        Outcome {
            score,
            status: Status::Correct,
            details: json!({"kind": "prm", "steps": steps, "step_end_bytes": ends}),
        }
    }
}

fn tiny() -> BuiltinModelConfig {
    BuiltinModelConfig {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        ..BuiltinModelConfig::default()
    }
}

fn sample(md: &ModelDir, text: &str, outcome: Outcome, reward: f64) -> Sample {
    let tokens = md.tokenizer.encode(text, false).unwrap();
    Sample {
        key: 0,
        prompt_ids: Arc::new(vec![1, 2]),
        prompt_text: Arc::new("q".into()),
        data_source: "t".into(),
        completion: Completion {
            prompt_index: 0,
            sample_index: 0,
            prompt_len: 2,
            logprobs: vec![0.0; tokens.len()],
            sampler_logprobs: vec![0.0; tokens.len()],
            text: text.into(),
            tokens,
            finish_reason: FinishReason::StopId,
            stop_string: None,
            stop_offset: None,
            truncated: false,
        },
        outcome,
        reward,
        baseline: None,
    }
}

#[test]
fn step_scores_land_on_step_end_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    builtin::create(tmp.path(), &tiny(), 3).unwrap();
    let md = ModelDir::load(tmp.path(), &Device::Cpu, None).unwrap();
    // Byte-level tokenizer with single-token tags: "<think>" is one token.
    let text = "<think>1+2=3\nok\n4+5=9</think><answer>93</answer>";
    let prm: Arc<dyn Verifier> = Arc::new(LinePrm);
    let math: Arc<dyn Verifier> = Arc::new(rlvr_verify::math::MathVerifier::default());
    let sum = WeightedSum {
        parts: vec![Part::new(1.0, math), Part::new(0.5, prm)],
    };
    let gt = json!("93");
    let o = sum.verify(&VerifyInput {
        response: text,
        ground_truth: &gt,
        metadata: &json!({}),
    });
    // math 1 + 0.5 × min(1, 0.25, 1).
    assert!((o.score - 1.125).abs() < 1e-6, "{o:?}");
    // The shaped reward differs from the score (an overlong penalty, say): shaping stays.
    let s = sample(&md, text, o.clone(), o.score as f64 - 0.1);
    let n = s.completion.tokens.len();
    let r_max = n + 3;
    let tok = &md.tokenizer;

    let t = token_rewards(
        std::slice::from_ref(&s),
        r_max,
        StepRewardMode::Outcome,
        tok,
    )
    .unwrap();
    let (plain, mask) = (t.rewards, t.mask);
    assert_eq!((t.step_rewarded, t.steps_placed), (0, 0));
    assert!((plain[n - 1] - 1.025).abs() < 1e-6);
    assert_eq!(plain.iter().filter(|x| **x != 0.0).count(), 1);
    assert_eq!(mask.iter().sum::<f32>() as usize, n);
    assert!(mask[n..].iter().all(|m| *m == 0.0));

    let t = token_rewards(std::slice::from_ref(&s), r_max, StepRewardMode::Sum, tok).unwrap();
    assert_eq!((t.step_rewarded, t.steps_placed), (1, 3));
    let sum_r = t.rewards;
    // Step ends: "3" (token 5: "<think>" 1 2 + 2 = 3), "k" of "ok", and the last token.
    let ids = &s.completion.tokens;
    let at = |j: usize| tok.decode(&ids[j..=j], false).unwrap();
    let nonzero: Vec<(usize, f32)> = sum_r
        .iter()
        .enumerate()
        .filter(|(_, x)| **x != 0.0)
        .map(|(j, x)| (j, *x))
        .collect();
    assert_eq!(nonzero.len(), 3, "{nonzero:?}");
    assert_eq!((at(nonzero[0].0).as_str(), nonzero[0].1), ("3", 0.5));
    assert_eq!((at(nonzero[1].0).as_str(), nonzero[1].1), ("k", 0.125));
    assert_eq!(nonzero[2].0, n - 1);
    // Last token: reward − the PRM part's 0.5 × 0.25 + the last step's 0.5 × 1.
    assert!(
        (nonzero[2].1 - (1.025 - 0.125 + 0.5)).abs() < 1e-6,
        "{nonzero:?}"
    );

    let mean_r = token_rewards(std::slice::from_ref(&s), r_max, StepRewardMode::Mean, tok)
        .unwrap()
        .rewards;
    let total: f32 = mean_r.iter().sum();
    // The step rewards add up to 0.5 × mean(1, 0.25, 1) in place of 0.5 × min.
    assert!(
        (total - (1.025 - 0.125 + 0.5 * 0.75)).abs() < 1e-5,
        "{total}"
    );
}

#[test]
fn reinforce_plus_plus_trains_on_step_rewards() {
    let tmp = tempfile::tempdir().unwrap();
    builtin::create(tmp.path(), &tiny(), 3).unwrap();
    let md = ModelDir::load(tmp.path(), &Device::Cpu, None).unwrap();
    let mut cfg = TrainConfig::default();
    cfg.rollout.prompts_per_step = 2;
    cfg.rollout.n = 4;
    cfg.rollout.max_new_tokens = 12;
    cfg.algorithm.kl.use_kl_loss = false;
    cfg.algorithm.adv_estimator = AdvantageEstimator::ReinforcePlusPlus;
    cfg.trainer.step_rewards = StepRewardMode::Mean;
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
    let verifiers = Verifiers::single(Arc::new(LinePrm));
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
    let m = &out.metrics;
    assert_eq!(m["actor/updates"], 1, "{m:?}");
    // Every completion with text got step rewards (an empty one has no step).
    let frac = m["reward/step_rewarded_frac"].as_f64().unwrap();
    assert!(frac > 0.5, "{m:?}");
    assert!(m["reward/steps_per_response"].as_f64().unwrap() >= 1.0);
    assert!(m["actor/advantage_abs_mean"].as_f64().unwrap().is_finite());
}

/// GDPO's components are the parts of a `weighted_sum` outcome (a repeated verifier name gets
/// `#2`), with the parts' weights, plus the shaping left over when the reward differs from
/// the weighted sum; mixed outcomes fall back to the reward alone.
#[test]
fn gdpo_components_are_the_weighted_sum_parts() {
    use rlvr_loop::advantage::reward_components;
    use rlvr_train::EstimatorConfig;
    let tmp = tempfile::tempdir().unwrap();
    builtin::create(tmp.path(), &tiny(), 3).unwrap();
    let md = ModelDir::load(tmp.path(), &Device::Cpu, None).unwrap();
    let parts = |m: f64, f1: f64, f2: f64| Outcome {
        score: (m + 0.1 * f1 + 0.5 * f2) as f32,
        status: Status::Correct,
        details: json!({"parts": [
            {"verifier": "math", "weight": 1.0, "score": m},
            {"verifier": "format", "weight": 0.1, "score": f1},
            {"verifier": "format", "weight": 0.5, "score": f2},
        ]}),
    };
    let samples = vec![
        sample(&md, "a", parts(1.0, 0.0, 1.0), 1.5),
        sample(&md, "b", parts(0.0, 1.0, 0.0), 0.1),
    ];
    let mut cfg = EstimatorConfig::default();
    let c = reward_components(&samples, &mut cfg);
    assert_eq!(c.len(), 3);
    assert_eq!(c["math"], vec![1.0, 0.0]);
    assert_eq!(c["format"], vec![0.0, 1.0]);
    assert_eq!(c["format#2"], vec![1.0, 0.0]);
    assert_eq!(cfg.gdpo_reward_weights, Some(vec![1.0, 0.1, 0.5]));
    // an overlong penalty: the shaping is one more component with weight 1
    let mut shaped = samples.clone();
    shaped[1].reward -= 0.25;
    let mut cfg = EstimatorConfig::default();
    let c = reward_components(&shaped, &mut cfg);
    assert!((c["shaping"][1] + 0.25).abs() < 1e-9 && c["shaping"][0].abs() < 1e-9);
    assert_eq!(cfg.gdpo_reward_keys.as_ref().unwrap().len(), 4);
    // the user's keys are kept, weights untouched
    let mut cfg = EstimatorConfig {
        gdpo_reward_keys: Some(vec!["math".into()]),
        ..EstimatorConfig::default()
    };
    reward_components(&samples, &mut cfg);
    assert_eq!(cfg.gdpo_reward_keys, Some(vec!["math".to_string()]));
    assert_eq!(cfg.gdpo_reward_weights, None);
    // a sample without parts: the reward is the one component
    let mut mixed = samples.clone();
    mixed[1].outcome.details = json!({});
    let mut cfg = EstimatorConfig::default();
    let c = reward_components(&mixed, &mut cfg);
    assert_eq!(c.keys().collect::<Vec<_>>(), vec!["reward"]);
    assert_eq!(c["reward"], vec![1.5, 0.1]);
}
