//! `rlvr verify`: score JSONL lines `{"response", "ground_truth", ...}` with a verifier, one
//! `{"score", "status", "details"}` line out per line in, in order; a summary on stderr.
//! Lines are read in chunks of `--batch-size` and the well-formed ones of a chunk go to the
//! verifier's `verify_batch` at once (one Python worker call, concurrent sandbox runs…).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rlvr_verify::compose::Deadline;
use rlvr_verify::{registry, Outcome, RewardMapping, Status, Tally, Verifier, VerifyInput};
use serde_json::{json, Map, Value};

#[derive(Args)]
pub struct VerifyArgs {
    /// Verifier: a built-in name (`math`, `format`), a JSON spec file (`spec.json`) or an
    /// inline JSON spec (`{"type": "gated", "gate": "format", "inner": "math"}`).
    #[arg(long)]
    verifier: String,
    /// Input JSONL file (`-` for stdin); each line `{"response": .., "ground_truth": .., ...}`.
    #[arg(long)]
    input: PathBuf,
    /// Settings of the named verifier as a JSON object (inline or a file), e.g.
    /// `{"last_number_fallback": false}`.
    #[arg(long)]
    config: Option<String>,
    /// Wall-clock bound per line in milliseconds (verification runs on a worker thread; past
    /// the bound the line gets status `error`). With a bound, lines are verified one at a
    /// time (no batching), each within the bound.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Lines read and verified together, as one `verify_batch` call (its well-formed lines);
    /// output stays one line per input line, in order.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

/// Reads a JSON value given inline or as a file path.
fn json_arg(what: &str, s: &str) -> Result<Value> {
    let t = s.trim_start();
    let text = if t.starts_with('{') || t.starts_with('"') {
        s.to_string()
    } else {
        std::fs::read_to_string(s).with_context(|| format!("{what}: reading {s}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{what}: {s} is not valid JSON"))
}

fn build_verifier(args: &VerifyArgs) -> Result<Arc<dyn Verifier>> {
    let known = registry::names();
    let is_name = registry::is_known(&args.verifier);
    let mut spec = if is_name {
        json!({ "type": args.verifier })
    } else if args.verifier.ends_with(".json") || args.verifier.trim_start().starts_with('{') {
        json_arg("--verifier", &args.verifier)?
    } else {
        anyhow::bail!(
            "--verifier {}: unknown verifier (known: {}; or a JSON spec)",
            args.verifier,
            known.join(", ")
        );
    };
    if let Some(c) = &args.config {
        let Value::Object(extra) = json_arg("--config", c)? else {
            anyhow::bail!("--config: expected a JSON object");
        };
        let Value::Object(m) = &mut spec else {
            anyhow::bail!("--config applies to an object spec, not {spec}");
        };
        m.extend(extra);
    }
    let v = registry::from_spec(&spec).with_context(|| format!("--verifier {}", args.verifier))?;
    Ok(match args.deadline_ms {
        Some(ms) => Arc::new(Deadline {
            inner: v,
            limit: Duration::from_millis(ms.max(1)),
            mapping: RewardMapping::default(),
        }),
        None => v,
    })
}

/// The output for a line that could not be read as an input record.
fn malformed(line: usize, reason: String) -> Outcome {
    Outcome {
        score: RewardMapping::default().error,
        status: Status::Error,
        details: json!({"line": line, "reason": reason}),
    }
}

/// A well-formed input record: the response, the ground truth, and the other fields.
struct Record {
    response: String,
    ground_truth: Value,
    metadata: Value,
}

/// Reads one input line (1-based `line` for messages); a malformed line is its `error`
/// outcome.
fn parse_line(line: usize, text: &str) -> std::result::Result<Record, Outcome> {
    let rec: Value = serde_json::from_str(text)
        .map_err(|e| malformed(line, format!("line {line}: invalid JSON: {e}")))?;
    let Value::Object(mut m) = rec else {
        return Err(malformed(
            line,
            format!("line {line}: expected a JSON object"),
        ));
    };
    let response = match m.remove("response") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(malformed(
                line,
                format!("line {line}: field `response` must be a string, got {other}"),
            ))
        }
        None => {
            return Err(malformed(
                line,
                format!("line {line}: missing field `response`"),
            ))
        }
    };
    let Some(ground_truth) = m.remove("ground_truth") else {
        return Err(malformed(
            line,
            format!("line {line}: missing field `ground_truth`"),
        ));
    };
    Ok(Record {
        response,
        ground_truth,
        metadata: Value::Object(m),
    })
}

/// Verifies a chunk of parsed lines: the well-formed ones in one `verify_batch` call. Returns
/// `(outcome, malformed)` per line, in order.
fn verify_chunk(
    v: &dyn Verifier,
    parsed: Vec<std::result::Result<Record, Outcome>>,
) -> Vec<(Outcome, bool)> {
    let inputs: Vec<VerifyInput> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .map(|r| VerifyInput {
            response: &r.response,
            ground_truth: &r.ground_truth,
            metadata: &r.metadata,
        })
        .collect();
    let mut outcomes = if inputs.is_empty() {
        Vec::new()
    } else {
        v.verify_batch(&inputs)
    }
    .into_iter();
    parsed
        .into_iter()
        .map(|p| match p {
            Ok(_) => (
                outcomes.next().unwrap_or_else(|| {
                    Outcome::error(
                        &RewardMapping::default(),
                        "the verifier returned fewer outcomes than inputs",
                    )
                }),
                false,
            ),
            Err(o) => (o, true),
        })
        .collect()
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let verifier = build_verifier(&args)?;
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.input)
            .with_context(|| format!("--input {}", args.input.display()))?;
        Box::new(BufReader::new(f))
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut tally = Tally::default();
    let mut malformed_lines = 0u64;
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut reader = reader;
    let mut line = 0usize;
    // With a per-line deadline the verifier is the `Deadline` wrapper, whose batches are
    // per-line calls anyway; reading one line at a time keeps the output streaming.
    let batch = if args.deadline_ms.is_some() {
        1
    } else {
        args.batch_size.max(1) as usize
    };
    let mut eof = false;
    while !eof {
        let mut parsed = Vec::with_capacity(batch);
        while parsed.len() < batch {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).with_context(|| {
                format!(
                    "--input {}: reading line {}",
                    args.input.display(),
                    line + 1
                )
            })?;
            if n == 0 {
                eof = true;
                break;
            }
            line += 1;
            parsed.push(match std::str::from_utf8(&buf) {
                Ok(text) => parse_line(line, text.trim_end_matches(['\n', '\r'])),
                Err(e) => Err(malformed(line, format!("line {line}: not UTF-8: {e}"))),
            });
        }
        for (o, bad) in verify_chunk(verifier.as_ref(), parsed) {
            malformed_lines += bad as u64;
            tally.add(&o);
            let mut rec = Map::new();
            rec.insert("score".into(), json!(o.score));
            rec.insert("status".into(), json!(o.status.as_str()));
            rec.insert("details".into(), o.details);
            serde_json::to_writer(&mut out, &Value::Object(rec))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    let secs = start.elapsed().as_secs_f64();
    let summary = json!({
        "verifier": verifier.name(),
        "lines": tally.total(),
        "correct": tally.correct,
        "incorrect": tally.incorrect,
        "invalid": tally.invalid,
        "error": tally.error,
        "malformed": malformed_lines,
        "mean_score": tally.mean_score(),
        "seconds": secs,
        "lines_per_s": if secs > 0.0 { tally.total() as f64 / secs } else { 0.0 },
    });
    eprintln!(
        "rlvr verify: {} lines: {} correct, {} incorrect, {} invalid, {} error ({} malformed); mean score {:.4}; {:.0} lines/s",
        tally.total(),
        tally.correct,
        tally.incorrect,
        tally.invalid,
        tally.error,
        malformed_lines,
        tally.mean_score(),
        summary["lines_per_s"].as_f64().unwrap_or(0.0)
    );
    eprintln!("summary: {summary}");
    Ok(())
}
