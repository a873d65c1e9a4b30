//! Training data, one JSON object per line, in three shapes:
//!
//! - preference pairs (ORM, Bradley–Terry): `{"prompt", "chosen", "rejected"}`;
//! - labelled responses (ORM, pointwise BCE): `{"prompt", "response", "label"}` — `label` is
//!   `true`/`false`, `1`/`0` (a number in `[0, 1]` is a soft target), `"correct"`/`"incorrect"`
//!   or `"+"`/`"-"`; instead of `label`, a `ground_truth` judged by a verifier (see
//!   [`read_jsonl`]);
//! - labelled steps (PRM): `{"prompt", "steps": [str], "labels": [..]}` — one label per
//!   step: `"+"`/`"-"` (Math-Shepherd), `1`/`0`/`-1` (PRM800K ratings: 0 is neutral),
//!   `true`/`false`, `null`/`"0"`/`"neutral"` (neutral: not trained on), or a fraction strictly
//!   between 0 and 1 (Math-Shepherd's soft estimate).
//!
//! `prompt` is a string or a list of chat messages. Errors name `FILE:LINE` and the field.

use std::path::{Path, PathBuf};

use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::{Map, Value};

use crate::error::{Result, RmError};
use crate::model::RmKind;

/// One training record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A preference pair.
    Pair {
        prompt: Value,
        chosen: String,
        rejected: String,
    },
    /// A response with a target in `[0, 1]` (1 = correct).
    Point {
        prompt: Value,
        response: String,
        label: f32,
    },
    /// A solution split into steps, each with a target in `[0, 1]` or neutral (`None`).
    Steps {
        prompt: Value,
        steps: Vec<String>,
        labels: Vec<Option<f32>>,
    },
}

impl Record {
    /// The shape's name, for messages.
    pub fn shape(&self) -> &'static str {
        match self {
            Record::Pair { .. } => "{prompt, chosen, rejected}",
            Record::Point { .. } => "{prompt, response, label}",
            Record::Steps { .. } => "{prompt, steps, labels}",
        }
    }

    /// Whether a reward model of `kind` trains on this shape.
    pub fn fits(&self, kind: RmKind) -> bool {
        matches!(
            (kind, self),
            (RmKind::Orm, Record::Pair { .. } | Record::Point { .. })
                | (RmKind::Prm, Record::Steps { .. })
        )
    }

    /// The index of the first step labelled wrong (target < 0.5), if any.
    pub fn first_wrong_step(&self) -> Option<usize> {
        match self {
            Record::Steps { labels, .. } => labels.iter().position(|l| l.is_some_and(|x| x < 0.5)),
            _ => None,
        }
    }
}

/// A record and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The file it was read from (empty for generated data).
    pub path: PathBuf,
    /// Its line (1-based; 0 for generated data).
    pub line: usize,
    /// The record.
    pub record: Record,
}

fn err(path: &Path, line: usize, field: &str, msg: impl Into<String>) -> RmError {
    RmError::Data {
        path: path.to_path_buf(),
        line,
        field: field.to_string(),
        msg: msg.into(),
    }
}

fn string_field(m: &Map<String, Value>, key: &str) -> std::result::Result<String, String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("expected a string, found {}", kind_of(other))),
        None => Err("missing".into()),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A response label: `true`/`false`, a number in `[0, 1]`, `"correct"`/`"incorrect"`,
/// `"+"`/`"-"`, `"1"`/`"0"`.
pub fn parse_outcome_label(v: &Value) -> std::result::Result<f32, String> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if (0.0..=1.0).contains(&x) {
                Ok(x as f32)
            } else {
                Err(format!("a numeric label lies in [0, 1], got {x}"))
            }
        }
        Value::String(s) => match s.trim() {
            "correct" | "+" | "1" | "true" | "chosen" => Ok(1.0),
            "incorrect" | "-" | "0" | "false" | "rejected" => Ok(0.0),
            other => Err(format!(
                "unknown label `{other}` (correct/incorrect, +/-, true/false, 1/0)"
            )),
        },
        other => Err(format!(
            "expected a boolean, a number or a string, found {}",
            kind_of(other)
        )),
    }
}

/// A step label: `"+"`/`"-"`; PRM800K ratings `1`/`0`/`-1` (0 = neutral); `true`/`false`;
/// neutral as `null`, `"0"`, `"neutral"`, `"~"`; a soft target strictly inside `(0, 1)`.
/// `None` means neutral (not trained on).
pub fn parse_step_label(v: &Value) -> std::result::Result<Option<f32>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(if *b { 1.0 } else { 0.0 })),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x == 1.0 {
                Ok(Some(1.0))
            } else if x == 0.0 {
                Ok(None)
            } else if x == -1.0 {
                Ok(Some(0.0))
            } else if x > 0.0 && x < 1.0 {
                Ok(Some(x as f32))
            } else {
                Err(format!(
                    "a numeric step label is a rating 1/0/-1 or a fraction in (0, 1), got {x}"
                ))
            }
        }
        Value::String(s) => match s.trim() {
            "+" | "correct" | "positive" | "good" => Ok(Some(1.0)),
            "-" | "incorrect" | "negative" | "bad" => Ok(Some(0.0)),
            "0" | "neutral" | "~" | "" => Ok(None),
            other => Err(format!("unknown step label `{other}` (+, -, neutral)")),
        },
        other => Err(format!(
            "expected a string, a number, a boolean or null, found {}",
            kind_of(other)
        )),
    }
}

fn parse_prompt(m: &Map<String, Value>) -> std::result::Result<Value, String> {
    match m.get("prompt") {
        None => Err("missing".into()),
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(msgs)) => {
            for (i, msg) in msgs.iter().enumerate() {
                let ok = msg.get("role").is_some_and(Value::is_string)
                    && msg.get("content").is_some_and(Value::is_string);
                if !ok {
                    return Err(format!(
                        "message {i} is not an object with string `role` and `content`"
                    ));
                }
            }
            Ok(Value::Array(msgs.clone()))
        }
        Some(other) => Err(format!(
            "expected a string or a list of chat messages, found {}",
            kind_of(other)
        )),
    }
}

/// Parses one line (already known not to be blank). `label_with` judges `{prompt,
/// response, ground_truth}` lines that have no `label`.
pub fn parse_line(
    path: &Path,
    line: usize,
    text: &str,
    label_with: Option<&dyn Verifier>,
) -> Result<Record> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| err(path, line, "-", format!("invalid JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(err(path, line, "-", "expected a JSON object"));
    };
    let prompt = parse_prompt(&m).map_err(|e| err(path, line, "prompt", e))?;
    let field = |key: &str| string_field(&m, key).map_err(|e| err(path, line, key, e));
    if m.contains_key("chosen") || m.contains_key("rejected") {
        return Ok(Record::Pair {
            prompt,
            chosen: field("chosen")?,
            rejected: field("rejected")?,
        });
    }
    if m.contains_key("steps") || m.contains_key("labels") {
        let steps = match m.get("steps") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err(path, line, &format!("steps[{i}]"), "expected a string"))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(err(
                    path,
                    line,
                    "steps",
                    format!("expected a list of strings, found {}", kind_of(other)),
                ))
            }
            None => return Err(err(path, line, "steps", "missing")),
        };
        if steps.is_empty() {
            return Err(err(path, line, "steps", "no steps"));
        }
        let labels = match m.get("labels") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    parse_step_label(l).map_err(|e| err(path, line, &format!("labels[{i}]"), e))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(err(
                    path,
                    line,
                    "labels",
                    format!("expected a list, found {}", kind_of(other)),
                ))
            }
            None => return Err(err(path, line, "labels", "missing")),
        };
        if labels.len() != steps.len() {
            return Err(err(
                path,
                line,
                "labels",
                format!("{} labels for {} steps", labels.len(), steps.len()),
            ));
        }
        return Ok(Record::Steps {
            prompt,
            steps,
            labels,
        });
    }
    if m.contains_key("response") {
        let response = field("response")?;
        let label = match (m.get("label"), m.get("ground_truth"), label_with) {
            (Some(l), _, _) => parse_outcome_label(l).map_err(|e| err(path, line, "label", e))?,
            (None, Some(gt), Some(v)) => {
                let o = v.verify(&VerifyInput {
                    response: &response,
                    ground_truth: gt,
                    metadata: &Value::Object(m.clone()),
                });
                match o.status {
                    Status::Correct => 1.0,
                    Status::Incorrect | Status::Invalid => 0.0,
                    Status::Error => {
                        return Err(err(
                            path,
                            line,
                            "ground_truth",
                            format!("the `{}` verifier could not judge: {}", v.name(), o.details),
                        ))
                    }
                }
            }
            (None, Some(_), None) => {
                return Err(err(
                    path,
                    line,
                    "label",
                    "missing (a `ground_truth` needs a verifier to label it: --label-verifier)",
                ))
            }
            (None, None, _) => return Err(err(path, line, "label", "missing")),
        };
        return Ok(Record::Point {
            prompt,
            response,
            label,
        });
    }
    Err(err(
        path,
        line,
        "-",
        "not a known shape: {prompt, chosen, rejected}, {prompt, response, label} or {prompt, steps, labels}",
    ))
}

/// Reads a JSONL file (blank lines skipped). `label_with` labels `{prompt, response,
/// ground_truth}` lines that carry no `label`.
pub fn read_jsonl(path: &Path, label_with: Option<&dyn Verifier>) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| RmError::io(path, e))?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        out.push(Example {
            path: path.to_path_buf(),
            line: i + 1,
            record: parse_line(path, i + 1, l, label_with)?,
        });
    }
    Ok(out)
}

/// Checks that every example fits a reward model of `kind`; the error names the first
/// line that does not.
pub fn check_kind(examples: &[Example], kind: RmKind) -> Result<()> {
    for ex in examples {
        if !ex.record.fits(kind) {
            let wants = match kind {
                RmKind::Orm => "{prompt, chosen, rejected} or {prompt, response, label}",
                RmKind::Prm => "{prompt, steps, labels}",
            };
            return Err(err(
                &ex.path,
                ex.line,
                "-",
                format!(
                    "a {} line, but a {} reward model trains on {wants}",
                    ex.record.shape(),
                    kind.name()
                ),
            ));
        }
    }
    Ok(())
}

/// The record as a JSON line (the inverse of [`parse_line`] for labelled records).
pub fn to_json(record: &Record) -> Value {
    match record {
        Record::Pair {
            prompt,
            chosen,
            rejected,
        } => serde_json::json!({"prompt": prompt, "chosen": chosen, "rejected": rejected}),
        Record::Point {
            prompt,
            response,
            label,
        } => serde_json::json!({"prompt": prompt, "response": response, "label": label}),
        Record::Steps {
            prompt,
            steps,
            labels,
        } => {
            let labels: Vec<Value> = labels
                .iter()
                .map(|l| match l {
                    None => Value::Null,
                    Some(x) if *x == 1.0 => Value::from("+"),
                    Some(x) if *x == 0.0 => Value::from("-"),
                    Some(x) => Value::from(*x),
                })
                .collect();
            serde_json::json!({"prompt": prompt, "steps": steps, "labels": labels})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Record> {
        parse_line(Path::new("data.jsonl"), 7, text, None)
    }

    #[test]
    fn the_three_shapes_parse() {
        assert_eq!(
            parse(r#"{"prompt": "1+1", "chosen": "2", "rejected": "3"}"#).unwrap(),
            Record::Pair {
                prompt: "1+1".into(),
                chosen: "2".into(),
                rejected: "3".into()
            }
        );
        assert_eq!(
            parse(r#"{"prompt": [{"role": "user", "content": "1+1"}], "response": "2", "label": true}"#)
                .unwrap(),
            Record::Point {
                prompt: serde_json::json!([{"role": "user", "content": "1+1"}]),
                response: "2".into(),
                label: 1.0
            }
        );
        let r = parse(r#"{"prompt": "q", "steps": ["a", "b", "c", "d", "e"], "labels": ["+", 1, 0, -1, 0.25]}"#)
            .unwrap();
        assert_eq!(
            r,
            Record::Steps {
                prompt: "q".into(),
                steps: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
                labels: vec![Some(1.0), Some(1.0), None, Some(0.0), Some(0.25)]
            }
        );
        assert_eq!(r.first_wrong_step(), Some(3));
        // The JSON form reads back to the same record.
        let back = parse(&to_json(&r).to_string()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn bad_lines_name_the_file_line_and_field() {
        let cases = [
            (
                "{\"prompt\": 1, \"chosen\": \"a\", \"rejected\": \"b\"}",
                "prompt",
            ),
            ("{\"prompt\": \"q\", \"chosen\": \"a\"}", "rejected"),
            (
                "{\"prompt\": \"q\", \"response\": \"a\", \"label\": 2}",
                "label",
            ),
            ("{\"prompt\": \"q\", \"response\": \"a\"}", "label"),
            (
                "{\"prompt\": \"q\", \"steps\": [\"a\"], \"labels\": [\"+\", \"-\"]}",
                "labels",
            ),
            (
                "{\"prompt\": \"q\", \"steps\": [\"a\", 3], \"labels\": [\"+\", \"-\"]}",
                "steps[1]",
            ),
            (
                "{\"prompt\": \"q\", \"steps\": [\"a\"], \"labels\": [\"?\"]}",
                "labels[0]",
            ),
            ("{\"prompt\": \"q\", \"answer\": 1}", "-"),
            ("not json", "-"),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err().to_string();
            let want = if field == "-" {
                // the whole line is at fault: no field is named
                "data.jsonl:7: ".to_string()
            } else {
                format!("data.jsonl:7: field `{field}`")
            };
            assert!(e.starts_with(&want), "{text}: {e}");
            assert!(!e.contains("field `-`"), "{text}: {e}");
        }
    }

    #[test]
    fn read_jsonl_counts_lines_and_labels_by_verifier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"2+2\", \"response\": \"<answer>4</answer>\", \"ground_truth\": \"4\"}\n\n{\"prompt\": \"2+2\", \"response\": \"<answer>5</answer>\", \"ground_truth\": \"4\"}\n{\"prompt\": \"q\", \"response\": 5, \"label\": 1}\n",
        )
        .unwrap();
        let e = read_jsonl(&path, None).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:1: field `label`"), "{e}");
        let math = rlvr_verify::registry::build("math").unwrap();
        let e = read_jsonl(&path, Some(math.as_ref()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.jsonl:4: field `response`"), "{e}");
        std::fs::write(
            &path,
            "{\"prompt\": \"2+2\", \"response\": \"<answer>4</answer>\", \"ground_truth\": \"4\"}\n\n{\"prompt\": \"2+2\", \"response\": \"<answer>5</answer>\", \"ground_truth\": \"4\"}\n",
        )
        .unwrap();
        let ex = read_jsonl(&path, Some(math.as_ref())).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[1].line, 3);
        let labels: Vec<f32> = ex
            .iter()
            .map(|e| match e.record {
                Record::Point { label, .. } => label,
                _ => panic!("a point"),
            })
            .collect();
        assert_eq!(labels, vec![1.0, 0.0]);
        let e = check_kind(&ex, RmKind::Prm).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:1:") && e.contains("prm"), "{e}");
        check_kind(&ex, RmKind::Orm).unwrap();
    }
}
