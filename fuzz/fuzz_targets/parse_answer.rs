//! Arbitrary bytes → (gold, response) → the math verifier: must never panic, must return a
//! finite score, and must stay fast (the work budget, not the fuzzer's timeout, bounds it).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rlvr_verify::expr::{lex, Budget, Parser};
use rlvr_verify::math::MathVerifier;
use rlvr_verify::{Verifier, VerifyInput};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (gold, resp) = text.split_once('\n').unwrap_or((&text, &text));
    let mut b = Budget::new(200_000);
    if let Ok(toks) = lex(gold, &mut b) {
        let _ = Parser::new(&toks, &mut b).parse_all();
    }
    let v = MathVerifier::default();
    let gt = serde_json::Value::String(gold.to_string());
    let boxed = format!("\\boxed{{{resp}}}");
    for r in [resp, boxed.as_str()] {
        let t = Instant::now();
        let o = v.verify(&VerifyInput {
            response: r,
            ground_truth: &gt,
            metadata: &serde_json::Value::Null,
        });
        assert!(o.score.is_finite());
        assert!(t.elapsed() < Duration::from_millis(200), "slow: {:?}", t.elapsed());
    }
});
