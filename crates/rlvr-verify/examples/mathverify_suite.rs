//! Agreement of the `math` verifier with the expected verdicts of Math-Verify's own test
//! suite (the cases that `bench/verify/mathverify_suite.py` reads out of its sdist), per test
//! function, twice: with rlvr's defaults (as a user runs `rlvr verify --verifier math`), and
//! with the settings each test passes mapped to rlvr's (`match_types` → `extraction`,
//! `precision` → `precision`, `strict` → `strict_variables`, `allow_set_relation_comp` →
//! `relation_matches_set`). Every disagreement under the defaults is listed.
//!
//! Usage: `mathverify_suite CASES.jsonl`

use std::collections::BTreeMap;
use std::io::BufRead;

use rlvr_verify::math::{Extraction, MathConfig, MathVerifier, Precision};
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::Value;

fn mapped(case: &Value) -> MathConfig {
    let mut cfg = MathConfig::default();
    if let Some(mt) = case["match_types"].as_array() {
        cfg.extraction = mt
            .iter()
            .filter_map(|m| match m.as_str() {
                Some("latex") => Some(Extraction::Latex),
                Some("expr") => Some(Extraction::Expression),
                _ => None,
            })
            .collect();
    }
    if let Some(p) = case["precision"].as_u64() {
        cfg.precision = Precision::Decimals(p as u32);
    }
    cfg.strict_variables = case["strict"].as_bool() == Some(false);
    cfg.relation_matches_set = case["allow_set_relation_comp"].as_bool() == Some(true);
    cfg
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: mathverify_suite CASES.jsonl")?;
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    let default = MathVerifier::default();
    let meta = Value::Null;
    // test -> (cases, agree with defaults, agree with mapped settings)
    let mut tests: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut lines = Vec::new();
    for line in file.lines() {
        let v: Value = serde_json::from_str(&line?)?;
        let gold = Value::String(v["gold"].as_str().ok_or("gold")?.to_string());
        let pred = v["pred"].as_str().ok_or("pred")?;
        let expected = v["expected"].as_bool().ok_or("expected")?;
        let input = VerifyInput {
            response: pred,
            ground_truth: &gold,
            metadata: &meta,
        };
        let o = default.verify(&input);
        let m = MathVerifier::new(mapped(&v)).verify(&input);
        let ok = (o.status == Status::Correct) == expected;
        let ok_m = (m.status == Status::Correct) == expected;
        let name = format!(
            "{}::{}",
            v["file"].as_str().unwrap_or(""),
            v["test"].as_str().unwrap_or("")
        );
        let e = tests.entry(name.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
        e.2 += usize::from(ok_m);
        if !ok {
            let tail: String = {
                let cs: Vec<char> = pred.chars().collect();
                cs[cs.len().saturating_sub(160)..].iter().collect()
            };
            lines.push(format!(
                "  {name} (expected {expected}, rlvr {}, with its settings {}): gold {:?} vs …{:?} [extracted {}; {}]",
                o.status.as_str(),
                m.status.as_str(),
                v["gold"].as_str().unwrap_or(""),
                tail,
                o.details.get("extracted").unwrap_or(&Value::Null),
                o.details.get("reason").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    let (mut n, mut a, mut b) = (0, 0, 0);
    println!(
        "{:<60} {:>6} {:>9} {:>9}",
        "test", "cases", "defaults", "settings"
    );
    for (t, (c, x, y)) in &tests {
        println!("{t:<60} {c:>6} {x:>9} {y:>9}");
        n += c;
        a += x;
        b += y;
    }
    let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
    println!(
        "{:<60} {n:>6} {a:>9} {b:>9}   ({:.1}% with defaults, {:.1}% with each test's settings)",
        "all",
        pct(a),
        pct(b)
    );
    println!("disagreements with the defaults:");
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
