//! Built-in datasets, found under `<shared>/datasets/`, and locating the shared folder.

use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::load::load_file;
use crate::mapping::{AnswerExtract, FieldMapping, GroundTruthKind, PromptFormat};
use crate::template::PromptTemplate;

/// The built-in dataset names (interfaces.md).
pub const BUILTIN_NAMES: [&str; 6] = ["gsm8k", "math500", "aime24", "aime25", "amc23", "humaneval"];

/// The user template of GSM8K: its questions carry no answer-format instruction.
pub const GSM8K_TEMPLATE: &str =
    "{question}\nLet's think step by step and output the final answer within \\boxed{{}}.";

/// How to load one built-in dataset split and what to check it with.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinSpec {
    /// `gsm8k`, `math500`, ...
    pub name: String,
    /// `test` or `train`.
    pub split: String,
    /// The file, relative to `<shared>/datasets` (e.g. `gsm8k/test.jsonl`).
    pub path: PathBuf,
    /// Fields, answer extraction and the default prompt template (`mapping.template`).
    pub mapping: FieldMapping,
    /// The default verifier's name (`math` or `code`).
    pub verifier: String,
}

impl BuiltinSpec {
    /// The default prompt template (none for HumanEval, whose code prompt is used as it is).
    pub fn template(&self) -> Option<&PromptTemplate> {
        self.mapping.template.as_ref()
    }

    /// The file inside a shared folder.
    pub fn file(&self, shared_dir: &Path) -> PathBuf {
        shared_dir.join("datasets").join(&self.path)
    }

    /// Loads the split from a shared folder.
    pub fn load(&self, shared_dir: &Path) -> Result<Dataset> {
        load_file(&self.file(shared_dir), &self.mapping)
    }
}

/// The splits each built-in has; the first is the default.
fn splits(name: &str) -> &'static [&'static str] {
    match name {
        "gsm8k" => &["test", "train"],
        _ => &["test"],
    }
}

/// A built-in by name, `name:split` allowed (`gsm8k:train`); the default split is `test`.
pub fn builtin(name: &str) -> Result<BuiltinSpec> {
    match name.split_once(':') {
        Some((n, split)) => builtin_split(n, Some(split)),
        None => builtin_split(name, None),
    }
}

/// A built-in by name and split (`None`: `test`).
pub fn builtin_split(name: &str, split: Option<&str>) -> Result<BuiltinSpec> {
    if !BUILTIN_NAMES.contains(&name) {
        return Err(DataError::UnknownDataset {
            name: name.to_string(),
            known: BUILTIN_NAMES.join(", "),
        });
    }
    let available = splits(name);
    let split = split.unwrap_or(available[0]);
    if !available.contains(&split) {
        return Err(DataError::UnknownSplit {
            name: name.to_string(),
            split: split.to_string(),
            known: available.join(", "),
        });
    }
    let template = |t: &str| Some(PromptTemplate::new(t).expect("built-in templates parse"));
    let mut mapping = FieldMapping {
        data_source: Some(name.to_string()),
        id_prefix: Some(format!("{name}/{split}")),
        ..FieldMapping::default()
    };
    let mut verifier = "math";
    match name {
        "gsm8k" => {
            mapping.prompt_field = Some("question".into());
            mapping.answer_field = Some("answer".into());
            mapping.answer_extract = AnswerExtract::Gsm8kHash;
            mapping.template = template(GSM8K_TEMPLATE);
        }
        "humaneval" => {
            mapping.prompt_field = Some("prompt".into());
            mapping.id_field = Some("task_id".into());
            mapping.ground_truth = GroundTruthKind::Humaneval;
            mapping.prompt_format = PromptFormat::Text;
            verifier = "code";
        }
        // math500, aime24, aime25, amc23: the problem already ends with the \boxed{}
        // instruction.
        _ => {
            mapping.prompt_field = Some("problem".into());
            mapping.answer_field = Some("answer".into());
            mapping.template = template("{problem}");
        }
    }
    Ok(BuiltinSpec {
        name: name.to_string(),
        split: split.to_string(),
        path: PathBuf::from(name).join(format!("{split}.jsonl")),
        mapping,
        verifier: verifier.to_string(),
    })
}

/// Whether `s` names a built-in (`gsm8k`, `gsm8k:train`) rather than a path.
fn builtin_ref(s: &str) -> Option<(&str, Option<&str>)> {
    let (name, split) = match s.split_once(':') {
        Some((n, sp)) => (n, Some(sp)),
        None => (s, None),
    };
    let pathlike = |x: &str| x.contains(['/', '\\']);
    (BUILTIN_NAMES.contains(&name) && !split.is_some_and(pathlike)).then_some((name, split))
}

/// A built-in name (`gsm8k`, `gsm8k:train`, loaded from `shared_dir/datasets/...` with its
/// spec's mapping) or a file path (loaded with the default [`FieldMapping`]).
pub fn resolve_dataset(name_or_path: &str, shared_dir: &Path) -> Result<Dataset> {
    resolve_dataset_with(name_or_path, shared_dir, &FieldMapping::default())
}

/// As [`resolve_dataset`], with the mapping to use when `name_or_path` is a file.
pub fn resolve_dataset_with(
    name_or_path: &str,
    shared_dir: &Path,
    mapping: &FieldMapping,
) -> Result<Dataset> {
    if let Some((name, split)) = builtin_ref(name_or_path) {
        return builtin_split(name, split)?.load(shared_dir);
    }
    let path = Path::new(name_or_path);
    let looks_like_name = path.extension().is_none() && !name_or_path.contains(['/', '\\']);
    if looks_like_name && !path.exists() {
        return Err(DataError::UnknownDataset {
            name: name_or_path.to_string(),
            known: BUILTIN_NAMES.join(", "),
        });
    }
    load_file(path, mapping)
}

/// Whether a folder looks like rlvr's shared folder.
fn looks_shared(dir: &Path) -> bool {
    ["datasets", "fixtures", "golden", "notes"]
        .iter()
        .any(|sub| dir.join(sub).is_dir())
}

/// The shared folder: `RLVR_SHARED` if set; else the first `shared` folder (holding
/// `datasets`, `fixtures`, `golden` or `notes`) found as `../shared` from the current
/// directory or one of its ancestors, then from the running executable's ancestors.
///
/// Library callers that know better should pass their own path to [`resolve_dataset`].
pub fn default_shared_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RLVR_SHARED").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            starts.push(dir.to_path_buf());
        }
    }
    let mut tried = Vec::new();
    for start in &starts {
        for dir in start.ancestors() {
            let Some(parent) = dir.parent() else { continue };
            let candidate = parent.join("shared");
            if looks_shared(&candidate) {
                return Ok(candidate);
            }
            tried.push(candidate.display().to_string());
        }
    }
    Err(DataError::SharedDirNotFound {
        tried: if tried.is_empty() {
            "nothing (no current directory or executable path)".into()
        } else {
            tried.join(", ")
        },
    })
}
