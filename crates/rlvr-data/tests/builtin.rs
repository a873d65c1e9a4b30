//! The built-in sets in ../shared load with the right counts and shapes.

use std::path::{Path, PathBuf};

use rlvr_conformance::{require_shared, shared_dir};
use rlvr_data::{
    builtin, resolve_dataset, AnswerExtract, DataError, Dataset, FieldMapping, Prompt,
    BUILTIN_NAMES,
};
use serde_json::Value;

fn non_blank_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The raw JSON of line `i` (0-based, non-blank lines).
fn raw_line(path: &Path, i: usize) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .nth(i)
        .unwrap();
    serde_json::from_str(line).unwrap()
}

fn user_text(prompt: &Prompt) -> &str {
    match prompt {
        Prompt::Messages(m) => {
            assert_eq!(m.len(), 1, "{m:?}");
            assert_eq!(m[0]["role"], "user");
            m[0]["content"].as_str().unwrap()
        }
        Prompt::Text(t) => panic!("expected messages, got text {t:?}"),
    }
}

fn shared_or_skip(rel: &str) -> Option<(PathBuf, PathBuf)> {
    let file = require_shared(rel)?;
    Some((file, shared_dir()))
}

#[test]
fn every_builtin_loads_with_the_right_count() {
    let mut checked = 0;
    for name in BUILTIN_NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(["gsm8k:train".to_string()])
    {
        let spec = builtin(&name).unwrap();
        let rel = format!("datasets/{}", spec.path.display());
        let Some((file, shared)) = shared_or_skip(&rel) else {
            continue;
        };
        let ds = resolve_dataset(&name, &shared).unwrap();
        assert_eq!(ds.len(), non_blank_lines(&file), "{name}");
        assert_eq!(ds.source, file);
        for ex in &ds {
            assert_eq!(ex.data_source, spec.name, "{name}");
        }
        // Ids are unique (the loader refuses duplicates, so this is a consistency check).
        let ids: std::collections::HashSet<_> = ds.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), ds.len());
        checked += 1;
    }
    if checked > 0 {
        assert_eq!(checked, 7);
    }
}

#[test]
fn builtin_counts_are_the_known_ones() {
    // The published sizes, so a truncated file in ../shared is noticed too.
    for (name, n) in [
        ("gsm8k", 1319),
        ("gsm8k:train", 7473),
        ("math500", 500),
        ("aime24", 30),
        ("aime25", 30),
        ("amc23", 40),
        ("humaneval", 164),
    ] {
        let spec = builtin(name).unwrap();
        let Some((_, shared)) = shared_or_skip(&format!("datasets/{}", spec.path.display())) else {
            continue;
        };
        assert_eq!(spec.load(&shared).unwrap().len(), n, "{name}");
    }
}

#[test]
fn gsm8k_ground_truths_are_plain_numbers() {
    for split in ["train", "test"] {
        let Some((file, shared)) = shared_or_skip(&format!("datasets/gsm8k/{split}.jsonl")) else {
            return;
        };
        let ds = resolve_dataset(&format!("gsm8k:{split}"), &shared).unwrap();
        let first = &ds.examples[0];
        let expected = if split == "train" { "72" } else { "18" };
        assert_eq!(first.ground_truth, Value::String(expected.into()));
        assert_eq!(first.id, format!("gsm8k/{split}/0"));
        // The template: the question, then the \boxed{} instruction (escaped braces rendered).
        let raw = raw_line(&file, 0);
        assert_eq!(
            user_text(&first.prompt),
            format!(
                "{}\nLet's think step by step and output the final answer within \\boxed{{}}.",
                raw["question"].as_str().unwrap()
            )
        );
        // The full solution is not kept as a column (it was consumed as the answer field).
        assert_eq!(first.extra_info, serde_json::json!({}));
        for ex in &ds {
            let gt = ex.ground_truth.as_str().unwrap();
            assert!(
                !gt.is_empty()
                    && gt
                        .trim_start_matches('-')
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '.'),
                "{}: {gt:?}",
                ex.id
            );
        }
    }
}

#[test]
fn competition_sets_use_the_problem_as_is() {
    for name in ["math500", "aime24", "aime25", "amc23"] {
        let Some((file, shared)) = shared_or_skip(&format!("datasets/{name}/test.jsonl")) else {
            return;
        };
        let spec = builtin(name).unwrap();
        assert_eq!(spec.verifier, "math");
        assert_eq!(spec.template().unwrap().user(), "{problem}");
        let ds = spec.load(&shared).unwrap();
        let raw = raw_line(&file, 1);
        let ex = &ds.examples[1];
        assert_eq!(user_text(&ex.prompt), raw["problem"].as_str().unwrap());
        assert!(user_text(&ex.prompt).contains("\\boxed{}"));
        assert_eq!(ex.ground_truth, raw["answer"]);
    }
}

#[test]
fn humaneval_ground_truth_has_the_code_verifier_shape() {
    let Some((file, shared)) = shared_or_skip("datasets/humaneval/test.jsonl") else {
        return;
    };
    let spec = builtin("humaneval").unwrap();
    assert_eq!(spec.verifier, "code");
    assert!(spec.template().is_none());
    let ds = spec.load(&shared).unwrap();
    for (i, ex) in ds.iter().enumerate() {
        let raw = raw_line(&file, i);
        let gt = ex.ground_truth.as_object().unwrap();
        let keys: Vec<&str> = gt.keys().map(String::as_str).collect();
        assert_eq!(keys, ["format", "prompt", "test", "entry_point"]);
        assert_eq!(gt["format"], "humaneval");
        assert_eq!(gt["prompt"], raw["prompt"]);
        assert_eq!(gt["test"], raw["test"]);
        assert_eq!(gt["entry_point"], raw["entry_point"]);
        assert_eq!(
            ex.prompt,
            Prompt::Text(raw["prompt"].as_str().unwrap().to_string())
        );
        assert_eq!(ex.id, raw["task_id"].as_str().unwrap());
        assert_eq!(
            ex.extra_info["canonical_solution"],
            raw["canonical_solution"]
        );
    }
    assert_eq!(ds.examples[0].id, "HumanEval/0");
}

#[test]
fn builtins_round_trip_through_verl_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["gsm8k", "humaneval", "math500"] {
        let spec = builtin(name).unwrap();
        let Some((_, shared)) = shared_or_skip(&format!("datasets/{}", spec.path.display())) else {
            return;
        };
        let ds = spec.load(&shared).unwrap();
        let out = dir.path().join(format!("{name}.jsonl"));
        ds.write_jsonl(&out).unwrap();
        let back = rlvr_data::load_file(&out, &FieldMapping::default()).unwrap();
        assert_eq!(back.examples, ds.examples, "{name}");
    }
}

#[test]
fn builtin_names_and_splits() {
    let spec = builtin("gsm8k").unwrap();
    assert_eq!(
        (spec.split.as_str(), spec.path.to_str().unwrap()),
        ("test", "gsm8k/test.jsonl")
    );
    assert_eq!(spec.mapping.answer_extract, AnswerExtract::Gsm8kHash);
    assert_eq!(spec.verifier, "math");
    let train = rlvr_data::builtin_split("gsm8k", Some("train")).unwrap();
    assert_eq!(train.path, Path::new("gsm8k/train.jsonl"));
    assert_eq!(builtin("gsm8k:train").unwrap(), train);
    assert!(matches!(
        builtin("math500:train"),
        Err(DataError::UnknownSplit { .. })
    ));
    let err = builtin("gsm9k").unwrap_err();
    assert!(err.to_string().contains("gsm8k, math500"), "{err}");
    // Not a built-in and not a file.
    let err = resolve_dataset("gsm9k", Path::new("/nonexistent")).unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset { .. }), "{err}");
    // A path that does not exist is an I/O error naming it.
    let err = resolve_dataset("/nonexistent/data.jsonl", Path::new("/x")).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/data.jsonl: "),
        "{err}"
    );
    // A built-in resolved against a folder without it: the error names the file.
    let err = resolve_dataset("aime24", Path::new("/nonexistent-shared")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent-shared/datasets/aime24/test.jsonl: "),
        "{err}"
    );
}

#[test]
fn resolve_takes_paths_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.jsonl");
    std::fs::write(&file, "{\"question\": \"1+1?\", \"answer\": \"2\"}\n").unwrap();
    let ds: Dataset = resolve_dataset(file.to_str().unwrap(), Path::new("/unused")).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.examples[0].data_source, "mine");
    assert_eq!(ds.examples[0].id, "mine/0");
}

#[test]
fn default_shared_dir_honours_the_environment() {
    // Only checks the discovery when RLVR_SHARED is unset, to stay independent of the
    // process environment of other tests (no env mutation here).
    match std::env::var_os("RLVR_SHARED") {
        Some(p) if !p.is_empty() => {
            assert_eq!(rlvr_data::default_shared_dir().unwrap(), PathBuf::from(p))
        }
        _ => {
            if require_shared("datasets").is_some() {
                // Tests run in the crate folder: the ancestors' walk finds <repo>/../shared.
                let found = rlvr_data::default_shared_dir().unwrap();
                assert!(found.join("datasets").is_dir(), "{}", found.display());
                assert_eq!(
                    found.canonicalize().unwrap(),
                    shared_dir().canonicalize().unwrap()
                );
            }
        }
    }
}
