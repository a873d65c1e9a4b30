//! The math verifier over the real datasets in `../shared/datasets`: every gold answer must
//! verify against itself written the ways models write it, and against generated equivalent
//! rewritings; a gold must not verify against another problem's different gold. Counts are
//! printed (run with `--nocapture`), every failure is listed, nothing is excluded.

use std::path::Path;

use regex::Regex;
use rlvr_verify::math::MathVerifier;
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), k + 1))
        })
        .collect()
}

fn status(v: &MathVerifier, response: &str, gold: &Value) -> Status {
    v.verify(&VerifyInput {
        response,
        ground_truth: gold,
        metadata: &Value::Null,
    })
    .status
}

#[test]
fn gsm8k_golds_verify_in_three_forms() {
    let Some(path) = rlvr_conformance::require_shared("datasets/gsm8k/test.jsonl") else {
        return;
    };
    let v = MathVerifier::default();
    let rows = lines(&path);
    let mut failed = Vec::new();
    for (k, row) in rows.iter().enumerate() {
        let answer = row["answer"].as_str().expect("answer field");
        let n = answer.rsplit("####").next().unwrap().trim();
        let gold = Value::String(answer.to_string());
        for resp in [
            format!("Let me compute.\n#### {n}"),
            format!("So she makes \\boxed{{{n}}} dollars."),
            format!("Adding up, we get 12 + 3. The answer is {n}."),
        ] {
            if status(&v, &resp, &gold) != Status::Correct {
                failed.push(format!("line {}: gold {n:?} vs {resp:?}", k + 1));
            }
        }
    }
    eprintln!(
        "gsm8k: {} golds x 3 forms = {} checks, {} failed",
        rows.len(),
        rows.len() * 3,
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Equivalent rewritings of a gold answer (at least two per gold).
fn rewritings(gold: &str) -> Vec<String> {
    let int = Regex::new(r"^-?\d+$").unwrap();
    let frac = Regex::new(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$").unwrap();
    let thousands = Regex::new(r"^\d{1,3}(,\d{3})+$").unwrap();
    let g = gold.trim();
    let mut out: Vec<String> = Vec::new();
    if g.contains("\\dfrac") {
        out.push(g.replace("\\dfrac", "\\frac"));
    } else if g.contains("\\frac") {
        out.push(g.replace("\\frac", "\\dfrac"));
    }
    if int.is_match(g) {
        out.push(format!("{g}.0"));
        let n: i128 = g.parse().unwrap();
        out.push(format!("\\frac{{{}}}{{2}}", 2 * n));
        if n.abs() >= 1000 {
            let s = n.abs().to_string();
            let mut grouped = String::new();
            for (k, c) in s.chars().enumerate() {
                if k > 0 && (s.len() - k).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            out.push(format!("{}{grouped}", if n < 0 { "-" } else { "" }));
        }
    }
    if let Some(c) = frac.captures(g) {
        let (sign, a, b) = (&c[1], &c[2], &c[3]);
        out.push(format!("{sign}{a}/{b}"));
        let mut d: u64 = b.parse().unwrap();
        while d.is_multiple_of(2) {
            d /= 2;
        }
        while d.is_multiple_of(5) {
            d /= 5;
        }
        if d == 1 {
            let x = a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap();
            out.push(format!("{sign}{}", x));
        }
    }
    // reordered elements of a bare list or a set
    let depth0_commas = {
        let mut depth = 0i32;
        let mut n = 0;
        for ch in g.chars() {
            match ch {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => n += 1,
                _ => {}
            }
        }
        n
    };
    if depth0_commas > 0 && !g.contains("\\!") && !thousands.is_match(g) {
        let mut parts: Vec<&str> = g.split(',').map(str::trim).collect();
        parts.reverse();
        out.push(parts.join(", "));
    }
    if let Some(inner) = g.strip_prefix("\\{").and_then(|x| x.strip_suffix("\\}")) {
        let mut parts: Vec<&str> = inner.split(',').map(str::trim).collect();
        parts.reverse();
        out.push(format!("\\{{{}\\}}", parts.join(", ")));
    }
    // `x =` prefix for plain values (no variables, relations or structure)
    let plain = !g.chars().any(|c| c.is_ascii_alphabetic() && c != 'i')
        || g.starts_with("\\frac")
        || g.starts_with("\\sqrt")
        || g.starts_with("-\\frac");
    if plain
        && !g.contains([',', '=', '(', '[', '<', '>'])
        && !g.contains("\\text")
        && !g.contains('_')
    {
        out.push(format!("x = {g}"));
    }
    if let Some(t) = g.strip_prefix("\\text{").and_then(|x| x.strip_suffix('}')) {
        out.push(t.to_string());
        out.push(format!("\\textbf{{{t}}}"));
    }
    if g.contains("^\\circ") {
        out.push(g.replace("^\\circ", "^{\\circ}"));
    }
    // spacing: none at all, and thin spaces after commas
    let squeezed: String = g.chars().filter(|c| *c != ' ').collect();
    if squeezed != g && !g.contains("\\text") && !g.contains("\\mbox") {
        out.push(squeezed);
    }
    if g.contains(',') && !g.contains("\\!") && !thousands.is_match(g) {
        out.push(g.replace(',', ",\\,"));
    }
    if out.len() < 2 {
        out.push(format!("{{{g}}}"));
        out.push(format!("\\displaystyle {g}"));
    }
    out.retain(|r| r != g);
    out.dedup();
    out
}

/// Neighbouring golds that differ as strings but are the same answer (accepted, counted and
/// reported apart).
const KNOWN_EQUIVALENT: &[(&str, &str)] = &[("5", "x=5")];

#[test]
fn competition_golds_verify_against_themselves_and_rewritings() {
    let v = MathVerifier::default();
    let mut report = Vec::new();
    let mut all_failed = Vec::new();
    let mut any = false;
    for ds in ["math500", "aime24", "aime25", "amc23"] {
        let Some(path) = rlvr_conformance::require_shared(&format!("datasets/{ds}/test.jsonl"))
        else {
            continue;
        };
        any = true;
        let rows = lines(&path);
        let golds: Vec<String> = rows
            .iter()
            .map(|r| match &r["answer"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let (mut checks, mut failed, mut rewrites, mut cross, mut cross_failed) = (0, 0, 0, 0, 0);
        let mut known_equivalent = 0;
        for (k, g) in golds.iter().enumerate() {
            let gv = Value::String(g.clone());
            let mut responses = vec![format!(
                "Putting it all together, the final answer is $\\boxed{{{g}}}$. I hope it is correct."
            )];
            let rw = rewritings(g);
            assert!(
                rw.len() >= 2,
                "{ds} line {}: fewer than two rewritings of {g:?}",
                k + 1
            );
            rewrites += rw.len();
            responses.extend(rw.iter().map(|r| format!("Thus we obtain \\boxed{{{r}}}.")));
            for resp in responses {
                checks += 1;
                if status(&v, &resp, &gv) != Status::Correct {
                    failed += 1;
                    all_failed.push(format!("{ds} line {}: gold {g:?} vs {resp:?}", k + 1));
                }
            }
            // another problem's different gold must be rejected
            let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            if let Some(other) = (1..golds.len())
                .map(|d| &golds[(k + d) % golds.len()])
                .find(|o| norm(o) != norm(g))
            {
                cross += 1;
                let resp = format!("The answer is $\\boxed{{{other}}}$.");
                let st = status(&v, &resp, &gv);
                if st == Status::Correct && KNOWN_EQUIVALENT.contains(&(g.as_str(), other.as_str()))
                {
                    known_equivalent += 1;
                } else if st != Status::Incorrect {
                    cross_failed += 1;
                    all_failed.push(format!(
                        "{ds} line {}: gold {g:?} judged {st:?} against other gold {other:?}",
                        k + 1
                    ));
                }
            }
        }
        report.push(format!(
            "{ds}: {} golds, {rewrites} rewritings, {checks} positive checks ({failed} failed), {cross} cross-pairs ({cross_failed} not judged incorrect, {known_equivalent} accepted as listed equivalents)",
            golds.len()
        ));
    }
    for r in &report {
        eprintln!("{r}");
    }
    if !any {
        return;
    }
    assert!(
        all_failed.is_empty(),
        "{} failures:\n{}",
        all_failed.len(),
        all_failed.join("\n")
    );
}
