//! Reward-model directories: head saving/loading round-trips, HF sequence-classification
//! checkpoints made from the fixture load, every parameter gets a gradient, the verifiers
//! are registered and score batched.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rlvr_model::Mode;
use rlvr_rm::{Aggregation, RewardModel, RmKind, ScoreInput};
use serde_json::{json, Value};

fn fixture() -> Option<std::path::PathBuf> {
    rlvr_conformance::require_shared("fixtures/tiny-qwen2")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn builtin(dir: &Path) {
    rlvr_loop::builtin::create(
        dir,
        &rlvr_loop::builtin::BuiltinModelConfig {
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            intermediate_size: 64,
            max_position_embeddings: 128,
            initializer_range: 0.02,
        },
        3,
    )
    .unwrap();
}

#[test]
fn a_sequence_classification_checkpoint_from_the_fixture_loads() {
    let Some(src) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cls = dir.path().join("cls");
    copy_dir(&src, &cls);
    // Make it a Qwen2ForSequenceClassification checkpoint: add `score.weight`, set the
    // architecture and one label, as transformers saves them.
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(cls.join("model.safetensors"), &Device::Cpu).unwrap();
    let hidden = tensors["model.embed_tokens.weight"].dim(1).unwrap();
    let head: Vec<f32> = (0..hidden)
        .map(|i| ((i as f32) * 0.37).sin() * 0.1)
        .collect();
    tensors.insert(
        "score.weight".into(),
        Tensor::from_vec(head.clone(), (1, hidden), &Device::Cpu).unwrap(),
    );
    tensors.remove("lm_head.weight");
    candle_core::safetensors::save(&tensors, cls.join("model.safetensors")).unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(cls.join("config.json")).unwrap()).unwrap();
    cfg["architectures"] = json!(["Qwen2ForSequenceClassification"]);
    cfg["id2label"] = json!({"0": "LABEL_0"});
    cfg["label2id"] = json!({"LABEL_0": 0});
    std::fs::write(cls.join("config.json"), cfg.to_string()).unwrap();

    let rm = RewardModel::load(&cls, &Device::Cpu).unwrap();
    assert!(!rm.head_was_initialised());
    assert_eq!(
        rm.head()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        head
    );
    // The ORM reads the head at the last token: the score is head · h_last.
    let prompt = json!("Hello");
    let ids = rm
        .encode_response(&rm.encode_prompt(&prompt).unwrap(), " world")
        .unwrap();
    let batch =
        rlvr_model::Batch::right_padded(std::slice::from_ref(&ids), 0, &Device::Cpu).unwrap();
    let h = rm
        .backbone()
        .hidden_states(&batch, None, Mode::Infer)
        .unwrap();
    let last: Vec<f32> = h
        .get(0)
        .unwrap()
        .get(ids.len() - 1)
        .unwrap()
        .to_vec1()
        .unwrap();
    let want: f32 = last.iter().zip(&head).map(|(a, b)| a * b).sum();
    let s = rm
        .score(&[ScoreInput {
            prompt: &prompt,
            response: " world",
        }])
        .unwrap();
    assert!((s[0].logit - want).abs() < 1e-4, "{} vs {want}", s[0].logit);
    // Right padding in a batch does not change a row's score.
    let s2 = rm
        .score(&[
            ScoreInput {
                prompt: &prompt,
                response: " world",
            },
            ScoreInput {
                prompt: &prompt,
                response: " world, and a longer response than the first",
            },
        ])
        .unwrap();
    assert!((s2[0].logit - s[0].logit).abs() < 1e-4);

    // A two-label classifier is refused, naming the field.
    cfg["id2label"] = json!({"0": "A", "1": "B"});
    std::fs::write(cls.join("config.json"), cfg.to_string()).unwrap();
    let e = RewardModel::load(&cls, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("num_labels"), "{e}");
}

#[test]
fn a_causal_lm_gets_a_fresh_head_and_saving_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    builtin(&base);
    let mut rm = RewardModel::load(&base, &Device::Cpu).unwrap();
    assert!(rm.head_was_initialised());
    let head0 = rm
        .head()
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(head0.iter().any(|&x| x != 0.0));
    // Deterministic initialisation.
    let again = RewardModel::load(&base, &Device::Cpu).unwrap();
    assert_eq!(
        again
            .head()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        head0
    );
    // Change the head, set PRM settings, save, load: same tensors, same settings, same scores.
    let new_head: Vec<f32> = (0..head0.len()).map(|i| i as f32 * 0.01 - 0.1).collect();
    rm.head()
        .set(&Tensor::from_vec(new_head.clone(), (1, head0.len()), &Device::Cpu).unwrap())
        .unwrap();
    rm.settings.kind = RmKind::Prm;
    rm.settings.aggregation = Aggregation::Product;
    rm.settings.step_separator = "\n\n".into();
    let out = dir.path().join("out/rm");
    rm.save(&out).unwrap();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["architectures"],
        json!(["Qwen2ForSequenceClassification"])
    );
    assert_eq!(cfg["num_labels"], json!(1));
    assert_eq!(cfg["rlvr_reward_model"]["kind"], json!("prm"));
    assert_eq!(cfg["rlvr_reward_model"]["aggregation"], json!("product"));
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let names: Vec<String> =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)
            .unwrap()
            .into_keys()
            .collect();
    assert!(names.contains(&"score.weight".to_string()));
    assert!(!names.contains(&"lm_head.weight".to_string()));
    let back = RewardModel::load(&out, &Device::Cpu).unwrap();
    assert!(!back.head_was_initialised());
    assert_eq!(back.settings, rm.settings);
    for ((n1, t1), (n2, t2)) in rm.named_tensors().iter().zip(back.named_tensors()) {
        assert_eq!(n1, &n2);
        let d = (t1 - &t2)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{n1}");
    }
    let prompt = json!([{"role": "user", "content": "12+34"}]);
    let resp = "<think>2+4=6\n\n1+3=4</think><answer>46</answer>";
    let item = [ScoreInput {
        prompt: &prompt,
        response: resp,
    }];
    let (a, b) = (rm.score(&item).unwrap(), back.score(&item).unwrap());
    assert_eq!(a, b);
    assert_eq!(a[0].steps.len(), 2);
    let prod = a[0].steps.iter().product::<f32>();
    assert!((a[0].score - prod).abs() < 1e-6);
    // Saving over an existing directory replaces it, leaving no temporary directories.
    back.save(&out).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["rm".to_string()]);
}

#[test]
fn every_parameter_gets_a_gradient() {
    let dir = tempfile::tempdir().unwrap();
    builtin(dir.path());
    let rm = RewardModel::load(dir.path(), &Device::Cpu).unwrap();
    let p = rm.encode_prompt(&json!("1+2")).unwrap();
    let seqs = vec![
        rm.encode_response(&p, "=3").unwrap(),
        rm.encode_response(&p, "=4, no").unwrap(),
    ];
    let reads = vec![vec![seqs[0].len() - 1], vec![1, seqs[1].len() - 1]];
    let logits = rm.logits_at(&seqs, &reads, Mode::Train).unwrap();
    assert_eq!(logits.dims(), &[3]);
    let loss = logits.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for v in rm.vars() {
        let g = grads.get(v.as_tensor()).expect("a gradient");
        let n = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            n > 0.0,
            "zero gradient for a parameter of shape {:?}",
            v.dims()
        );
    }
}

#[test]
fn orm_and_prm_verifiers_are_registered_and_batched() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("m");
    builtin(&base);
    let rm = RewardModel::load(&base, &Device::Cpu).unwrap();
    rm.save(&base).unwrap();
    rlvr_rm::register().unwrap();
    rlvr_rm::register().unwrap(); // idempotent
    let spec = format!("orm:{}", base.display());
    assert!(rlvr_verify::registry::is_known(&spec));
    let orm = rlvr_verify::registry::build(&spec).unwrap();
    let gt = json!("46");
    let meta = json!({"extra_info": {"a": 12, "b": 34, "op": "add"}});
    let input = rlvr_verify::VerifyInput {
        response: "<think>2+4=6\n1+3=4</think><answer>46</answer>",
        ground_truth: &gt,
        metadata: &meta,
    };
    let o = orm.verify(&input);
    assert!((0.0..=1.0).contains(&o.score), "{o:?}");
    assert_eq!(o.details["kind"], json!("orm"));
    // The arithmetic prompt is rebuilt from extra_info: same score as with an explicit prompt.
    let meta2 = json!({"prompt": [{"role": "user", "content": "12+34"}]});
    let o2 = orm.verify(&rlvr_verify::VerifyInput {
        metadata: &meta2,
        ..input
    });
    assert_eq!(o.score, o2.score);
    // The threshold decides the status.
    let strict = rlvr_verify::registry::from_spec(
        &json!({"type": "orm", "target": base, "threshold": 1.01}),
    )
    .unwrap();
    assert_eq!(strict.verify(&input).status, rlvr_verify::Status::Incorrect);
    let lax =
        rlvr_verify::registry::from_spec(&json!({"type": "orm", "target": base, "threshold": 0.0}))
            .unwrap();
    assert_eq!(lax.verify(&input).status, rlvr_verify::Status::Correct);
    // PRM: step scores and where they end; batched scores equal one-by-one scores.
    let prm = rlvr_rm::verifier::RmVerifier::new(
        RmKind::Prm,
        rlvr_rm::verifier::load_shared(&base).unwrap(),
        &rlvr_rm::RmVerifierConfig {
            aggregation: Some(Aggregation::Last),
            ..Default::default()
        },
    );
    let one = rlvr_verify::Verifier::verify(&prm, &input);
    assert_eq!(
        one.details["step_end_bytes"],
        json!([12, input.response.len()])
    );
    let steps: Vec<f32> = serde_json::from_value(one.details["steps"].clone()).unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(one.score, steps[1]);
    let other = rlvr_verify::VerifyInput {
        response: "<think>2+4=6</think><answer>6</answer>",
        ..input
    };
    // An empty response is one empty step, ending at byte 0.
    let empty = rlvr_verify::Verifier::verify(
        &prm,
        &rlvr_verify::VerifyInput {
            response: "",
            ..input
        },
    );
    assert_eq!(
        empty.details["steps"].as_array().unwrap().len(),
        1,
        "{empty:?}"
    );
    assert_eq!(empty.details["step_end_bytes"], json!([0]));
    let batch = prm.verify_batch(&[input, other]);
    assert!((batch[0].score - one.score).abs() < 1e-5);
    assert!((batch[1].score - rlvr_verify::Verifier::verify(&prm, &other).score).abs() < 1e-5);
    // A missing directory is a configuration error naming the field.
    let e = rlvr_verify::registry::build("prm:/nonexistent/rm")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("prm.target"), "{e}");
    // Mixed with a verifiable reward.
    let mixed = rlvr_verify::registry::from_spec(&json!({"type": "weighted_sum", "parts": [
        {"weight": 1.0, "verifier": "math"},
        {"weight": 0.5, "verifier": spec},
    ]}))
    .unwrap();
    let m = mixed.verify(&input);
    assert!((m.score - (1.0 + 0.5 * o.score)).abs() < 1e-5, "{m:?}");
}

#[test]
fn prm_reads_after_each_separator_and_at_the_last_steps_own_end() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("m");
    builtin(&base);
    let mut rm = RewardModel::load(&base, &Device::Cpu).unwrap();
    rm.settings.kind = RmKind::Prm;
    let prompt = vec![7u32, 8];
    let steps = vec!["12".to_string(), "345".to_string()];
    // Byte-level tokens: "12" "\n" "345".
    let (ids, reads) = rm.encode_steps(&prompt, &steps).unwrap();
    assert_eq!(ids.len(), 2 + 2 + 1 + 3);
    assert_eq!(
        reads,
        vec![4, 7],
        "the separator after step 0, the last token of step 1"
    );
    rm.settings.separator_after_last = true;
    let (ids, reads) = rm.encode_steps(&prompt, &steps).unwrap();
    assert_eq!(ids.len(), 2 + 2 + 1 + 3 + 1);
    assert_eq!(reads, vec![4, 8]);
    // An empty last step has no token of its own: it is read at a separator.
    rm.settings.separator_after_last = false;
    let (_, reads) = rm
        .encode_steps(&prompt, &["12".to_string(), String::new()])
        .unwrap();
    assert_eq!(reads, vec![4, 5]);
    // The setting is saved with the model.
    rm.settings.separator_after_last = true;
    let out = dir.path().join("saved");
    rm.save(&out).unwrap();
    assert!(
        RewardModel::load(&out, &Device::Cpu)
            .unwrap()
            .settings
            .separator_after_last
    );
}
