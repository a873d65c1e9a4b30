//! Agreement of the default `math` verifier with Math-Verify on the hard pairs of
//! `bench/verify/hard_pairs.jsonl` (made by `bench/verify/make_hard_pairs.py`), per family,
//! with every disagreement listed.
//!
//! Usage: `hard_pairs [PAIRS.jsonl]` (default: the committed file).

use std::collections::BTreeMap;
use std::io::BufRead;

use rlvr_verify::math::MathVerifier;
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/verify/hard_pairs.jsonl"
    );
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_string());
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    let verifier = MathVerifier::default();
    let meta = Value::Null;
    // family -> (pairs, agree, statuses of the disagreements)
    let mut fams: BTreeMap<String, (usize, usize, BTreeMap<&'static str, usize>)> = BTreeMap::new();
    let mut lines = Vec::new();
    // batch -> (pairs, agree)
    let mut batches: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for line in file.lines() {
        let v: Value = serde_json::from_str(&line?)?;
        let gold = Value::String(v["gold"].as_str().ok_or("gold")?.to_string());
        let resp = v["response"].as_str().ok_or("response")?;
        let mv = v["mathverify"].as_bool().ok_or("mathverify")?;
        let o = verifier.verify(&VerifyInput {
            response: resp,
            ground_truth: &gold,
            metadata: &meta,
        });
        let rl = o.status == Status::Correct;
        let batch = v["batch"].as_u64().unwrap_or(1);
        let b = batches.entry(batch).or_default();
        b.0 += 1;
        b.1 += usize::from(rl == mv);
        let fam = v["family"].as_str().ok_or("family")?.to_string();
        let e = fams.entry(fam).or_default();
        e.0 += 1;
        if rl == mv {
            e.1 += 1;
        } else {
            *e.2.entry(o.status.as_str()).or_default() += 1;
            lines.push(format!(
                "  #{} {} (Math-Verify {}, rlvr {}): gold {:?} vs {:?} [extracted {}]",
                v["id"],
                v["case"].as_str().unwrap_or(""),
                if mv { "equal" } else { "different" },
                o.status.as_str(),
                v["gold"].as_str().unwrap_or(""),
                resp,
                o.details.get("extracted").unwrap_or(&Value::Null)
            ));
        }
    }
    let (mut n, mut a) = (0, 0);
    println!("| family | pairs | agree | % | rlvr status on disagreements |");
    println!("|---|---|---|---|---|");
    for (fam, (k, ag, st)) in &fams {
        n += k;
        a += ag;
        println!(
            "| {fam} | {k} | {ag} | {:.1} | {st:?} |",
            100.0 * *ag as f64 / *k as f64
        );
    }
    println!(
        "| all | {n} | {a} | {:.1} | |",
        100.0 * a as f64 / n.max(1) as f64
    );
    for (b, (k, ag)) in &batches {
        println!(
            "batch {b}: {ag}/{k} ({:.1}%)",
            100.0 * *ag as f64 / *k as f64
        );
    }
    println!("disagreements:");
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
