//! Time of the default `math` verifier on hostile responses of the default maximum size
//! (1 MiB): repeated openers, phrases, numbers, boxes, nesting. Prints the slowest of 5 runs
//! per input; `bench/verify/README.md` quotes it. Run in release:
//! `cargo run --release -p rlvr-verify --example hostile`.

use std::time::Instant;

use rlvr_verify::math::MathVerifier;
use rlvr_verify::{Verifier, VerifyInput};
use serde_json::Value;

fn fill(unit: &str, bytes: usize) -> String {
    unit.repeat(bytes / unit.len())
}

fn main() {
    let mib = (1 << 20) - 64;
    let inputs: Vec<(&str, String)> = vec![
        ("\\( repeated", fill("\\(", mib)),
        ("$ repeated", fill("$", mib)),
        ("$$ x", fill("$$ x", mib)),
        ("\\[ repeated", fill("\\[", mib)),
        ("'1 ' repeated", fill("1 ", mib)),
        ("'1,' repeated", fill("1,", mib)),
        ("'answer is ' repeated", fill("answer is ", mib)),
        ("'Answer: ' repeated", fill("Answer: ", mib)),
        ("'final answer is ' repeated", fill("final answer is ", mib)),
        ("\\boxed{ repeated", fill("\\boxed{", mib)),
        ("\\boxed{1} and repeated", fill("\\boxed{1} and ", mib)),
        ("{ repeated", fill("{", mib)),
        ("<answer> repeated", fill("<answer>", mib)),
        ("</think> repeated", fill("</think>", mib)),
        ("#### repeated", fill("####", mib)),
        ("prose", fill("the cat sat on the mat ", mib)),
        ("\\\\ repeated", fill("\\\\", mib)),
        ("digits", fill("1234567890", mib)),
    ];
    let gold = Value::String("\\frac{1}{2}".into());
    let v = MathVerifier::default();
    let mut worst = 0f64;
    for (name, text) in &inputs {
        let mut slowest = 0f64;
        let mut status = "";
        for _ in 0..5 {
            let t = Instant::now();
            let o = v.verify(&VerifyInput {
                response: text,
                ground_truth: &gold,
                metadata: &Value::Null,
            });
            slowest = slowest.max(t.elapsed().as_secs_f64() * 1e3);
            status = o.status.as_str();
        }
        worst = worst.max(slowest);
        println!(
            "{name:<32} {:>8} bytes {slowest:>8.2} ms  {status}",
            text.len()
        );
    }
    println!("slowest: {worst:.2} ms");
}
