//! Benchmark driver for `bench/verify/run.sh`: reads JSONL pairs `{"gold": str, "response":
//! str}`, verifies each with the default math verifier (one thread), and writes one line per
//! pair `{"correct": bool, "status": str, "ns": int}` to the output file; prints pairs/s and
//! latency percentiles as JSON on stdout.
//!
//! Usage: `verify_bench PAIRS.jsonl OUT.jsonl [REPEATS]`

use std::io::{BufRead, Write};
use std::time::Instant;

use rlvr_verify::math::MathVerifier;
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: verify_bench PAIRS.jsonl OUT.jsonl [REPEATS]".into());
    }
    let repeats: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let file = std::io::BufReader::new(std::fs::File::open(&args[1])?);
    let mut pairs = Vec::new();
    for line in file.lines() {
        let v: Value = serde_json::from_str(&line?)?;
        let gold = Value::String(v["gold"].as_str().ok_or("gold")?.to_string());
        let resp = v["response"].as_str().ok_or("response")?.to_string();
        pairs.push((gold, resp));
    }
    let verifier = MathVerifier::default();
    let meta = Value::Null;
    let mut best = vec![u64::MAX; pairs.len()];
    let mut verdicts = Vec::with_capacity(pairs.len());
    let mut total_best = f64::MAX;
    for rep in 0..repeats.max(1) {
        let t_all = Instant::now();
        for (k, (gold, resp)) in pairs.iter().enumerate() {
            let t = Instant::now();
            let o = verifier.verify(&VerifyInput {
                response: resp,
                ground_truth: gold,
                metadata: &meta,
            });
            let ns = t.elapsed().as_nanos() as u64;
            best[k] = best[k].min(ns);
            if rep == 0 {
                verdicts.push(o.status);
            }
        }
        total_best = total_best.min(t_all.elapsed().as_secs_f64());
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[2])?);
    for (s, ns) in verdicts.iter().zip(&best) {
        writeln!(
            out,
            "{}",
            json!({"correct": *s == Status::Correct, "status": s.as_str(), "ns": ns})
        )?;
    }
    let mut lat = best.clone();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize] as f64 / 1e3;
    println!(
        "{}",
        json!({
            "pairs": pairs.len(),
            "seconds": total_best,
            "pairs_per_s": pairs.len() as f64 / total_best,
            "p50_us": pct(0.5),
            "p99_us": pct(0.99),
            "max_us": pct(1.0),
        })
    );
    Ok(())
}
