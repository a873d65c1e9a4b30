//! Building the programs that test a solution, and reading what they report. Pure functions:
//! nothing here runs anything.
//!
//! **One harness program per sample** for `humaneval`, `asserts`, `io` with `fn_name`, and `io`
//! in the `single` mode: `harness.py` loads the solution as a module named `solution` (so its
//! `if __name__ == "__main__":` block does not run), then runs each test inside
//! `try/except BaseException` and prints one line per test, `__RLVR_<nonce>__ {json}`, as soon
//! as it finishes — a crash, `sys.exit` or infinite loop in one test does not hide the results
//! of the tests before it, and the tests after it are reported "not run". The per-sample limit
//! is the sandbox timeout; where the interpreter has `signal.setitimer` (Docker, a native
//! runner — not WASI) each test also gets its own timer.
//!
//! **One program per test** for `io` stdin tests in the default `separate` mode: the solution
//! runs unmodified as `__main__` with the test's stdin; its stdout is compared here. That is
//! the honest isolation (a fresh interpreter per test, `sys.stdin.buffer`/`open(0)` work) at
//! the price of one interpreter start per test.
//!
//! Expected outputs never enter the sandbox: `io` results (stdout or the `fn_name` return
//! value as JSON) come back and are compared here. Assert and HumanEval tests must run inside,
//! next to the solution.
//!
//! **The marker nonce** is random per run and reaches the harness on stdin, not in its source
//! (which the solution could read from `main.py`): a solution that prints result lines cannot
//! guess it. In-process Python cannot be fully shielded from a solution that inspects the
//! harness's frames; the nonce defeats printing, guessing and reading files.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use rlvr_sandbox::Program;
use serde_json::{json, Value};

use crate::spec::{IoCase, TestSpec};

const HARNESS: &str = include_str!("harness.py");

/// A random 128-bit hex nonce (SipHash with the process's random keys over a counter, the
/// time and the process id).
pub fn new_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = String::with_capacity(32);
    for k in 0u8..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(now);
        h.write_u32(std::process::id());
        h.write_u8(k);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// The marker that starts a result line of the run with `nonce`.
pub fn marker(nonce: &str) -> String {
    format!("__RLVR_{nonce}__ ")
}

/// The HumanEval solution module: `prompt + code`, unless `code` itself defines the entry
/// point at top level (`def entry_point(`), in which case the part of the prompt before the
/// entry point's `def` (imports and helper functions) is prepended instead of the whole
/// prompt — the rule evalplus uses, generalised to the prompt's helpers.
pub fn humaneval_solution(prompt: &str, code: &str, entry_point: &str) -> String {
    let def = |name: &str| {
        regex::Regex::new(&format!(
            r"(?m)^(?:async[ \t]+)?def[ \t]+{}[ \t]*\(",
            regex::escape(name)
        ))
        .expect("valid regex")
    };
    let re = def(entry_point);
    if !re.is_match(code) {
        return format!("{prompt}{code}");
    }
    let head = match re.find(prompt) {
        Some(m) => &prompt[..m.start()],
        None => prompt,
    };
    format!("{head}\n{code}")
}

/// How to read the runs of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// One harness program reporting every test (tests pass when reported `ok`).
    Harness,
    /// One harness program reporting each `fn_name` call's return value (compared here).
    HarnessCalls,
    /// One harness program reporting each stdin test's stdout (compared here).
    HarnessStdin,
    /// One plain program per stdin test (stdout compared here).
    Separate,
}

/// The programs testing one solution.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How to read the results.
    pub kind: PlanKind,
    /// The programs to run (one, or one per test for [`PlanKind::Separate`]).
    pub programs: Vec<Program>,
    /// The number of tests.
    pub tests: usize,
    /// The nonce of the harness's result lines.
    pub nonce: String,
}

/// Options of the harness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarnessOptions {
    /// Per-test timer in seconds inside a harness (used where signals exist); `None` = none.
    pub per_test_timeout_s: Option<f64>,
    /// `io` stdin tests in one harness program instead of one program per test.
    pub stdin_single: bool,
    /// Bytes of stdout kept per stdin test in the single-program mode.
    pub output_cap: usize,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            per_test_timeout_s: None,
            stdin_single: false,
            output_cap: 1 << 20,
        }
    }
}

/// The harness program for a config object (embedded as a JSON string literal, which is a
/// valid Python string literal), with the nonce as its stdin.
pub fn harness_program(cfg: &Value, nonce: &str) -> Program {
    let literal = serde_json::to_string(&cfg.to_string()).expect("a string serialises");
    let source = HARNESS.replacen("__RLVR_CFG__", &literal, 1);
    Program::python(source).with_stdin(format!("{nonce}\n"))
}

/// The programs testing `code` against `spec`.
pub fn plan(spec: &TestSpec, code: &str, opts: &HarnessOptions) -> Plan {
    let nonce = new_nonce();
    let timer = opts.per_test_timeout_s;
    let one = |kind: PlanKind, cfg: Value| Plan {
        kind,
        programs: vec![harness_program(&cfg, &nonce)],
        tests: spec.len(),
        nonce: nonce.clone(),
    };
    match spec {
        TestSpec::HumanEval {
            prompt,
            test,
            entry_point,
        } => one(
            PlanKind::Harness,
            json!({
                "mode": "tests",
                "solution": humaneval_solution(prompt, code, entry_point),
                "tests": [format!("{test}\n\ncheck({entry_point})\n")],
                "per_test_timeout_s": null,
            }),
        ),
        TestSpec::Asserts { setup, tests } => one(
            PlanKind::Harness,
            json!({
                "mode": "tests",
                "solution": code,
                "setup": setup,
                "tests": tests,
                "per_test_timeout_s": timer,
            }),
        ),
        TestSpec::Io {
            fn_name: Some(name),
            cases,
        } => one(
            PlanKind::HarnessCalls,
            json!({
                "mode": "call",
                "solution": code,
                "fn_name": name,
                "inputs": cases.iter().map(|c| c.input.clone()).collect::<Vec<_>>(),
                "per_test_timeout_s": timer,
            }),
        ),
        TestSpec::Io {
            fn_name: None,
            cases,
        } if opts.stdin_single => one(
            PlanKind::HarnessStdin,
            json!({
                "mode": "stdin",
                "solution": code,
                "inputs": cases.iter().map(stdin_of).collect::<Vec<_>>(),
                "per_test_timeout_s": timer,
                "output_cap": opts.output_cap,
            }),
        ),
        TestSpec::Io {
            fn_name: None,
            cases,
        } => Plan {
            kind: PlanKind::Separate,
            programs: cases
                .iter()
                .map(|c| Program::python(code).with_stdin(stdin_of(c)))
                .collect(),
            tests: cases.len(),
            nonce,
        },
    }
}

fn stdin_of(c: &IoCase) -> String {
    c.input.as_str().unwrap_or_default().to_string()
}

/// One test's report from a harness.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    /// Whether the test ran to the end without an exception.
    pub ok: bool,
    /// Why not (`AssertionError: … [<test 2> line 1: assert …]`, `timeout`…).
    pub reason: Option<String>,
    /// The `fn_name` call's return value.
    pub result: Option<Value>,
    /// The captured stdout (stdin tests in the single-program mode).
    pub stdout: Option<String>,
}

/// Everything a harness reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reports {
    /// The solution (or setup) failed to load: the exception.
    pub setup_error: Option<String>,
    /// Reports by test index.
    pub tests: BTreeMap<usize, TestReport>,
    /// Whether the harness started (read its nonce and config, before any solution code ran).
    pub started: bool,
    /// Whether the harness reached its end.
    pub done: bool,
}

/// Reads the result lines of `nonce` from a harness's stdout; other lines are ignored.
pub fn parse_reports(stdout: &str, nonce: &str) -> Reports {
    let tag = marker(nonce);
    let mut r = Reports::default();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix(&tag) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(rest) else {
            continue;
        };
        if v.get("started").is_some() {
            r.started = true;
        } else if v.get("done").is_some() {
            r.done = true;
        } else if let Some(e) = v.get("setup_error") {
            r.setup_error = Some(e.as_str().unwrap_or("setup failed").to_string());
        } else if let Some(i) = v.get("test").and_then(Value::as_u64) {
            r.tests.entry(i as usize).or_insert(TestReport {
                ok: v.get("ok") == Some(&Value::Bool(true)),
                reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
                result: v.get("result").cloned(),
                stdout: v.get("stdout").and_then(Value::as_str).map(str::to_string),
            });
        }
    }
    r
}

/// Normalises program output: `\r\n` → `\n`, trailing whitespace of each line and trailing
/// blank lines dropped.
pub fn normalize_output(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    let keep = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    lines[..keep].join("\n")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol || (a - b).abs() <= tol * b.abs()
}

/// Whether program output `got` matches `expected` after [`normalize_output`]. With a
/// tolerance, lines are compared token by token (split on whitespace) and tokens that both
/// parse as numbers may differ by `tol`, absolute or relative.
pub fn outputs_match(expected: &str, got: &str, tol: Option<f64>) -> bool {
    let (e, g) = (normalize_output(expected), normalize_output(got));
    if e == g {
        return true;
    }
    let Some(tol) = tol else {
        return false;
    };
    let (el, gl): (Vec<&str>, Vec<&str>) = (e.lines().collect(), g.lines().collect());
    el.len() == gl.len()
        && el.iter().zip(&gl).all(|(a, b)| {
            let (ta, tb): (Vec<&str>, Vec<&str>) = (
                a.split_whitespace().collect(),
                b.split_whitespace().collect(),
            );
            ta.len() == tb.len()
                && ta.iter().zip(&tb).all(|(x, y)| {
                    x == y
                        || match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(x), Ok(y)) => close(y, x, tol),
                            _ => false,
                        }
                })
        })
}

fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Whether a returned value equals the expected one, as Python's `==` would on JSON data
/// (tuples arrive as lists; `1 == 1.0`; `True == 1`), floats within `tol` when given.
pub fn values_match(expected: &Value, got: &Value, tol: Option<f64>) -> bool {
    match (expected, got) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_match(x, y, tol))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| values_match(x, y, tol)))
        }
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) if a.is_i64() && b.is_i64() => a == b,
        (Value::Number(a), Value::Number(b)) if a.is_u64() && b.is_u64() => a == b,
        (a, b) => match (as_num(a), as_num(b)) {
            (Some(x), Some(y)) => match tol {
                Some(t) => close(y, x, t),
                None => x == y,
            },
            _ => a == b,
        },
    }
}

/// APPS's leniency for an expected value given as a one-element list: the return value may
/// equal the list or its element.
pub fn call_matches(expected: &Value, got: &Value, tol: Option<f64>) -> bool {
    values_match(expected, got, tol)
        || matches!(expected, Value::Array(a) if a.len() == 1 && values_match(&a[0], got, tol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn humaneval_rule() {
        let p = "import math\n\ndef helper():\n    pass\n\ndef f(x):\n    \"\"\"doc\"\"\"\n";
        assert_eq!(
            humaneval_solution(p, "    return x\n", "f"),
            format!("{p}    return x\n")
        );
        let s = humaneval_solution(p, "def f(x):\n    return x\n", "f");
        assert_eq!(
            s,
            "import math\n\ndef helper():\n    pass\n\n\ndef f(x):\n    return x\n"
        );
        // `def ff(` is not the entry point
        assert!(humaneval_solution(p, "def ff(x): pass", "f").starts_with(p));
    }

    #[test]
    fn output_comparison() {
        assert!(outputs_match("1 2\n3\n", "1 2   \r\n3\n\n\n", None));
        assert!(!outputs_match("1 2\n3", "1  2\n3", None));
        assert!(!outputs_match("0.5", "0.5000001", None));
        assert!(outputs_match("0.5", "0.5000001", Some(1e-6)));
        assert!(!outputs_match("\n1", "1", None));
    }

    #[test]
    fn value_comparison() {
        use serde_json::json;
        assert!(values_match(
            &json!([1, [2, 3]]),
            &json!([1.0, [2, 3]]),
            None
        ));
        assert!(values_match(&json!(1), &json!(true), None));
        assert!(!values_match(&json!("1"), &json!(1), None));
        assert!(!values_match(
            &json!({"a": 1}),
            &json!({"a": 1, "b": 2}),
            None
        ));
        assert!(call_matches(&json!([5]), &json!(5), None));
        assert!(values_match(&json!(0.1), &json!(0.1000000001), Some(1e-6)));
    }

    #[test]
    fn reports() {
        let n = "abc";
        let out = "junk\n__RLVR_abc__ {\"started\": true}\n__RLVR_abc__ {\"test\": 0, \"ok\": true}\n__RLVR_xyz__ {\"test\": 1, \"ok\": true}\n__RLVR_abc__ {\"test\": 1, \"ok\": false, \"reason\": \"boom\"}\n__RLVR_abc__ {\"done\": true}\n";
        let r = parse_reports(out, n);
        assert!(r.done && r.started);
        assert!(r.tests[&0].ok);
        assert_eq!(r.tests[&1].reason.as_deref(), Some("boom"));
    }
}
