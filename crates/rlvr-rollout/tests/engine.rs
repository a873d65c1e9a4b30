//! The rollout engine on the tiny fixtures: greedy parity with `CausalLm::greedy`, seeded
//! reproducibility, recorded log-probs against the training recomputation, stops, truncation,
//! batching invariance, prompt filtering and two EOS ids.

use std::path::{Path, PathBuf};

use candle_core::{Device, D};
use rlvr_conformance::require_shared;
use rlvr_model::{Batch, Mode, ModelDir};
use rlvr_rollout::{
    log_softmax, EngineOptions, FinishReason, Prompt, RolloutEngine, SamplingParams,
};

fn load(rel: &str) -> Option<ModelDir> {
    let dir = require_shared(rel)?;
    Some(ModelDir::load(&dir, &Device::Cpu, None).expect("fixture loads"))
}

/// Prompts of different lengths (ids inside the 509-token vocabulary).
fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 17, 42, 99, 3],
        vec![7, 300],
        vec![11, 12, 13, 14, 15, 16, 17, 18, 19],
        vec![250],
    ]
}

fn sampling(t: f64, n: usize, max_new: usize, seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: t,
        n,
        max_new_tokens: max_new,
        seed,
        ..Default::default()
    }
}

#[test]
fn temperature_zero_equals_causal_lm_greedy() {
    for fixture in ["fixtures/tiny-qwen2", "fixtures/tiny-llama"] {
        let Some(md) = load(fixture) else { return };
        let engine = RolloutEngine::from_model_dir(&md);
        let ps = prompts();
        let expect = md.model.greedy(&ps, 24, &md.stop_ids()).unwrap();
        let got = engine.generate(&ps, &SamplingParams::greedy(24)).unwrap();
        assert_eq!(got.completions.len(), ps.len());
        for (c, e) in got.completions.iter().zip(&expect) {
            assert_eq!(&c.tokens, e, "{fixture} prompt {}", c.prompt_index);
            assert!(c.sampler_logprobs.iter().all(|&x| x == 0.0));
        }
        // top-k = 1 at any temperature is greedy too.
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 1,
            n: 2,
            max_new_tokens: 24,
            ..Default::default()
        };
        let got = engine.generate(&ps, &params).unwrap();
        for c in &got.completions {
            assert_eq!(c.tokens, expect[c.prompt_index], "{fixture} top-k 1");
        }
    }
}

#[test]
fn same_seed_same_tokens_different_seed_different() {
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let engine = RolloutEngine::from_model_dir(&md);
    let ps = prompts();
    let a = engine.generate(&ps, &sampling(1.0, 3, 20, 7)).unwrap();
    let b = engine.generate(&ps, &sampling(1.0, 3, 20, 7)).unwrap();
    let c = engine.generate(&ps, &sampling(1.0, 3, 20, 8)).unwrap();
    assert_eq!(a.completions, b.completions);
    let toks = |r: &rlvr_rollout::RolloutBatch| {
        r.completions
            .iter()
            .map(|c| c.tokens.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(toks(&a), toks(&c));
    // The G samples of one prompt use different streams.
    let first: Vec<_> = a.of_prompt(0).map(|c| c.tokens.clone()).collect();
    assert_eq!(first.len(), 3);
    assert!(first[0] != first[1] || first[1] != first[2]);
    assert_eq!(
        a.completions
            .iter()
            .map(|c| (c.prompt_index, c.sample_index))
            .collect::<Vec<_>>(),
        (0..4)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .collect::<Vec<_>>()
    );
}

/// Full-sequence logits `(T, V)` of `prompt ++ tokens` (no cache).
fn full_logits(md: &ModelDir, seq: &[u32]) -> Vec<Vec<f32>> {
    let batch = Batch::right_padded(&[seq.to_vec()], 0, md.model.device()).unwrap();
    md.model
        .forward(&batch, None, Mode::Infer)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

#[test]
fn recorded_logprobs_match_the_training_recomputation() {
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let engine = RolloutEngine::from_model_dir(&md);
    let ps = prompts();
    let out = engine.generate(&ps, &sampling(1.0, 2, 16, 3)).unwrap();
    let mut checked = 0;
    for c in &out.completions {
        assert_eq!(
            c.logprobs, c.sampler_logprobs,
            "no filter: same distribution"
        );
        let mut seq = ps[c.prompt_index].clone();
        seq.extend(&c.tokens);
        let batch = Batch::right_padded(&[seq.clone()], 0, md.model.device()).unwrap();
        let lp = md
            .model
            .token_logprobs(&batch, Mode::Infer)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let p = c.prompt_len;
        for (k, &x) in c.logprobs.iter().enumerate() {
            let y = lp[p - 1 + k];
            assert!((x - y).abs() <= 1e-4, "token {k}: {x} vs {y}");
            checked += 1;
        }
        // Train-mode recomputation agrees as well.
        let lp_train = md
            .model
            .token_logprobs(&batch, Mode::Train)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (k, &x) in c.logprobs.iter().enumerate() {
            assert!((x - lp_train[p - 1 + k]).abs() <= 1e-4);
        }
    }
    assert!(checked >= 8 * 4);

    // At temperature T: log_softmax(logits / T), for plain and filtered sampling.
    let t = 0.6;
    for (top_p, top_k) in [(1.0, 0), (0.9, 0), (1.0, 20)] {
        let params = SamplingParams {
            temperature: t,
            top_p,
            top_k,
            n: 2,
            max_new_tokens: 12,
            seed: 5,
            ..Default::default()
        };
        let out = engine.generate(&ps, &params).unwrap();
        for c in &out.completions {
            let mut seq = ps[c.prompt_index].clone();
            seq.extend(&c.tokens);
            let logits = full_logits(&md, &seq);
            for (k, &tok) in c.tokens.iter().enumerate() {
                let ls = log_softmax(&logits[c.prompt_len - 1 + k], t);
                let want = ls[tok as usize];
                assert!(
                    (c.logprobs[k] as f64 - want).abs() <= 1e-4,
                    "top_p {top_p} top_k {top_k}: {} vs {want}",
                    c.logprobs[k]
                );
                // The filtered distribution is never less concentrated on the drawn token.
                assert!(c.sampler_logprobs[k] >= c.logprobs[k] - 1e-5);
                assert!(c.sampler_logprobs[k] <= 1e-6);
            }
        }
    }
}

#[test]
fn logprobs_at_temperature_come_from_the_sampling_distribution() {
    // The tempered log-prob differs from the temperature-1 one: it is not just log_softmax.
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let engine = RolloutEngine::from_model_dir(&md);
    let ps = vec![prompts().remove(0)];
    let out = engine.generate(&ps, &sampling(2.0, 1, 8, 1)).unwrap();
    let c = &out.completions[0];
    let mut seq = ps[0].clone();
    seq.extend(&c.tokens);
    let logits = full_logits(&md, &seq);
    let at1 = log_softmax(&logits[c.prompt_len - 1], 1.0)[c.tokens[0] as usize];
    assert!((c.logprobs[0] as f64 - at1).abs() > 1e-3);
}

#[test]
fn stop_ids_and_stop_strings_end_rows_and_are_reported() {
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let engine = RolloutEngine::from_model_dir(&md);
    let ps = prompts();
    let base_params = SamplingParams {
        ignore_eos: true,
        ..sampling(1.0, 1, 24, 11)
    };
    let base = engine.generate(&ps, &base_params).unwrap();
    // A token sampled in the middle of completion 0 becomes an extra stop id.
    let c0 = &base.completions[0];
    let stop_tok = c0.tokens[5];
    let first = c0.tokens.iter().position(|&t| t == stop_tok).unwrap();
    let params = SamplingParams {
        stop_token_ids: vec![stop_tok],
        ..base_params.clone()
    };
    let out = engine.generate(&ps, &params).unwrap();
    let d0 = &out.completions[0];
    assert_eq!(d0.finish_reason, FinishReason::StopId);
    assert!(!d0.truncated);
    assert_eq!(
        d0.tokens,
        c0.tokens[..=first],
        "stop id kept as the last token"
    );
    // Other rows stop first here, so the batch shrinks and the matrix kernels may take
    // another path (e.g. one row): equal up to rounding, not bit for bit.
    assert_eq!(d0.logprobs.len(), first + 1);
    for (i, (a, b)) in d0.logprobs.iter().zip(&c0.logprobs).enumerate() {
        assert!((a - b).abs() <= 1e-5, "log-prob {i}: {a} vs {b}");
    }
    for (b, d) in base.completions.iter().zip(&out.completions) {
        // Rows are independent: every row is a prefix of its unstopped run.
        assert_eq!(d.tokens, b.tokens[..d.tokens.len()]);
        match b.tokens.iter().position(|&t| t == stop_tok) {
            Some(i) => assert_eq!(d.tokens.len(), i + 1),
            None => assert_eq!(d.finish_reason, FinishReason::Length),
        }
    }
    assert!(out.stats.stopped_by_id >= 1);

    // A stop string taken from the middle of completion 0's text.
    let text = &c0.text;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    assert!(chars.len() > 10, "{text:?}");
    let (a, _) = chars[chars.len() / 2];
    let (b, _) = chars[chars.len() / 2 + 2];
    let stop = text[a..b].to_string();
    let params = SamplingParams {
        stop: vec!["\u{1F600}never".into(), stop.clone()],
        ..base_params.clone()
    };
    let out = engine.generate(&ps, &params).unwrap();
    let d0 = &out.completions[0];
    assert_eq!(
        d0.finish_reason,
        FinishReason::StopString,
        "{stop:?} in {text:?}"
    );
    assert_eq!(d0.stop_string.as_deref(), Some(stop.as_str()));
    let off = d0.stop_offset.unwrap();
    let first_match = text.find(&stop).unwrap();
    assert_eq!(off, first_match);
    assert!(d0.text[off..].starts_with(&stop));
    assert_eq!(d0.tokens, c0.tokens[..d0.tokens.len()]);
    // The row ended with the token that completed the match: one token fewer does not contain it.
    let shorter = md
        .tokenizer
        .decode(&d0.tokens[..d0.tokens.len() - 1], true)
        .unwrap();
    assert!(!shorter.contains(&stop));
    assert!(out.stats.stopped_by_string >= 1);
}

#[test]
fn truncated_flag_marks_rows_that_hit_max_new_tokens() {
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let engine = RolloutEngine::from_model_dir(&md);
    let params = SamplingParams {
        ignore_eos: true,
        ..sampling(1.0, 2, 5, 0)
    };
    let out = engine.generate(&prompts(), &params).unwrap();
    for c in &out.completions {
        assert_eq!(c.tokens.len(), 5);
        assert!(c.truncated);
        assert_eq!(c.finish_reason, FinishReason::Length);
        assert_eq!(c.logprobs.len(), 5);
    }
    assert_eq!(out.stats.truncated, 8);
    assert_eq!(out.stats.generated_tokens, 40);
    // max_new_tokens 0: empty, truncated completions.
    let out = engine
        .generate(&prompts(), &sampling(1.0, 1, 0, 0))
        .unwrap();
    assert!(out
        .completions
        .iter()
        .all(|c| c.tokens.is_empty() && c.truncated));
}

#[test]
fn batched_generation_equals_each_prompt_alone() {
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let ps = prompts();
    let keyed: Vec<Prompt> = ps
        .iter()
        .enumerate()
        .map(|(i, p)| Prompt {
            ids: p.clone(),
            key: 100 + i as u64,
        })
        .collect();
    // Stop on a frequent token so rows finish at different steps (exercises compaction).
    let params = SamplingParams {
        top_p: 0.95,
        ..sampling(1.0, 3, 40, 21)
    };
    for opts in [
        EngineOptions::default(),
        EngineOptions {
            compact_ratio: 0.0,
            ..Default::default()
        },
        EngineOptions {
            max_batch_rows: 5,
            compact_ratio: 0.9,
            compact_min_remaining: 1,
        },
    ] {
        let engine = RolloutEngine::from_model_dir(&md).with_options(opts.clone());
        let probe = engine.generate_keyed(&keyed, &params).unwrap();
        let common = probe.completions[0].tokens[3];
        let params = SamplingParams {
            stop_token_ids: vec![common],
            ..params.clone()
        };
        let together = engine.generate_keyed(&keyed, &params).unwrap();
        let lens: Vec<usize> = together
            .completions
            .iter()
            .map(|c| c.tokens.len())
            .collect();
        assert!(lens.iter().any(|&l| l < 40), "{lens:?}");
        if opts.max_batch_rows == 5 {
            // 12 rows in chunks of 5, 5, 2: one prefill each, and at least one compaction.
            assert_eq!(together.stats.prefills, 3, "{:?}", together.stats);
            assert!(together.stats.compactions >= 1, "{:?}", together.stats);
        }
        for (i, kp) in keyed.iter().enumerate() {
            let alone = engine
                .generate_keyed(std::slice::from_ref(kp), &params)
                .unwrap();
            for (a, b) in alone.completions.iter().zip(together.of_prompt(i)) {
                assert_eq!(
                    a.tokens, b.tokens,
                    "{opts:?} prompt {i} sample {}",
                    a.sample_index
                );
                assert_eq!(a.finish_reason, b.finish_reason);
                for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                    assert!((x - y).abs() <= 1e-4);
                }
            }
        }
    }
}

#[test]
fn over_long_prompts_are_filtered_and_counted() {
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let engine = RolloutEngine::from_model_dir(&md);
    let params = SamplingParams {
        max_prompt_len: Some(4),
        ..sampling(1.0, 2, 6, 0)
    };
    let out = engine.generate(&prompts(), &params).unwrap();
    assert_eq!(out.stats.filtered_prompts, 2);
    assert_eq!(
        out.filtered
            .iter()
            .map(|f| (f.prompt_index, f.len))
            .collect::<Vec<_>>(),
        vec![(0, 5), (2, 9)]
    );
    let idx: Vec<usize> = out.completions.iter().map(|c| c.prompt_index).collect();
    assert_eq!(idx, vec![1, 1, 3, 3]);
    // Kept prompts are not affected by the filtered ones (same stream keys).
    let all = engine
        .generate(&prompts(), &sampling(1.0, 2, 6, 0))
        .unwrap();
    let kept: Vec<_> = all
        .completions
        .iter()
        .filter(|c| c.prompt_index == 1 || c.prompt_index == 3)
        .map(|c| c.tokens.clone())
        .collect();
    assert_eq!(
        kept,
        out.completions
            .iter()
            .map(|c| c.tokens.clone())
            .collect::<Vec<_>>()
    );
    // Empty prompts are an error, not a silent skip.
    assert!(engine.generate(&[vec![]], &params).is_err());
}

/// A copy of a fixture directory (symlinks) with its own `generation_config.json`.
fn with_generation_config(src: &Path, gen: serde_json::Value) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "generation_config.json" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), tmp.path().join(&name)).unwrap();
    }
    std::fs::write(
        tmp.path().join("generation_config.json"),
        serde_json::to_string(&gen).unwrap(),
    )
    .unwrap();
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

#[test]
fn two_eos_ids_both_stop_like_qwen2_5() {
    let Some(src) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let md = ModelDir::load(&src, &Device::Cpu, None).unwrap();
    let ps = prompts();
    let free = RolloutEngine::from_model_dir(&md)
        .generate(&ps, &SamplingParams::greedy(20))
        .unwrap();
    // Two tokens the greedy continuations emit: row 0's first token, and the first token of a
    // row that never emits it (so each id is the first stop of some row).
    let a = free.completions[0].tokens[0];
    let b = free
        .completions
        .iter()
        .find(|c| !c.tokens.contains(&a))
        .map(|c| c.tokens[0])
        .expect("greedy rows differ");
    let (_tmp, dir) = with_generation_config(
        &src,
        serde_json::json!({"eos_token_id": [a, b], "pad_token_id": 0}),
    );
    let md2 = ModelDir::load(&dir, &Device::Cpu, None).unwrap();
    let stop_ids = md2.stop_ids();
    assert!(stop_ids.contains(&a) && stop_ids.contains(&b) && stop_ids.contains(&2));
    let engine = RolloutEngine::from_model_dir(&md2);
    let out = engine.generate(&ps, &SamplingParams::greedy(20)).unwrap();
    let mut hit = std::collections::BTreeSet::new();
    for (c, f) in out.completions.iter().zip(&free.completions) {
        match f.tokens.iter().position(|t| stop_ids.contains(t)) {
            Some(i) => {
                assert_eq!(c.tokens, f.tokens[..=i]);
                assert_eq!(c.finish_reason, FinishReason::StopId);
                hit.insert(*c.tokens.last().unwrap());
            }
            None => assert_eq!(c.tokens, f.tokens),
        }
    }
    assert!(hit.contains(&a) && hit.contains(&b), "{hit:?}");
}

#[test]
fn sampling_builds_no_autograd_graph() {
    // Inference forwards only: the logits the engine sees carry no graph, so the model's
    // parameters have no gradient path from a rollout (checked through `track_op`).
    let Some(md) = load("fixtures/tiny-qwen2") else {
        return;
    };
    let batch = Batch::left_padded(&prompts(), 0, md.model.device()).unwrap();
    let mut cache = rlvr_model::KvCache::new(md.model.config(), 8);
    let logits = md
        .model
        .forward_last(&batch, Some(&mut cache), Mode::Infer)
        .unwrap();
    assert!(!logits.track_op());
    let sum = logits.sum_keepdim(D::Minus1).unwrap();
    assert!(!sum.track_op());
}
