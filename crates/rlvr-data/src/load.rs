//! Reading `.jsonl`, `.json` and `.parquet` files into a [`Dataset`].
//!
//! Two schemas are understood without configuration:
//! - verl's: `prompt` (a list of chat messages, or a string), `reward_model: {ground_truth,
//!   style?}`, `data_source`, `extra_info`;
//! - plain: a question (`question` | `problem` | `prompt` string) and an answer (`answer` |
//!   `solution` | `ground_truth`).
//!
//! Columns not used for the prompt, the ground truth, the id or the data source are merged
//! into `extra_info` (a key already in the record's `extra_info` wins). See [`FieldMapping`]
//! for the rules and the options.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::dataset::Dataset;
use crate::error::{kind_of, DataError, Location, Result, Unit};
use crate::example::{message, Example, Prompt};
use crate::mapping::{AnswerExtract, FieldMapping, GroundTruthKind, PromptFormat};
use crate::parquet_rows;
use crate::template::lookup;

const PROMPT_FIELDS: [&str; 3] = ["prompt", "question", "problem"];
const ANSWER_FIELDS: [&str; 4] = [
    "reward_model.ground_truth",
    "answer",
    "solution",
    "ground_truth",
];

/// Loads a `.jsonl`/`.ndjson` (one JSON object per line, blank lines skipped), `.json` (an
/// array of objects) or `.parquet` file.
///
/// Errors name the file, the line (JSONL), item (JSON) or row (Parquet), 1-based, and the
/// field: `data.jsonl:17: field "answer": missing`.
pub fn load_file(path: &Path, mapping: &FieldMapping) -> Result<Dataset> {
    if mapping.prompt_format == PromptFormat::Text
        && mapping
            .template
            .as_ref()
            .is_some_and(|t| t.system().is_some())
    {
        return Err(DataError::InvalidMapping(
            "prompt_format = \"text\" cannot use a template with a system message".into(),
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut conv = Converter {
        mapping,
        default_source: &stem,
        examples: Vec::new(),
        ids: HashMap::new(),
    };
    let mut sink = |at: Location, record: Value| conv.push(at, record);
    match ext.as_deref() {
        Some("jsonl" | "ndjson") => read_jsonl(path, &mut sink)?,
        Some("json") => read_json(path, &mut sink)?,
        Some("parquet") => parquet_rows::read(path, &mut sink)?,
        _ => {
            return Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
            })
        }
    }
    Ok(Dataset::new(conv.examples, path.to_path_buf()))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// serde_json's message without its " at line L column C" suffix (the caller names the
/// line), plus the column for single lines.
fn json_message(e: &serde_json::Error, with_column: bool) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    if with_column && e.column() > 0 {
        format!("{msg} (column {})", e.column())
    } else {
        msg
    }
}

fn read_jsonl(path: &Path, sink: &mut dyn FnMut(Location, Value) -> Result<()>) -> Result<()> {
    let bytes = read_bytes(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let at = Location {
            file: path.to_path_buf(),
            unit: Unit::Line,
            index: i + 1,
        };
        let value: Value = serde_json::from_slice(line).map_err(|e| DataError::Json {
            at: at.clone(),
            message: json_message(&e, true),
        })?;
        sink(at, value)?;
    }
    Ok(())
}

fn read_json(path: &Path, sink: &mut dyn FnMut(Location, Value) -> Result<()>) -> Result<()> {
    let bytes = read_bytes(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let value: Value = serde_json::from_slice(bytes).map_err(|e| DataError::JsonFile {
        path: path.to_path_buf(),
        message: format!("invalid JSON: {e}"),
    })?;
    let Value::Array(items) = value else {
        return Err(DataError::JsonFile {
            path: path.to_path_buf(),
            message: format!(
                "expected a JSON array of records, found {}",
                kind_of(&value)
            ),
        });
    };
    for (i, item) in items.into_iter().enumerate() {
        let at = Location {
            file: path.to_path_buf(),
            unit: Unit::Item,
            index: i + 1,
        };
        sink(at, item)?;
    }
    Ok(())
}

struct Converter<'a> {
    mapping: &'a FieldMapping,
    default_source: &'a str,
    examples: Vec<Example>,
    /// id → location of the record that had it.
    ids: HashMap<String, Location>,
}

impl Converter<'_> {
    fn push(&mut self, at: Location, record: Value) -> Result<()> {
        let Value::Object(record) = record else {
            return Err(DataError::Record {
                problem: format!("expected a JSON object, found {}", kind_of(&record)),
                at,
            });
        };
        let index = self.examples.len();
        let example = convert(record, index, &at, self.mapping, self.default_source)?;
        if let Some(first) = self.ids.get(&example.id) {
            return Err(DataError::Field {
                at,
                field: "id".into(),
                problem: format!("duplicate id \"{}\" (first at {first})", example.id),
            });
        }
        self.ids.insert(example.id.clone(), at);
        self.examples.push(example);
        Ok(())
    }
}

fn field_err(at: &Location, field: &str, problem: impl Into<String>) -> DataError {
    DataError::Field {
        at: at.clone(),
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// A present, non-null field: an explicitly named one, else the first of `defaults`.
fn find<'r>(
    record: &'r Map<String, Value>,
    explicit: Option<&'r str>,
    defaults: &[&'r str],
) -> Option<(&'r str, &'r Value)> {
    match explicit {
        Some(name) => lookup(record, name)
            .filter(|v| !v.is_null())
            .map(|v| (name, v)),
        None => defaults.iter().find_map(|&name| {
            lookup(record, name)
                .filter(|v| !v.is_null())
                .map(|v| (name, v))
        }),
    }
}

/// The field and problem for a missing field: the explicit name, else `primary` with the
/// other defaults listed.
fn missing(explicit: Option<&str>, defaults: &[&str], primary: &str) -> (String, String) {
    match explicit {
        Some(name) => (name.to_string(), "missing".to_string()),
        None => {
            let others: Vec<String> = defaults
                .iter()
                .filter(|&&d| d != primary)
                .map(|d| format!("\"{d}\""))
                .collect();
            (
                primary.to_string(),
                format!("missing (also looked for {})", others.join(", ")),
            )
        }
    }
}

fn string_field<'r>(record: &'r Map<String, Value>, at: &Location, name: &str) -> Result<&'r str> {
    match lookup(record, name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(field_err(at, name, "missing")),
        Some(other) => Err(field_err(
            at,
            name,
            format!("expected a string, found {}", kind_of(other)),
        )),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_messages(at: &Location, field: &str, items: &[Value]) -> Result<()> {
    if items.is_empty() {
        return Err(field_err(at, field, "empty list of chat messages"));
    }
    for (i, m) in items.iter().enumerate() {
        let problem = match m {
            Value::Object(o) => match o.get("role") {
                Some(Value::String(_)) => {
                    if o.contains_key("content") {
                        continue;
                    }
                    "has no \"content\"".to_string()
                }
                Some(other) => format!("has a \"role\" that is {}", kind_of(other)),
                None => "has no \"role\"".to_string(),
            },
            other => format!("is {}, not a {{role, content}} object", kind_of(other)),
        };
        return Err(field_err(at, field, format!("message {} {problem}", i + 1)));
    }
    Ok(())
}

/// Removes a (dotted) path from `record`, dropping parent objects it leaves empty.
fn remove_path(record: &mut Map<String, Value>, path: &str) {
    if record.remove(path).is_some() {
        return;
    }
    for (i, _) in path.match_indices('.') {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(inner)) = record.get_mut(head) {
            if lookup(inner, tail).is_some() {
                remove_path(inner, tail);
                if inner.is_empty() {
                    record.remove(head);
                }
                return;
            }
        }
    }
}

fn convert(
    record: Map<String, Value>,
    index: usize,
    at: &Location,
    mapping: &FieldMapping,
    default_source: &str,
) -> Result<Example> {
    let mut consumed: Vec<String> = Vec::new();

    // Data source.
    let data_source = match (&mapping.data_source, record.get("data_source")) {
        (Some(ds), _) => ds.clone(),
        (None, Some(Value::String(s))) => s.clone(),
        (None, None | Some(Value::Null)) => default_source.to_string(),
        (None, Some(other)) => {
            return Err(field_err(
                at,
                "data_source",
                format!("expected a string, found {}", kind_of(other)),
            ))
        }
    };
    consumed.push("data_source".into());

    // Id.
    let id = match find(&record, mapping.id_field.as_deref(), &["id", "task_id"]) {
        Some((name, v)) => {
            consumed.push(name.to_string());
            scalar_text(v).ok_or_else(|| {
                field_err(
                    at,
                    name,
                    format!("expected a string or a number, found {}", kind_of(v)),
                )
            })?
        }
        None if mapping.id_field.is_some() => {
            return Err(field_err(
                at,
                mapping.id_field.as_deref().unwrap_or("id"),
                "missing",
            ))
        }
        None => format!(
            "{}/{index}",
            mapping.id_prefix.as_deref().unwrap_or(&data_source)
        ),
    };

    // Prompt.
    let prompt_field = find(&record, mapping.prompt_field.as_deref(), &PROMPT_FIELDS);
    let prompt = match (prompt_field, &mapping.template) {
        (Some((name, Value::Array(items))), _) => {
            check_messages(at, name, items)?;
            consumed.push(name.to_string());
            Prompt::Messages(items.clone())
        }
        (_, Some(template)) => {
            let wrap = |source| DataError::Template {
                at: at.clone(),
                source,
            };
            consumed.extend(
                template
                    .fields()
                    .into_iter()
                    .filter(|f| lookup(&record, f).is_some())
                    .map(str::to_string),
            );
            if mapping.prompt_format == PromptFormat::Text {
                Prompt::Text(template.render_text(&record).map_err(wrap)?)
            } else {
                template.render(&record).map_err(wrap)?
            }
        }
        (Some((name, Value::String(s))), None) => {
            consumed.push(name.to_string());
            let as_text = match mapping.prompt_format {
                PromptFormat::Text => true,
                PromptFormat::Chat => false,
                PromptFormat::Auto => name.rsplit('.').next() == Some("prompt"),
            };
            if as_text {
                Prompt::Text(s.clone())
            } else {
                Prompt::Messages(vec![message("user", s.as_str())])
            }
        }
        (Some((name, other)), None) => {
            return Err(field_err(
                at,
                name,
                format!(
                    "expected a string or a list of chat messages, found {}",
                    kind_of(other)
                ),
            ))
        }
        (None, None) => {
            let (field, problem) =
                missing(mapping.prompt_field.as_deref(), &PROMPT_FIELDS, "prompt");
            return Err(field_err(at, &field, problem));
        }
    };

    // Ground truth.
    let ground_truth = match mapping.ground_truth {
        GroundTruthKind::Humaneval => {
            let prompt = string_field(&record, at, "prompt")?;
            let test = string_field(&record, at, "test")?;
            let entry_point = string_field(&record, at, "entry_point")?;
            consumed.extend(["prompt", "test", "entry_point"].map(String::from));
            serde_json::json!({
                "format": "humaneval",
                "prompt": prompt,
                "test": test,
                "entry_point": entry_point,
            })
        }
        GroundTruthKind::Answer => {
            let Some((name, value)) =
                find(&record, mapping.answer_field.as_deref(), &ANSWER_FIELDS)
            else {
                let (field, problem) =
                    missing(mapping.answer_field.as_deref(), &ANSWER_FIELDS, "answer");
                return Err(field_err(at, &field, problem));
            };
            consumed.push(name.to_string());
            match mapping.answer_extract {
                AnswerExtract::None => value.clone(),
                how => {
                    let text = scalar_text(value).ok_or_else(|| {
                        field_err(
                            at,
                            name,
                            format!(
                                "answer_extract = \"{}\" needs a string, found {}",
                                how.name(),
                                kind_of(value)
                            ),
                        )
                    })?;
                    let answer = how.apply(&text).ok_or_else(|| {
                        let wanted = match how {
                            AnswerExtract::Gsm8kHash => "no answer after a \"####\"",
                            _ => "no \\boxed{...} answer",
                        };
                        field_err(
                            at,
                            name,
                            format!("{wanted} (answer_extract = \"{}\")", how.name()),
                        )
                    })?;
                    Value::String(answer)
                }
            }
        }
    };

    // Extra info: the record's `extra_info`, then every unused column.
    let mut rest = record;
    for path in &consumed {
        remove_path(&mut rest, path);
    }
    let mut extra = match rest.remove("extra_info") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(other) => {
            let mut m = Map::new();
            m.insert("extra_info".into(), other);
            m
        }
    };
    for (k, v) in rest {
        extra.entry(k).or_insert(v);
    }

    Ok(Example {
        id,
        prompt,
        ground_truth,
        data_source,
        extra_info: Value::Object(extra),
    })
}
