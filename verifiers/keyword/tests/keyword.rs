//! The example plugin: its rules, its registration, and specs that use it by name.

use rlvr_verifier_keyword::{register, KeywordConfig, KeywordVerifier};
use rlvr_verify::registry::{from_spec, names, register as register_any};
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::{json, Value};

fn check(v: &dyn Verifier, response: &str, gt: Value) -> (Status, f32, Value) {
    let meta = json!({});
    let o = v.verify(&VerifyInput {
        response,
        ground_truth: &gt,
        metadata: &meta,
    });
    (o.status, o.score, o.details)
}

#[test]
fn required_and_forbidden_keywords_with_partial_credit() {
    let v = KeywordVerifier::new(KeywordConfig {
        required: vec!["Paris".into(), "France".into()],
        forbidden: vec!["as an AI".into()],
        ..KeywordConfig::default()
    })
    .unwrap();
    let (s, score, _) = check(&v, "The capital of france is PARIS.", Value::Null);
    assert_eq!((s, score), (Status::Correct, 1.0));
    let (s, score, d) = check(&v, "As an AI, I think Paris.", Value::Null);
    assert_eq!(s, Status::Incorrect);
    assert!((score - 1.0 / 3.0).abs() < 1e-6, "{score}");
    assert_eq!(d["missing"], json!(["France"]));
    assert_eq!(d["forbidden_found"], json!(["as an AI"]));
    // Ground truth adds keywords (a string, a list, or {required, forbidden}).
    let (s, _, d) = check(&v, "Paris, France", json!("Seine"));
    assert_eq!(
        (s, d["missing"].clone()),
        (Status::Incorrect, json!(["Seine"]))
    );
    let (s, _, _) = check(&v, "Paris, France", json!({"forbidden": ["France"]}));
    assert_eq!(s, Status::Incorrect);
    let (s, _, d) = check(&v, "Paris, France", json!(42));
    assert_eq!(s, Status::Error, "{d}");
}

#[test]
fn whole_words_case_and_regex() {
    let v = KeywordVerifier::new(KeywordConfig {
        required: vec!["cat".into()],
        whole_words: true,
        case_sensitive: true,
        partial_credit: false,
        ..KeywordConfig::default()
    })
    .unwrap();
    assert_eq!(check(&v, "a cat sat", Value::Null).0, Status::Correct);
    assert_eq!(check(&v, "concatenate", Value::Null).1, 0.0);
    assert_eq!(check(&v, "a Cat sat", Value::Null).0, Status::Incorrect);
    let v = KeywordVerifier::new(KeywordConfig {
        required: vec![r"def \w+\(".into()],
        regex: true,
        ..KeywordConfig::default()
    })
    .unwrap();
    assert_eq!(check(&v, "def f(x):", Value::Null).0, Status::Correct);
    // A bad pattern is a configuration error naming the keyword, not a panic.
    let e = KeywordVerifier::new(KeywordConfig {
        required: vec!["(".into()],
        regex: true,
        ..KeywordConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("keyword.required") && e.contains('('), "{e}");
    // Nothing to check is `invalid`.
    let v = KeywordVerifier::new(KeywordConfig::default()).unwrap();
    assert_eq!(check(&v, "x", Value::Null).0, Status::Invalid);
}

fn other_factory(
    _: &serde_json::Map<String, Value>,
) -> rlvr_verify::error::Result<std::sync::Arc<dyn Verifier>> {
    unreachable_factory()
}

fn unreachable_factory() -> rlvr_verify::error::Result<std::sync::Arc<dyn Verifier>> {
    Err(rlvr_verify::VerifyError::UnknownVerifier(
        "never built".into(),
    ))
}

#[test]
fn registered_by_name_and_usable_in_specs_and_compositions() {
    register().unwrap();
    register().unwrap(); // idempotent
    assert!(names().contains(&"keyword".to_string()));
    // Another factory under the same name, or a built-in name, is refused.
    assert!(register_any("keyword", other_factory).is_err());
    assert!(register_any("math", other_factory).is_err());

    let v = from_spec(&json!({"type": "keyword", "required": ["42"]})).unwrap();
    let (s, _, _) = check(v.as_ref(), "the answer is 42", Value::Null);
    assert_eq!(s, Status::Correct);
    let named = from_spec(&json!("keyword")).unwrap();
    assert_eq!(check(named.as_ref(), "x", json!("x")).0, Status::Correct);
    // Inside a weighted sum with a built-in, and with a deadline.
    let sum = from_spec(&json!({"type": "weighted_sum", "parts": [
        {"weight": 0.5, "verifier": "math"},
        {"weight": 0.5, "verifier": {"type": "keyword", "forbidden": ["sorry"], "deadline_ms": 1000}},
    ]}))
    .unwrap();
    let (_, score, _) = check(sum.as_ref(), "\\boxed{4}", json!("4"));
    assert_eq!(score, 1.0);
    // Bad settings name the field.
    let e = from_spec(&json!({"type": "keyword", "requird": ["x"]}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("keyword.requird"), "{e}");
}
