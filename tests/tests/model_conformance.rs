//! The model core against PyTorch/transformers: every `reference.json` in
//! `../shared/fixtures/tiny-*` (see `../shared/fixtures/README.md` for how they were made).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rlvr_conformance::{f64s, read_json, require_shared, u32_rows, u32s};
use rlvr_model::{Batch, KvCache, Mode, ModelDir};
use serde_json::Value;

fn fixture(name: &str) -> Option<(PathBuf, Value)> {
    let dir = require_shared(&format!("fixtures/{name}"))?;
    let reference = read_json(&dir.join("reference.json"));
    Some((dir, reference))
}

fn load(dir: &Path) -> ModelDir {
    ModelDir::load(dir, &Device::Cpu, Some(DType::F32))
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

/// max |a − b| over two tensors of the same shape.
fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn reference_batch(reference: &Value, dev: &Device) -> (Batch, Vec<Vec<u32>>) {
    let ids = u32_rows(&reference["batch"]["input_ids"]);
    let mask = u32_rows(&reference["batch"]["attention_mask"]);
    (Batch::from_padded(&ids, &mask, dev).unwrap(), mask)
}

fn check_tokenizer(name: &str) {
    let Some((dir, reference)) = fixture(name) else {
        return;
    };
    let m = load(&dir);
    for case in reference["encode"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            m.tokenizer.encode(text, false).unwrap(),
            u32s(&case["ids"]),
            "{name}: encode {text:?}"
        );
    }
    let chat = &reference["chat"];
    let messages = chat["messages"].as_array().unwrap();
    let add = chat["add_generation_prompt"].as_bool().unwrap();
    let text = m
        .tokenizer
        .apply_chat_template(messages, add, None)
        .unwrap();
    assert_eq!(
        text,
        chat["text"].as_str().unwrap(),
        "{name}: chat template text"
    );
    assert_eq!(
        m.tokenizer.encode_chat(messages, add).unwrap(),
        u32s(&chat["ids"]),
        "{name}: chat ids"
    );
}

/// Batch log-probs (both modes) and sequence-0 logits within 1e-4; returns the worst errors.
fn check_batch(name: &str) -> Option<(f64, f64)> {
    let (dir, reference) = fixture(name)?;
    let m = load(&dir);
    let (batch, mask) = reference_batch(&reference, &Device::Cpu);
    let expected = &reference["batch"]["next_token_logprobs"];
    let mut worst_lp: f64 = 0.0;
    for mode in [Mode::Infer, Mode::Train] {
        let lp = m
            .model
            .token_logprobs(&batch, mode)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let lp = lp.to_vec2::<f64>().unwrap();
        for (i, exp) in expected.as_array().unwrap().iter().enumerate() {
            let exp = f64s(exp);
            let n = mask[i].iter().filter(|&&x| x == 1).count() - 1;
            assert_eq!(exp.len(), n, "{name}: reference length of row {i}");
            let err = max_abs_diff(&lp[i][..n], &exp);
            assert!(
                err <= 1e-4,
                "{name} {mode:?}: row {i} log-prob error {err:e}"
            );
            worst_lp = worst_lp.max(err);
        }
    }
    let logits = m.model.forward(&batch, None, Mode::Infer).unwrap();
    let seq0 = logits
        .get(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let mut worst_logit: f64 = 0.0;
    for (t, row) in reference["batch"]["logits_seq0"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        worst_logit = worst_logit.max(max_abs_diff(&seq0[t], &f64s(row)));
    }
    assert!(worst_logit <= 1e-4, "{name}: logits error {worst_logit:e}");
    eprintln!("{name}: max |Δ log-prob| = {worst_lp:.2e}, max |Δ logit| = {worst_logit:.2e}");
    Some((worst_lp, worst_logit))
}

fn check_greedy(name: &str) {
    let Some((dir, reference)) = fixture(name) else {
        return;
    };
    let m = load(&dir);
    let cases = reference["greedy"].as_array().unwrap();
    // One prompt at a time (as the reference was made) and all together (left-padded batch).
    let prompts: Vec<Vec<u32>> = cases.iter().map(|c| u32s(&c["prompt_ids"])).collect();
    let expected: Vec<Vec<u32>> = cases.iter().map(|c| u32s(&c["new_ids"])).collect();
    for (p, e) in prompts.iter().zip(&expected) {
        let got = m
            .model
            .greedy(std::slice::from_ref(p), e.len(), &[])
            .unwrap();
        assert_eq!(&got[0], e, "{name}: greedy continuation of {p:?}");
    }
    let got = m.model.greedy(&prompts, expected[0].len(), &[]).unwrap();
    assert_eq!(got, expected, "{name}: batched greedy");
}

/// The reference policy-gradient step: loss, gradient norms and heads, AdamW update.
fn check_train_step(name: &str) {
    let Some((dir, reference)) = fixture(name) else {
        return;
    };
    let m = load(&dir);
    let dev = Device::Cpu;
    let (batch, mask) = reference_batch(&reference, &dev);
    let step = &reference["train_step"];
    let (b, t) = (batch.batch, batch.seq);
    let weights: Vec<f32> = step["weights"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| f64s(r).into_iter().map(|x| x as f32))
        .collect();
    let weights = Tensor::from_vec(weights, (b, t - 1), &dev).unwrap();
    let target_mask: Vec<f32> = mask
        .iter()
        .flat_map(|r| r[1..].iter().map(|&x| x as f32))
        .collect();
    let target_mask = Tensor::from_vec(target_mask, (b, t - 1), &dev).unwrap();

    // The loss is reduced in f64 so that the check measures the model, not the summation.
    let lp = m.model.token_logprobs(&batch, Mode::Train).unwrap();
    let lp = lp.to_dtype(DType::F64).unwrap();
    let (weights, target_mask) = (
        weights.to_dtype(DType::F64).unwrap(),
        target_mask.to_dtype(DType::F64).unwrap(),
    );
    let terms = ((lp * &weights).unwrap() * &target_mask).unwrap();
    let count = target_mask.sum_all().unwrap().to_scalar::<f64>().unwrap();
    let loss = (terms.sum_all().unwrap().neg().unwrap() / count).unwrap();
    let got_loss = loss.to_scalar::<f64>().unwrap();
    let exp_loss = step["loss"].as_f64().unwrap();
    // Relative to the mean |term| (~5), not to the loss: the weighted terms nearly cancel
    // (loss 0.01–0.06), so a bound relative to the loss would sit below one f32 rounding step
    // of a single log-prob and depend on the machine's matrix kernels.
    let scale = terms
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        / count;
    let rel = (got_loss - exp_loss).abs() / scale;
    assert!(
        rel <= 1e-5,
        "{name}: loss {got_loss} vs {exp_loss} (error {rel:e} of the mean |term| {scale})"
    );

    let grads = loss.backward().unwrap();
    let exp_grads = step["grads"].as_object().unwrap();
    assert_eq!(
        exp_grads.len(),
        m.model.named_vars().len(),
        "{name}: parameter count"
    );
    let (mut worst_norm, mut worst_head): (f64, f64) = (0.0, 0.0);
    for (pname, var) in m.model.named_vars() {
        let exp = exp_grads
            .get(pname)
            .unwrap_or_else(|| panic!("{name}: reference lacks {pname}"));
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
        let flat = g
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let l2 = flat.iter().map(|x| x * x).sum::<f64>().sqrt();
        let exp_l2 = exp["l2"].as_f64().unwrap();
        let rel = (l2 - exp_l2).abs() / exp_l2.abs().max(1e-30);
        assert!(
            rel <= 1e-4,
            "{name}: gradient norm of {pname}: {l2} vs {exp_l2} (rel {rel:e})"
        );
        worst_norm = worst_norm.max(rel);
        let head = f64s(&exp["head"]);
        let scale = head.iter().fold(0.0f64, |a, x| a.max(x.abs())).max(1e-12);
        let err = max_abs_diff(&flat[..head.len()], &head) / scale;
        assert!(
            err <= 1e-4,
            "{name}: gradient head of {pname} (rel. to its largest entry: {err:e})"
        );
        worst_head = worst_head.max(err);
    }

    let h = &step["adamw"];
    let betas = f64s(&h["betas"]);
    // rlvr's own AdamW (the one the trainer checkpoints), against PyTorch's update.
    let mut opt = rlvr_train::optim::AdamW::new(
        m.model.vars(),
        rlvr_train::optim::OptimConfig {
            lr: h["lr"].as_f64().unwrap(),
            beta1: betas[0],
            beta2: betas[1],
            eps: h["eps"].as_f64().unwrap(),
            weight_decay: h["weight_decay"].as_f64().unwrap(),
            grad_clip: None,
            schedule: rlvr_train::optim::LrSchedule::Constant,
        },
    )
    .unwrap();
    opt.step(grads).unwrap();
    let mut worst_param: f64 = 0.0;
    for (pname, var) in m.model.named_vars() {
        let head = f64s(&step["params_after_head"][pname.as_str()]);
        let flat = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let err = max_abs_diff(&flat[..head.len()], &head);
        assert!(err <= 1e-5, "{name}: {pname} after AdamW: error {err:e}");
        worst_param = worst_param.max(err);
    }
    eprintln!(
        "{name}: loss rel err {rel:.2e}; grad-norm rel err ≤ {worst_norm:.2e}; grad-head err ≤ {worst_head:.2e}; params after AdamW ≤ {worst_param:.2e}"
    );
}

/// Silent gradient loss is the failure mode of candle models: every parameter must get a
/// non-zero gradient from a plain log-likelihood loss.
fn check_all_params_get_gradients(name: &str) {
    let Some((dir, reference)) = fixture(name) else {
        return;
    };
    let m = load(&dir);
    let (batch, _) = reference_batch(&reference, &Device::Cpu);
    let loss = m
        .model
        .token_logprobs(&batch, Mode::Train)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap();
    let grads = loss.backward().unwrap();
    for (pname, var) in m.model.named_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: {pname} received no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: {pname} gradient norm² = {norm}"
        );
    }
}

/// Prefill half a batch of sequences, then decode the rest one token at a time: the logits
/// equal those of one full forward pass.
fn check_kv_cache(name: &str) {
    let Some((dir, reference)) = fixture(name) else {
        return;
    };
    let m = load(&dir);
    let dev = Device::Cpu;
    let ids = u32_rows(&reference["batch"]["input_ids"]);
    let mask = u32_rows(&reference["batch"]["attention_mask"]);
    let seqs: Vec<Vec<u32>> = ids
        .iter()
        .zip(&mask)
        .map(|(r, m)| r[..m.iter().filter(|&&x| x == 1).count()].to_vec())
        .collect();
    let shortest = seqs.iter().map(Vec::len).min().unwrap();
    let prefix = shortest / 2;
    let steps = shortest - prefix;
    let full: Vec<Vec<u32>> = seqs.iter().map(|s| s[..shortest].to_vec()).collect();
    let full_batch = Batch::right_padded(&full, 0, &dev).unwrap();
    let full_logits = m.model.forward(&full_batch, None, Mode::Infer).unwrap();

    let mut cache = KvCache::new(m.model.config(), 4);
    let pre: Vec<Vec<u32>> = full.iter().map(|s| s[..prefix].to_vec()).collect();
    let pre_logits = m
        .model
        .forward(
            &Batch::right_padded(&pre, 0, &dev).unwrap(),
            Some(&mut cache),
            Mode::Infer,
        )
        .unwrap();
    let mut worst = max_abs(&pre_logits, &full_logits.narrow(1, 0, prefix).unwrap());
    for s in 0..steps {
        let pos = prefix + s;
        let toks: Vec<u32> = full.iter().map(|r| r[pos]).collect();
        let step = Batch::step(&toks, &vec![pos as u32; toks.len()], &dev).unwrap();
        let logits = m
            .model
            .forward(&step, Some(&mut cache), Mode::Infer)
            .unwrap();
        let err = max_abs(&logits, &full_logits.narrow(1, pos, 1).unwrap());
        worst = worst.max(err);
    }
    assert_eq!(cache.len(), shortest);
    assert!(
        worst <= 1e-4,
        "{name}: KV-cache decoding differs from a full forward by {worst:e}"
    );
    eprintln!("{name}: KV cache vs full forward: {worst:.2e} over {steps} steps");
}

/// save → load gives the same tensors bit for bit, and the same config and tokenizer.
fn check_save_roundtrip(name: &str) {
    let Some((dir, _)) = fixture(name) else {
        return;
    };
    let m = load(&dir);
    let out = tempfile::tempdir().unwrap();
    rlvr_model::save::save_model(&m.model, out.path(), None, Some(&dir)).unwrap();
    let back = load(out.path());
    assert_eq!(back.model.named_vars().len(), m.model.named_vars().len());
    for ((n1, v1), (n2, v2)) in m.model.named_vars().iter().zip(back.model.named_vars()) {
        assert_eq!(n1, n2);
        let a = v1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = v2.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name}: {n1} changed in the round trip"
        );
    }
    assert_eq!(
        back.model.config().raw["tie_word_embeddings"],
        m.model.config().raw["tie_word_embeddings"]
    );
    assert_eq!(back.stop_ids(), m.stop_ids());
    let text = "round trip <|im_end|>";
    assert_eq!(
        back.tokenizer.encode(text, false).unwrap(),
        m.tokenizer.encode(text, false).unwrap()
    );
    // no temporary file is left behind
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "left over: {name}");
    }
}

macro_rules! fixture_tests {
    ($($module:ident => $name:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn tokenizer_and_chat_template() { super::check_tokenizer($name) }
            #[test]
            fn batch_logprobs_and_logits() { super::check_batch($name); }
            #[test]
            fn greedy_continuations() { super::check_greedy($name) }
            #[test]
            fn train_step_matches_pytorch() { super::check_train_step($name) }
            #[test]
            fn every_parameter_gets_a_gradient() { super::check_all_params_get_gradients($name) }
            #[test]
            fn kv_cache_equals_full_forward() { super::check_kv_cache($name) }
            #[test]
            fn save_load_roundtrip_is_exact() { super::check_save_roundtrip($name) }
        }
    )*};
}

fixture_tests! {
    qwen2 => "tiny-qwen2",
    llama => "tiny-llama",
    qwen3 => "tiny-qwen3",
    llama3rope => "tiny-llama3rope",
}

#[test]
fn bf16_sharded_batch_logprobs() {
    let Some((dir, reference)) = fixture("tiny-llama-bf16-sharded") else {
        return;
    };
    let m = load(&dir);
    assert_eq!(m.stored_dtype, DType::BF16);
    let (batch, mask) = reference_batch(&reference, &Device::Cpu);
    let lp = m
        .model
        .token_logprobs(&batch, Mode::Infer)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let mut worst: f64 = 0.0;
    for (i, exp) in reference["batch"]["next_token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let exp = f64s(exp);
        let n = mask[i].iter().filter(|&&x| x == 1).count() - 1;
        worst = worst.max(max_abs_diff(&lp[i][..n], &exp));
    }
    assert!(worst <= 1e-4, "bf16 sharded: log-prob error {worst:e}");
    eprintln!("tiny-llama-bf16-sharded: max |Δ log-prob| = {worst:.2e}");
}

#[test]
fn llama3_rope_scaling_matters() {
    // Dropping the llama3 scaling must change the log-probs (the fixture is built so that it
    // does, by up to 0.5): guards against a loader that ignores `rope_scaling`.
    let Some((dir, reference)) = fixture("tiny-llama3rope") else {
        return;
    };
    let m = load(&dir);
    assert_eq!(m.model.config().rope_scaling.name(), "llama3");
    let mut raw = m.model.config().raw.clone();
    raw["rope_scaling"] = Value::Null;
    let cfg = rlvr_model::ModelConfig::from_value(raw, &dir.join("config.json")).unwrap();
    let ckpt = rlvr_model::Checkpoint::open(&dir).unwrap();
    let plain = rlvr_model::CausalLm::from_tensors(cfg, &Device::Cpu, DType::F32, |n, s| {
        ckpt.load(n, s, DType::F32, &Device::Cpu)
    })
    .unwrap();
    let (batch, _) = reference_batch(&reference, &Device::Cpu);
    let a = m.model.token_logprobs(&batch, Mode::Infer).unwrap();
    let b = plain.token_logprobs(&batch, Mode::Infer).unwrap();
    let diff = max_abs(&a, &b);
    assert!(
        diff > 0.05,
        "llama3 scaling changed log-probs by only {diff}"
    );
}

#[test]
fn chunked_inference_logprobs_equal_train_mode() {
    // More positions than one inference chunk (512): the chunked path must agree with the
    // single projection of train mode.
    let Some((dir, _)) = fixture("tiny-qwen2") else {
        return;
    };
    let m = load(&dir);
    let seqs: Vec<Vec<u32>> = (0..5u32)
        .map(|r| (0..150u32).map(|i| (i * 7 + r * 13) % 509).collect())
        .collect();
    let batch = Batch::right_padded(&seqs, 0, &Device::Cpu).unwrap();
    let a = m.model.token_logprobs(&batch, Mode::Infer).unwrap();
    let b = m.model.token_logprobs(&batch, Mode::Train).unwrap();
    assert_eq!(a.dims(), &[5, 149]);
    let diff = max_abs(&a, &b);
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn reduced_precision_paths() {
    // bf16 and f16 compute run and stay close to f32; a checkpoint saved in f16 reloads as the
    // f16-rounded weights.
    let Some((dir, reference)) = fixture("tiny-llama") else {
        return;
    };
    let m32 = load(&dir);
    let (batch, _) = reference_batch(&reference, &Device::Cpu);
    let base = m32.model.token_logprobs(&batch, Mode::Infer).unwrap();
    for dtype in [DType::BF16, DType::F16] {
        let m = ModelDir::load(&dir, &Device::Cpu, Some(dtype)).unwrap();
        for mode in [Mode::Infer, Mode::Train] {
            let lp = m.model.token_logprobs(&batch, mode).unwrap();
            let diff = max_abs(&lp, &base);
            assert!(
                diff.is_finite() && diff < 0.15,
                "{dtype:?} {mode:?}: {diff}"
            );
        }
    }
    let out = tempfile::tempdir().unwrap();
    rlvr_model::save::save_model(&m32.model, out.path(), Some(DType::F16), Some(&dir)).unwrap();
    let back = load(out.path());
    assert_eq!(back.stored_dtype, DType::F16);
    assert_eq!(back.model.config().raw["torch_dtype"], "float16");
    for ((name, a), (_, b)) in m32.model.named_vars().iter().zip(back.model.named_vars()) {
        let rounded = a
            .to_dtype(DType::F16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let d = max_abs(&rounded, b.as_tensor());
        assert_eq!(d, 0.0, "{name}");
    }
}

#[test]
fn kv_cache_row_selection_keeps_the_kept_rows_exact() {
    // Decode three rows, drop the middle one from the cache, continue: the kept rows' logits
    // equal those of a cache that never held the dropped row.
    let Some((dir, _)) = fixture("tiny-llama") else {
        return;
    };
    let m = load(&dir);
    let dev = Device::Cpu;
    let prompts = vec![vec![5u32, 9, 30, 41], vec![7, 8], vec![100, 200, 300]];
    let mut cache = KvCache::new(m.model.config(), 8);
    m.model
        .forward_last(
            &Batch::left_padded(&prompts, 0, &dev).unwrap(),
            Some(&mut cache),
            Mode::Infer,
        )
        .unwrap();
    cache.select_rows(&[2, 0]).unwrap();
    assert_eq!(cache.batch_size(), 2);
    let step = Batch::step(&[17, 18], &[3, 4], &dev).unwrap();
    let got = m
        .model
        .forward_last(&step, Some(&mut cache), Mode::Infer)
        .unwrap();

    let kept = vec![prompts[2].clone(), prompts[0].clone()];
    let mut fresh = KvCache::new(m.model.config(), 8);
    m.model
        .forward_last(
            &Batch::left_padded(&kept, 0, &dev).unwrap(),
            Some(&mut fresh),
            Mode::Infer,
        )
        .unwrap();
    let want = m
        .model
        .forward_last(&step, Some(&mut fresh), Mode::Infer)
        .unwrap();
    let diff = max_abs(&got, &want);
    assert!(diff < 1e-5, "{diff}");
    assert!(cache.select_rows(&[5]).is_err());
}
