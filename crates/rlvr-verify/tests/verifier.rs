//! The verifier layer's contract: extraction, statuses and their reward mapping, the format
//! rules, composition, the deadline wrapper, the registry, and bounded work on hostile input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rlvr_verify::compose::{Deadline, Gated, Part, WeightedSum};
use rlvr_verify::extract::{extract_answer, last_boxed, Method};
use rlvr_verify::format::{FormatConfig, FormatVerifier};
use rlvr_verify::math::{MathConfig, MathVerifier, PercentMode};
use rlvr_verify::{registry, Outcome, RewardMapping, Status, Verifier, VerifyError, VerifyInput};
use serde_json::{json, Value};

fn check(v: &dyn Verifier, response: &str, gt: Value) -> Outcome {
    v.verify(&VerifyInput {
        response,
        ground_truth: &gt,
        metadata: &Value::Null,
    })
}

#[test]
fn verifiers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Verifier>();
    assert_send_sync::<MathVerifier>();
    assert_send_sync::<FormatVerifier>();
}

#[test]
fn extraction_finds_the_final_answer() {
    assert_eq!(
        last_boxed(r"first \boxed{1} then \boxed{\frac{a}{\sqrt{b}}} end").as_deref(),
        Some(r"\frac{a}{\sqrt{b}}")
    );
    assert_eq!(last_boxed(r"\fbox{7}").as_deref(), Some("7"));
    assert_eq!(last_boxed(r"\boxed 42 is it").as_deref(), Some("42"));
    assert_eq!(last_boxed(r"\boxed{unclosed"), None);
    let cases: &[(&str, &str, Method)] = &[
        ("work\n#### 1,234\n", "1,234", Method::Hashes),
        (
            "So the answer is $\\frac{3}{4}$.",
            "$\\frac{3}{4}$",
            Method::AnswerIs,
        ),
        ("The final answer is 3.5. Done", "3.5", Method::AnswerIs),
        ("Answer: (B)\n", "(B)", Method::AnswerColon),
        ("We conclude $x = 2$.", "x = 2", Method::FinalMath),
        ("thus \\[ \\sqrt{2} \\]", "\\sqrt{2}", Method::FinalMath),
        ("I got 12 apples and then 15 more", "15", Method::LastNumber),
    ];
    for (text, want, how) in cases {
        assert_eq!(
            extract_answer(text, true),
            Some((want.to_string(), *how)),
            "{text:?}"
        );
    }
    assert_eq!(extract_answer("I got 12 apples", false), None);
    assert_eq!(extract_answer("no numbers here", true), None);
}

#[test]
fn answer_keys_for_voting() {
    use rlvr_verify::math::answer_key;
    let cfg = MathConfig::default();
    assert_eq!(
        answer_key("so \\boxed{\\dfrac{1}{2}}", &cfg),
        answer_key("The answer is $\\frac{1}{2}$.", &cfg)
    );
    assert_eq!(answer_key("#### 1,000", &cfg).as_deref(), Some("1000"));
    assert_eq!(answer_key("nothing", &cfg), None);
}

#[test]
fn statuses_and_details() {
    let v = MathVerifier::default();
    let o = check(&v, "so \\boxed{\\dfrac{1}{2}}", json!("0.5"));
    assert_eq!((o.status, o.score), (Status::Correct, 1.0));
    assert_eq!(o.details["extracted"], "\\dfrac{1}{2}");
    assert_eq!(o.details["extracted_by"], "boxed");
    let o = check(&v, "\\boxed{3}", json!("4"));
    assert_eq!((o.status, o.score), (Status::Incorrect, 0.0));
    assert!(o.details["reason"].as_str().unwrap().contains("differs"));
    let o = check(&v, "I do not know", json!("4"));
    assert_eq!(o.status, Status::Invalid);
    assert_eq!(o.details["reason"], "no answer found");
    let o = check(&v, "\\boxed{3}", json!(true));
    assert_eq!(o.status, Status::Error);
    // alternatives and numbers as ground truth
    assert_eq!(
        check(&v, "\\boxed{5}", json!(["4", "5"])).status,
        Status::Correct
    );
    assert_eq!(check(&v, "\\boxed{5}", json!(5)).status, Status::Correct);
    assert_eq!(
        check(&v, "\\boxed{5}", json!({"answer": "\\boxed{5}"})).status,
        Status::Correct
    );
}

#[test]
fn reward_mapping_is_configurable_and_invalid_is_not_zero_by_accident() {
    let cfg = MathConfig {
        rewards: RewardMapping {
            correct: 1.0,
            incorrect: 0.0,
            invalid: -0.5,
            error: -1.0,
        },
        last_number_fallback: false,
        ..MathConfig::default()
    };
    let v = MathVerifier::new(cfg);
    let o = check(&v, "nothing here 42", json!("42"));
    assert_eq!((o.status, o.score), (Status::Invalid, -0.5));
    let o = check(&v, "\\boxed{1}", json!(null));
    assert_eq!((o.status, o.score), (Status::Error, -1.0));
}

#[test]
fn config_switches() {
    let pct = |mode| {
        MathVerifier::new(MathConfig {
            percent: mode,
            ..MathConfig::default()
        })
    };
    assert_eq!(
        check(&pct(PercentMode::Fraction), "\\boxed{50\\%}", json!("0.5")).status,
        Status::Correct
    );
    assert_eq!(
        check(&pct(PercentMode::Fraction), "\\boxed{50\\%}", json!("50")).status,
        Status::Incorrect
    );
    assert_eq!(
        check(&pct(PercentMode::Number), "\\boxed{50\\%}", json!("50")).status,
        Status::Correct
    );
    assert_eq!(
        check(&pct(PercentMode::Number), "\\boxed{50\\%}", json!("0.5")).status,
        Status::Incorrect
    );
    let dc = MathVerifier::new(MathConfig {
        decimal_comma: true,
        ..MathConfig::default()
    });
    assert_eq!(
        check(&dc, "\\boxed{3,5}", json!("3.5")).status,
        Status::Correct
    );
    assert_eq!(
        check(&MathVerifier::default(), "\\boxed{3,5}", json!("3.5")).status,
        Status::Incorrect
    );
    let strict = MathVerifier::new(MathConfig {
        strict_variables: true,
        ..MathConfig::default()
    });
    assert_eq!(
        check(&strict, "\\boxed{x = 3}", json!("3")).status,
        Status::Incorrect
    );
    assert_eq!(
        check(&MathVerifier::default(), "\\boxed{x = 3}", json!("3")).status,
        Status::Correct
    );
    let loose = MathVerifier::new(MathConfig {
        rel_tol: 1e-3,
        ..MathConfig::default()
    });
    assert_eq!(
        check(&loose, "\\boxed{3.1416}", json!("\\pi")).status,
        Status::Correct
    );
    assert_eq!(
        check(&MathVerifier::default(), "\\boxed{3.1416}", json!("\\pi")).status,
        Status::Incorrect
    );
}

#[test]
fn format_rules_with_partial_credit() {
    let v = FormatVerifier::default();
    let o = check(&v, "<think>a</think>\n<answer>4</answer>\n", json!(""));
    assert_eq!((o.status, o.score), (Status::Correct, 1.0));
    // text outside: 2 of 3 rules... tags ok, order ok, outside fails → 3 of 4
    let o = check(&v, "hi <think>a</think><answer>4</answer>", json!(""));
    assert_eq!(o.status, Status::Incorrect);
    assert_eq!(o.score, 0.75);
    assert_eq!(o.details["failed"][0]["rule"], "nothing_outside");
    // wrong order
    let o = check(&v, "<answer>4</answer><think>a</think>", json!(""));
    assert_eq!(o.details["failed"][0]["rule"], "order");
    // nothing
    let o = check(&v, "just text", json!(""));
    assert_eq!(o.score, 0.0);
    assert_eq!(o.details["failed"].as_array().unwrap().len(), 4);
    // duplicate tags fail the tag rule
    let o = check(
        &v,
        "<think>a</think><think>b</think><answer>4</answer>",
        json!(""),
    );
    assert_eq!(o.details["failed"][0]["rule"], "tag:think");
    // custom tags, regex, no partial credit
    let v = FormatVerifier::new(FormatConfig {
        tags: vec!["reasoning".into()],
        regex: Some(r"\\boxed\{".into()),
        partial_credit: false,
        ..FormatConfig::default()
    })
    .unwrap();
    assert_eq!(
        check(&v, "<reasoning>x \\boxed{1}</reasoning>", json!("")).status,
        Status::Correct
    );
    let o = check(&v, "<reasoning>x</reasoning>", json!(""));
    assert_eq!((o.status, o.score), (Status::Incorrect, 0.0));
    assert_eq!(o.details["failed"][0]["rule"], "regex");
    assert!(matches!(
        FormatVerifier::new(FormatConfig {
            regex: Some("(".into()),
            ..FormatConfig::default()
        }),
        Err(VerifyError::Regex { .. })
    ));
}

#[test]
fn composition_weighted_and_gated() {
    let math: Arc<dyn Verifier> = Arc::new(MathVerifier::default());
    let fmt: Arc<dyn Verifier> = Arc::new(FormatVerifier::default());
    let sum = WeightedSum {
        parts: vec![Part::new(0.9, math.clone()), Part::new(0.1, fmt.clone())],
    };
    let o = check(
        &sum,
        "<think>x</think><answer>\\boxed{2}</answer>",
        json!("2"),
    );
    assert!((o.score - 1.0).abs() < 1e-6);
    assert_eq!(o.status, Status::Correct);
    let o = check(&sum, "\\boxed{2}", json!("2"));
    assert!((o.score - 0.9).abs() < 1e-6, "{}", o.score);
    assert_eq!(o.status, Status::Incorrect);
    assert_eq!(o.details["parts"][1]["verifier"], "format");
    let gated = Gated {
        gate: fmt,
        inner: math,
        gate_failed: -1.0,
    };
    assert_eq!(check(&gated, "\\boxed{2}", json!("2")).score, -1.0);
    let o = check(
        &gated,
        "<think>x</think><answer>\\boxed{3}</answer>",
        json!("2"),
    );
    assert_eq!((o.status, o.score), (Status::Incorrect, 0.0));
}

struct Slow;
impl Verifier for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn verify(&self, _: &VerifyInput<'_>) -> Outcome {
        std::thread::sleep(Duration::from_secs(2));
        Outcome::with_status(Status::Correct, &RewardMapping::default(), json!({}))
    }
}

struct Panics;
impl Verifier for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn verify(&self, _: &VerifyInput<'_>) -> Outcome {
        panic!("boom")
    }
}

#[test]
fn deadline_bounds_any_verifier_without_signals() {
    let d = Deadline {
        inner: Arc::new(Slow),
        limit: Duration::from_millis(50),
        mapping: RewardMapping::default(),
    };
    let t = Instant::now();
    let o = check(&d, "x", json!("1"));
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!(o.status, Status::Error);
    assert_eq!(o.details["reason"], "deadline exceeded");
    let d = Deadline {
        inner: Arc::new(Panics),
        limit: Duration::from_millis(500),
        mapping: RewardMapping::default(),
    };
    assert_eq!(check(&d, "x", json!("1")).status, Status::Error);
    let d = Deadline {
        inner: Arc::new(MathVerifier::default()),
        limit: Duration::from_secs(5),
        mapping: RewardMapping::default(),
    };
    assert_eq!(check(&d, "\\boxed{2}", json!("2")).status, Status::Correct);
}

#[test]
fn registry_and_specs() {
    assert_eq!(registry::build("math").unwrap().name(), "math");
    assert_eq!(registry::build("format").unwrap().name(), "format");
    assert!(matches!(
        registry::build("nope"),
        Err(VerifyError::UnknownVerifier(_))
    ));
    let v = registry::from_spec(&json!({"type": "weighted_sum", "parts": [
        {"weight": 0.5, "verifier": "math"}, {"weight": 0.5, "verifier": {"type": "format", "tags": ["answer"]}}]}))
    .unwrap();
    let o = check(v.as_ref(), "<answer>\\boxed{1}</answer>", json!("1"));
    assert_eq!((o.status, o.score), (Status::Correct, 1.0));
    let e = registry::from_spec(&json!({"type": "math", "rel_tol": "big"}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("rel_tol"), "{e}");
    let e = registry::from_spec(&json!({"type": "weighted_sum", "parts": [{"verifier": "math"}]}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("parts[0].weight"), "{e}");
    let v = registry::from_spec(&json!({"type": "math", "deadline_ms": 1000})).unwrap();
    assert_eq!(
        check(v.as_ref(), "\\boxed{2}", json!("2")).status,
        Status::Correct
    );
}

#[test]
fn concurrent_use_from_many_threads() {
    let v: Arc<dyn Verifier> = Arc::new(MathVerifier::default());
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let v = v.clone();
            std::thread::spawn(move || {
                (0..50)
                    .filter(|i| {
                        let r = format!("\\boxed{{{}}}", i + k);
                        check(v.as_ref(), &r, json!((i + k).to_string())).status == Status::Correct
                    })
                    .count()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 50);
    }
}

/// Hostile inputs end quickly with a judged status and never panic.
#[test]
fn pathological_inputs_are_bounded() {
    let v = MathVerifier::default();
    let deep = format!("\\boxed{{{}1{}}}", "(".repeat(5000), ")".repeat(5000));
    let braces = format!("\\boxed{{{}1{}}}", "{".repeat(3000), "}".repeat(3000));
    let many_pm = "a\\pm b\\pm ".repeat(60) + "1";
    let cases: Vec<(String, &str)> = vec![
        (deep, "1"),
        (braces, "1"),
        ("\\boxed{2^{2^{2^{2^{2^{2^{2^{2}}}}}}}}".to_string(), "4"),
        ("\\boxed{10^{10^{10}}}".to_string(), "1"),
        ("\\boxed{99999!}".to_string(), "1"),
        ("\\boxed{(((1+2)!)!)!}".to_string(), "1"),
        ("\\boxed{9^{9^{9}}}".to_string(), "9^{9^{9}}"),
        (format!("\\boxed{{{}}}", "1+".repeat(400) + "1"), "401"),
        (format!("\\boxed{{{}}}", "x".repeat(2000)), "1"),
        ("x".repeat(2_000_000), "1"),
        (
            format!("\\boxed{{{}}}", "\\frac{1}{".repeat(300) + &"}".repeat(300)),
            "1",
        ),
        ("\\boxed{\\sqrt{\\sqrt{\\sqrt{-1}}}}".to_string(), "i"),
        ("\\boxed{1/0}".to_string(), "1"),
        ("\\boxed{0^{-1}}".to_string(), "0"),
        ("\\boxed{\\begin{pmatrix} 1 & 2".to_string(), "1"),
        ("\\boxed{\\left( \\right]}".to_string(), "1"),
        ("\\boxed{1e999999}".to_string(), "1"),
        (format!("\\boxed{{{}}}", "1,".repeat(400) + "1"), "1"),
        // found by the fuzzer (slow exact power before the result-size cap)
        (format!("{}.34^233", "2".repeat(71)), "2"),
        (format!("\\boxed{{{}.34^{{233}}}}", "2".repeat(300)), "2"),
        ("6!1624!660!116 6".to_string(), "6!1624!660!116 6"),
        (
            format!(
                "\\boxed{{{}}}",
                "W\\qquadin2'l3e±±1yn%ll3eL0 1yn±±J±".repeat(16)
            ),
            "0fboxe,fboxe,+\\in4'l3e±±1yn\\qquadin2'l3e±±1yn",
        ),
        (format!("\\boxed{{{}}}", "v±±J±".repeat(40)), "1"),
        ("1".to_string(), many_pm.as_str()),
        ("\\boxed{6}".to_string(), "6!1624!660!116 6"),
        (
            "\\boxed{1000!1000!1000!1000!}".to_string(),
            "999!999!999!999!",
        ),
    ];
    let mut slowest = Duration::ZERO;
    for (resp, gold) in cases {
        let t = Instant::now();
        let o = check(&v, &resp, json!(gold));
        let dt = t.elapsed();
        slowest = slowest.max(dt);
        // Wall clock on a possibly loaded CI machine: the bound catches a blow-up (these
        // inputs take seconds to forever without the budgets), not a 2× slower CPU.
        assert!(
            dt < Duration::from_secs(1),
            "{:?}… took {dt:?}",
            &resp[..resp.len().min(60)]
        );
        assert!(o.score.is_finite());
    }
    eprintln!("slowest pathological case: {slowest:?}");
    // a value too large to compute is an error, not a silent zero
    let o = check(&v, "\\boxed{2^{2^{2^{2^{2^{2}}}}}}", json!("3"));
    assert_ne!(o.status, Status::Correct);
}
