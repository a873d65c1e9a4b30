//! The evaluation summary on constructed results: pass@k against verl's golden values, maj@k
//! with ties, mean@k, status counts, skipped problems, per-subset breakdowns.

use rlvr_conformance::{read_json, require_shared};
use rlvr_eval::summary::{check_ks, summarize, vote_key};
use rlvr_eval::{ProblemResult, SampleRecord};
use serde_json::{json, Value};

/// A sample with a status, a score and (optionally) an extracted answer.
fn sample(j: usize, status: &str, score: f64, answer: Option<&str>) -> SampleRecord {
    SampleRecord {
        sample: j,
        response: String::new(),
        score,
        status: status.into(),
        details: match answer {
            Some(a) => json!({"extracted": a}),
            None => json!({"reason": "no answer found"}),
        },
        tokens: 10 + j,
        truncated: j % 2 == 1,
        finish_reason: if j % 2 == 1 { "length" } else { "stop_id" }.into(),
        rerank_score: None,
    }
}

fn problem(index: usize, source: &str, extra: Value, samples: Vec<SampleRecord>) -> ProblemResult {
    ProblemResult {
        index,
        id: format!("p{index}"),
        data_source: source.into(),
        extra_info: extra,
        prompt: "q".into(),
        skipped: None,
        samples,
    }
}

/// `n` samples of which the first `c` are correct.
fn with_correct(index: usize, n: usize, c: usize) -> ProblemResult {
    let samples = (0..n)
        .map(|j| {
            if j < c {
                sample(j, "correct", 1.0, Some("1"))
            } else {
                sample(j, "incorrect", 0.0, Some("2"))
            }
        })
        .collect();
    problem(index, "s", json!({}), samples)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn pass_at_k_equals_verl_golden_values() {
    let Some(path) = require_shared("golden/algorithms.json") else {
        return;
    };
    let golden = read_json(&path);
    let cases = golden["pass_at_k"].as_array().expect("pass_at_k list");
    assert!(cases.len() >= 40);
    for case in cases {
        let (n, c, k) = (
            case["n"].as_u64().unwrap() as usize,
            case["c"].as_u64().unwrap() as usize,
            case["k"].as_u64().unwrap() as usize,
        );
        let want = f(&case["pass_at_k"]);
        let s = summarize(&[with_correct(0, n, c)], n, &[k], &[]).unwrap();
        let got = f(&s[&format!("pass@{k}")]);
        assert!(
            (got - want).abs() <= 1e-12,
            "n={n} c={c} k={k}: {got} vs golden {want}"
        );
        assert_eq!(s["correct"], json!(c));
        assert_eq!(s["incorrect"], json!(n - c));
    }
    // Averaged over problems: (n=16, c=5, k=4) and (16, 1, 4).
    let s = summarize(
        &[with_correct(0, 16, 5), with_correct(1, 16, 1)],
        16,
        &[4],
        &[],
    )
    .unwrap();
    let want = (0.8186813186813187 + 0.25) / 2.0;
    assert!((f(&s["pass@4"]) - want).abs() < 1e-12);
}

#[test]
fn maj_at_k_votes_over_the_first_k_with_ties_to_the_first_answer() {
    // Answers 1, 2, 2, 1 (+ one without an answer); only "1" is correct.
    let samples = vec![
        sample(0, "correct", 1.0, Some(" 1 ")),
        sample(1, "incorrect", 0.0, Some("2")),
        sample(2, "incorrect", 0.0, Some("2")),
        sample(3, "correct", 1.0, Some("1")),
        sample(4, "invalid", 0.0, None),
    ];
    let p = problem(0, "s", json!({}), samples);
    let s = summarize(std::slice::from_ref(&p), 5, &[1, 2, 3, 4, 5], &[]).unwrap();
    assert_eq!(f(&s["maj@1"]), 1.0); // "1"
    assert_eq!(f(&s["maj@2"]), 1.0); // 1:1 tie, "1" came first
    assert_eq!(f(&s["maj@3"]), 0.0); // "2" twice
    assert_eq!(f(&s["maj@4"]), 1.0); // 2:2 tie, "1" first (" 1 " normalises to "1")
    assert_eq!(f(&s["maj@5"]), 1.0); // no answer does not vote

    // Tie where the first answer is the wrong one.
    let q = problem(
        1,
        "s",
        json!({}),
        vec![
            sample(0, "incorrect", 0.0, Some("3")),
            sample(1, "correct", 1.0, Some("1")),
        ],
    );
    let s = summarize(&[q], 2, &[2], &[]).unwrap();
    assert_eq!(f(&s["maj@2"]), 0.0);

    // Nothing extracted at all: maj@k is 0.
    let none = problem(2, "s", json!({}), vec![sample(0, "invalid", 0.0, None)]);
    assert_eq!(f(&summarize(&[none], 1, &[1], &[]).unwrap()["maj@1"]), 0.0);

    assert_eq!(vote_key(&json!({"extracted": " 4 "})).as_deref(), Some("4"));
    assert_eq!(vote_key(&json!({"reason": "x"})), None);
    // Composed verifiers: the math part of a weighted sum, the inner verifier of a gate.
    let weighted = json!({"parts": [
        {"verifier": "format", "details": {"rules": []}},
        {"verifier": "math", "details": {"extracted": "12"}},
    ]});
    assert_eq!(vote_key(&weighted).as_deref(), Some("12"));
    let gated = json!({"gate": "format", "gate_passed": true, "inner": {"extracted": "7"}});
    assert_eq!(vote_key(&gated).as_deref(), Some("7"));
}

#[test]
fn mean_at_k_statuses_lengths_and_skipped_problems() {
    let a = problem(
        0,
        "s",
        json!({}),
        vec![
            sample(0, "correct", 1.0, Some("1")),
            sample(1, "incorrect", 0.0, Some("2")),
            sample(2, "correct", 0.5, Some("1")),
            sample(3, "invalid", 0.0, None),
        ],
    );
    // A failed prompt: error stand-ins (no tokens, not generated).
    let mut failed = problem(
        1,
        "s",
        json!({}),
        (0..4)
            .map(|j| SampleRecord {
                finish_reason: "error".into(),
                tokens: 0,
                truncated: false,
                ..sample(j, "error", 0.0, None)
            })
            .collect(),
    );
    failed.samples[0].details = json!({"reason": "server closed the connection"});
    let mut skipped = problem(2, "s", json!({}), vec![]);
    skipped.skipped = Some("too long".into());

    let s = summarize(&[a, failed, skipped], 4, &[1, 2, 4], &[]).unwrap();
    assert_eq!(s["num_problems"], json!(2));
    assert_eq!(s["skipped_problems"], json!(1));
    assert_eq!(s["num_samples"], json!(8));
    assert_eq!(s["n"], json!(4));
    assert_eq!(
        (&s["correct"], &s["incorrect"], &s["invalid"], &s["error"]),
        (&json!(2), &json!(1), &json!(1), &json!(4))
    );
    // mean@k: problem a → 1, 0.5, 0.375; failed → 0.
    assert!((f(&s["mean@1"]) - 0.5).abs() < 1e-12);
    assert!((f(&s["mean@2"]) - 0.25).abs() < 1e-12);
    assert!((f(&s["mean@4"]) - 0.1875).abs() < 1e-12);
    // pass@1: a has c=2 of 4 → 0.5; failed → 0.
    assert!((f(&s["pass@1"]) - 0.25).abs() < 1e-12);
    // Lengths over generated samples only: tokens 10..13, truncated j = 1, 3.
    assert!((f(&s["mean_response_tokens"]) - 11.5).abs() < 1e-12);
    assert!((f(&s["truncation_rate"]) - 0.5).abs() < 1e-12);
}

#[test]
fn subsets_by_data_source_and_extra_info_field() {
    let ps = vec![
        problem(
            0,
            "math500",
            json!({"level": 1}),
            vec![sample(0, "correct", 1.0, Some("1"))],
        ),
        problem(
            1,
            "math500",
            json!({"level": 2}),
            vec![sample(0, "incorrect", 0.0, Some("2"))],
        ),
        problem(
            2,
            "gsm8k",
            json!({"level": 1}),
            vec![sample(0, "correct", 1.0, Some("1"))],
        ),
        problem(3, "gsm8k", json!({}), vec![sample(0, "invalid", 0.0, None)]),
    ];
    let s = summarize(&ps, 1, &[1], &["level".to_string()]).unwrap();
    assert!((f(&s["pass@1"]) - 0.5).abs() < 1e-12);
    let by_src = &s["subsets"]["data_source"];
    assert_eq!(by_src["math500"]["num_problems"], json!(2));
    assert!((f(&by_src["math500"]["pass@1"]) - 0.5).abs() < 1e-12);
    assert!((f(&by_src["gsm8k"]["pass@1"]) - 0.5).abs() < 1e-12);
    assert_eq!(by_src["gsm8k"]["invalid"], json!(1));
    let by_level = &s["subsets"]["level"];
    assert_eq!(by_level["1"]["num_problems"], json!(2));
    assert_eq!(f(&by_level["1"]["pass@1"]), 1.0);
    assert_eq!(f(&by_level["2"]["pass@1"]), 0.0);
    assert_eq!(by_level["(missing)"]["num_problems"], json!(1));
}

#[test]
fn k_larger_than_n_is_an_error_naming_the_flags() {
    let e = check_ks(&[1, 8], 4).unwrap_err().to_string();
    assert!(e.contains("--k 8") && e.contains("--n 4"), "{e}");
    assert!(check_ks(&[0], 4).is_err());
    assert!(check_ks(&[], 4).is_err());
    assert!(check_ks(&[1, 4], 4).is_ok());
    assert!(summarize(&[with_correct(0, 4, 1)], 4, &[8], &[]).is_err());
}

#[test]
fn rerank_at_k_appears_with_rerank_scores_and_follows_the_scorer() {
    // Without rerank scores there is no rerank@K.
    let plain = summarize(&[with_correct(0, 4, 1)], 4, &[1, 4], &[]).unwrap();
    assert!(plain.get("rerank@1").is_none());
    // Two problems whose last sample is the only correct one.
    let scored = |scores: [f64; 4]| -> Vec<ProblemResult> {
        (0..2)
            .map(|i| {
                let mut p = with_correct(i, 4, 0);
                p.samples[3] = sample(3, "correct", 1.0, Some("1"));
                for (s, r) in p.samples.iter_mut().zip(scores) {
                    s.rerank_score = Some(r);
                }
                p
            })
            .collect()
    };
    // A scorer preferring the correct sample: rerank@4 = 1 (above pass@1), rerank@K < 4 = 0
    // (no correct sample in reach).
    let s = summarize(&scored([0.1, 0.2, 0.3, 0.9]), 4, &[1, 2, 4], &[]).unwrap();
    assert_eq!(f(&s["rerank@4"]), 1.0);
    assert_eq!(f(&s["rerank@1"]), 0.0);
    assert_eq!(f(&s["rerank@2"]), 0.0);
    assert!(f(&s["rerank@4"]) >= f(&s["pass@1"]));
    assert_eq!(f(&s["subsets"]["data_source"]["s"]["rerank@4"]), 1.0);
    // A scorer preferring wrong samples: 0 everywhere.
    let s = summarize(&scored([0.9, 0.8, 0.7, 0.1]), 4, &[1, 2, 4], &[]).unwrap();
    for k in [1, 2, 4] {
        assert_eq!(f(&s[format!("rerank@{k}").as_str()]), 0.0, "k={k}");
    }
    // Ties go to the earlier sample (wrong here).
    let s = summarize(&scored([0.5; 4]), 4, &[4], &[]).unwrap();
    assert_eq!(f(&s["rerank@4"]), 0.0);
}
