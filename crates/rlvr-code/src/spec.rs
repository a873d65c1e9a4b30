//! The `ground_truth` of a code task (`../shared/notes/interfaces.md`, "Code tests"):
//!
//! - `{"format": "humaneval", "prompt": str, "test": str, "entry_point": str}`
//! - `{"format": "asserts", "setup"?: str, "tests": [str]}`
//! - `{"format": "io", "inputs": [str], "outputs": [str], "fn_name"?: str}`
//!
//! The object may also arrive as a string holding that JSON. When `format` is missing it is
//! inferred from the keys (`entry_point` → humaneval, `inputs`/`outputs` → io, `tests` →
//! asserts). For `io`, APPS's shapes are accepted too: an input or output may be a JSON array
//! (for `fn_name` tests, the argument list / the expected value; for stdin tests, lines
//! joined by `\n`). A `fn_name` input given as a string holds one JSON argument per line
//! (LiveCodeBench); a single line holding a list is the argument list when the function's
//! arity fits its length (and the function takes more than one argument), else the one
//! argument. Errors name the field at fault (`ground_truth.tests[2]: …`).

use serde_json::{Map, Value};

/// The tests of one task.
#[derive(Debug, Clone, PartialEq)]
pub enum TestSpec {
    /// HumanEval: the prompt opens the function, `test` defines `check(candidate)`.
    HumanEval {
        /// The problem prompt (imports, signature, docstring).
        prompt: String,
        /// The test code defining `check`.
        test: String,
        /// The function under test.
        entry_point: String,
    },
    /// A list of independent assert statements (MBPP), after optional setup code.
    Asserts {
        /// Code run after the solution and before the tests (imports, fixtures).
        setup: String,
        /// One test per entry (each usually one `assert`).
        tests: Vec<String>,
    },
    /// Input/output pairs.
    Io {
        /// Calls of this function instead of stdin/stdout when set.
        fn_name: Option<String>,
        /// The tests.
        cases: Vec<IoCase>,
    },
}

/// One I/O test.
#[derive(Debug, Clone, PartialEq)]
pub struct IoCase {
    /// For stdin tests: the text given on stdin. For `fn_name` tests: the raw input (a JSON
    /// array of arguments, or a string of newline-separated JSON arguments, or one JSON text).
    pub input: Value,
    /// For stdin tests: the expected stdout (a string). For `fn_name` tests: the expected
    /// return value (decoded from a JSON string when it parses, else the string itself).
    pub output: Value,
}

impl TestSpec {
    /// The format name.
    pub fn format(&self) -> &'static str {
        match self {
            TestSpec::HumanEval { .. } => "humaneval",
            TestSpec::Asserts { .. } => "asserts",
            TestSpec::Io { .. } => "io",
        }
    }

    /// Number of tests (HumanEval's `check` counts as one).
    pub fn len(&self) -> usize {
        match self {
            TestSpec::HumanEval { .. } => 1,
            TestSpec::Asserts { tests, .. } => tests.len(),
            TestSpec::Io { cases, .. } => cases.len(),
        }
    }

    /// Whether there are no tests (never true for a parsed spec).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `n` tests (HumanEval is left as is).
    pub fn truncate(&mut self, n: usize) {
        match self {
            TestSpec::HumanEval { .. } => {}
            TestSpec::Asserts { tests, .. } => tests.truncate(n.max(1)),
            TestSpec::Io { cases, .. } => cases.truncate(n.max(1)),
        }
    }
}

fn err(field: &str, msg: impl std::fmt::Display) -> String {
    if field.is_empty() {
        format!("ground_truth: {msg}")
    } else {
        format!("ground_truth.{field}: {msg}")
    }
}

fn string(m: &Map<String, Value>, key: &str, required: bool) -> Result<String, String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None => Err(err(key, "missing")),
        Some(other) => Err(err(key, format!("expected a string, got {}", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn array<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>, String> {
    match m.get(key) {
        Some(Value::Array(a)) if !a.is_empty() => Ok(a),
        Some(Value::Array(_)) => Err(err(key, "no tests (empty list)")),
        None => Err(err(key, "missing")),
        Some(other) => Err(err(key, format!("expected a list, got {}", kind(other)))),
    }
}

/// Whether `s` is newline-separated JSON values or one JSON text (an `fn_name` input).
fn json_args_ok(s: &str) -> bool {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    !lines.is_empty()
        && (lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
            || serde_json::from_str::<Value>(s).is_ok())
}

/// Parses a ground truth (an object, or a string holding one).
pub fn parse(gt: &Value) -> Result<TestSpec, String> {
    let owned;
    let m = match gt {
        Value::Object(m) => m,
        Value::String(s) => {
            owned = serde_json::from_str::<Value>(s)
                .map_err(|e| err("", format!("a string that is not JSON ({e})")))?;
            match &owned {
                Value::Object(m) => m,
                other => {
                    return Err(err(
                        "",
                        format!("expected an object, got a string holding {}", kind(other)),
                    ))
                }
            }
        }
        other => return Err(err("", format!("expected an object, got {}", kind(other)))),
    };
    let format = match m.get("format") {
        Some(Value::String(f)) => f.clone(),
        Some(other) => {
            return Err(err(
                "format",
                format!("expected a string, got {}", kind(other)),
            ))
        }
        None if m.contains_key("entry_point") => "humaneval".into(),
        None if m.contains_key("inputs") || m.contains_key("outputs") => "io".into(),
        None if m.contains_key("tests") => "asserts".into(),
        None => return Err(err("format", "missing (humaneval, asserts, io)")),
    };
    match format.as_str() {
        "humaneval" => {
            let entry_point = string(m, "entry_point", true)?;
            if !is_identifier(&entry_point) {
                return Err(err(
                    "entry_point",
                    format!("`{entry_point}` is not a Python identifier"),
                ));
            }
            Ok(TestSpec::HumanEval {
                prompt: string(m, "prompt", true)?,
                test: string(m, "test", true)?,
                entry_point,
            })
        }
        "asserts" => {
            let tests = array(m, "tests")?
                .iter()
                .enumerate()
                .map(|(i, t)| match t {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(err(
                        &format!("tests[{i}]"),
                        format!("expected a string, got {}", kind(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TestSpec::Asserts {
                setup: string(m, "setup", false)?,
                tests,
            })
        }
        "io" => {
            let fn_name = match m.get("fn_name") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) if is_identifier(s) => Some(s.clone()),
                Some(Value::String(s)) => {
                    return Err(err("fn_name", format!("`{s}` is not a Python identifier")))
                }
                Some(other) => {
                    return Err(err(
                        "fn_name",
                        format!("expected a string, got {}", kind(other)),
                    ))
                }
            };
            let inputs = array(m, "inputs")?;
            let outputs = array(m, "outputs")?;
            if inputs.len() != outputs.len() {
                return Err(err(
                    "outputs",
                    format!("{} outputs for {} inputs", outputs.len(), inputs.len()),
                ));
            }
            let mut cases = Vec::with_capacity(inputs.len());
            for (i, (inp, out)) in inputs.iter().zip(outputs).enumerate() {
                let case = if fn_name.is_some() {
                    let input = match inp {
                        Value::String(s) if json_args_ok(s) => inp.clone(),
                        Value::String(_) => {
                            return Err(err(
                                &format!("inputs[{i}]"),
                                "not JSON (expected a JSON list of arguments or one JSON argument per line)",
                            ))
                        }
                        Value::Array(_) => inp.clone(),
                        other => {
                            return Err(err(
                                &format!("inputs[{i}]"),
                                format!(
                                    "expected a string or a list of arguments, got {}",
                                    kind(other)
                                ),
                            ))
                        }
                    };
                    let output = match out {
                        Value::String(s) => {
                            serde_json::from_str::<Value>(s).unwrap_or_else(|_| out.clone())
                        }
                        other => other.clone(),
                    };
                    IoCase { input, output }
                } else {
                    IoCase {
                        input: Value::String(text(inp, &format!("inputs[{i}]"))?),
                        output: Value::String(text(out, &format!("outputs[{i}]"))?),
                    }
                };
                cases.push(case);
            }
            Ok(TestSpec::Io { fn_name, cases })
        }
        other => Err(err(
            "format",
            format!("unknown format `{other}` (humaneval, asserts, io)"),
        )),
    }
}

/// A stdin/stdout text: a string, or a list of lines (APPS) joined by `\n`.
fn text(v: &Value, field: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(a) if a.iter().all(Value::is_string) => Ok(a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n")),
        other => Err(err(
            field,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

/// Whether `s` is a plain ASCII Python identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let s = parse(&json!(r#"{"format":"asserts","tests":["assert 1"]}"#)).unwrap();
        assert_eq!(s.len(), 1);
        let s = parse(&json!({"inputs": [["a", "b"]], "outputs": ["x\n"]})).unwrap();
        assert_eq!(
            s,
            TestSpec::Io {
                fn_name: None,
                cases: vec![IoCase {
                    input: json!("a\nb"),
                    output: json!("x\n")
                }]
            }
        );
        let s = parse(&json!({"format":"io","fn_name":"f","inputs":["[1]\n2"],"outputs":["[3]"]}))
            .unwrap();
        let TestSpec::Io { cases, .. } = s else {
            panic!()
        };
        assert_eq!(cases[0].output, json!([3]));
        assert!(parse(&json!({"format":"io","inputs":["1"],"outputs":[]}))
            .unwrap_err()
            .contains("ground_truth.outputs"));
        assert!(parse(&json!({"format":"asserts","tests":["a", 3]}))
            .unwrap_err()
            .contains("ground_truth.tests[1]"));
        assert!(parse(&json!({"format":"humaneval","prompt":"","test":""}))
            .unwrap_err()
            .contains("ground_truth.entry_point"));
        assert!(parse(&json!(7)).unwrap_err().starts_with("ground_truth:"));
    }
}
