//! Loading JSONL/JSON files: schemas, mappings, templates and error locations.

use std::path::{Path, PathBuf};

use rlvr_data::{
    load_file, AnswerExtract, DataError, FieldMapping, GroundTruthKind, Prompt, PromptFormat,
    PromptTemplate, Unit,
};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err_text(path: &Path, mapping: &FieldMapping) -> String {
    load_file(path, mapping).unwrap_err().to_string()
}

#[test]
fn malformed_line_reports_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "data.jsonl",
        "{\"question\": \"a\", \"answer\": \"1\"}\n\n   \n{\"question\": \"b\", \"answer\": }\n",
    );
    let err = load_file(&p, &FieldMapping::default()).unwrap_err();
    match &err {
        DataError::Json { at, .. } => {
            assert_eq!((at.unit, at.index), (Unit::Line, 4));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:4: invalid JSON: ", p.display())),
        "{text}"
    );
    assert!(!text.contains("line 1 column"), "{text}");
}

#[test]
fn missing_fields_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec!["{\"question\": \"q\", \"answer\": \"1\"}"; 16];
    lines.push("{\"question\": \"q17\"}");
    let p = write(dir.path(), "data.jsonl", &lines.join("\n"));
    let m = FieldMapping {
        answer_field: Some("answer".into()),
        ..Default::default()
    };
    assert_eq!(
        err_text(&p, &m),
        format!("{}:17: field \"answer\": missing", p.display())
    );
    // Without a mapping the defaults are listed.
    let text = err_text(&p, &FieldMapping::default());
    assert!(
        text.starts_with(&format!(
            "{}:17: field \"answer\": missing (also looked for",
            p.display()
        )),
        "{text}"
    );
    // Not an object.
    let p = write(
        dir.path(),
        "arr.jsonl",
        "{\"question\": \"q\", \"answer\": 1}\n[1, 2]\n",
    );
    assert_eq!(
        err_text(&p, &FieldMapping::default()),
        format!("{}:2: expected a JSON object, found a list", p.display())
    );
    // No prompt at all.
    let p = write(dir.path(), "noq.jsonl", "{\"answer\": 1}\n");
    let text = err_text(&p, &FieldMapping::default());
    assert!(
        text.starts_with(&format!("{}:1: field \"prompt\": missing", p.display())),
        "{text}"
    );
    // Bad chat messages.
    let p = write(
        dir.path(),
        "bad_msgs.jsonl",
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"x\"}, {\"content\": \"y\"}], \"answer\": 1}\n",
    );
    assert_eq!(
        err_text(&p, &FieldMapping::default()),
        format!(
            "{}:1: field \"prompt\": message 2 has no \"role\"",
            p.display()
        )
    );
}

#[test]
fn json_arrays_report_items() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "data.json",
        r#"[{"problem": "p1", "solution": "so \\boxed{\\frac{1}{2}}"}, {"problem": "p2", "solution": "none"}]"#,
    );
    let m = FieldMapping {
        answer_extract: AnswerExtract::Boxed,
        ..Default::default()
    };
    assert_eq!(
        err_text(&p, &m),
        format!(
            "{}: item 2: field \"solution\": no \\boxed{{...}} answer (answer_extract = \"boxed\")",
            p.display()
        )
    );
    let p = write(
        dir.path(),
        "one.json",
        r#"[{"problem": "p1", "solution": "\\boxed{\\frac{1}{2}}"}]"#,
    );
    let ds = load_file(&p, &m).unwrap();
    assert_eq!(ds.examples[0].ground_truth, json!("\\frac{1}{2}"));
    assert_eq!(ds.examples[0].prompt, Prompt::user("p1"));
    let p = write(dir.path(), "obj.json", r#"{"problem": "p"}"#);
    assert!(err_text(&p, &m).ends_with("expected a JSON array of records, found an object"));
    let p = write(dir.path(), "data.csv", "a,b\n");
    assert!(matches!(
        load_file(&p, &m),
        Err(DataError::UnsupportedFormat { .. })
    ));
    assert!(matches!(
        load_file(&dir.path().join("missing.jsonl"), &m),
        Err(DataError::Io { .. })
    ));
}

#[test]
fn gsm8k_hash_extraction_and_plain_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "gsm.jsonl",
        concat!(
            "{\"question\": \"How many?\", \"answer\": \"work <<1+1=2>>\\n#### 1,024\", \"level\": 3}\n",
            "{\"question\": \"And?\", \"answer\": \"no marker\"}\n",
        ),
    );
    let m = FieldMapping {
        answer_extract: AnswerExtract::Gsm8kHash,
        ..Default::default()
    };
    assert_eq!(
        err_text(&p, &m),
        format!(
            "{}:2: field \"answer\": no answer after a \"####\" (answer_extract = \"gsm8k_hash\")",
            p.display()
        )
    );
    let p = write(
        dir.path(),
        "gsm.jsonl",
        "{\"question\": \"How many?\", \"answer\": \"work\\n#### 1,024\", \"level\": 3}\n",
    );
    let ex = &load_file(&p, &m).unwrap().examples[0];
    assert_eq!(ex.ground_truth, json!("1024"));
    assert_eq!(ex.id, "gsm/0");
    assert_eq!(ex.data_source, "gsm");
    assert_eq!(ex.extra_info, json!({"level": 3}));
    assert_eq!(ex.prompt, Prompt::user("How many?"));
}

#[test]
fn verl_jsonl_loads_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        json!({
            "data_source": "openai/gsm8k",
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": "4"},
            "extra_info": {"split": "train", "index": 0}
        }),
        json!({
            "data_source": "openai/gsm8k",
            "prompt": "Complete: 1, 2, 3,",
            "reward_model": {"ground_truth": {"nested": [1, 2]}},
            "extra_info": {"split": "train", "index": 1, "ability": "kept"},
            "ability": "math"
        }),
    ];
    let text: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    let p = write(dir.path(), "verl.jsonl", &(text.join("\n") + "\n"));
    let ds = load_file(&p, &FieldMapping::default()).unwrap();
    assert_eq!(ds.len(), 2);
    let a = &ds.examples[0];
    assert_eq!(a.data_source, "openai/gsm8k");
    assert_eq!(a.id, "openai/gsm8k/0");
    assert_eq!(
        a.prompt,
        Prompt::Messages(rows[0]["prompt"].as_array().unwrap().clone())
    );
    assert_eq!(a.ground_truth, json!("4"));
    assert_eq!(
        a.extra_info,
        json!({"split": "train", "index": 0, "ability": "math", "reward_model": {"style": "rule"}})
    );
    let b = &ds.examples[1];
    // A string `prompt` is completion-style text.
    assert_eq!(b.prompt, Prompt::Text("Complete: 1, 2, 3,".into()));
    assert_eq!(b.ground_truth, json!({"nested": [1, 2]}));
    // The record's own extra_info wins over a column of the same name.
    assert_eq!(
        b.extra_info,
        json!({"split": "train", "index": 1, "ability": "kept"})
    );

    // Round trip: write verl JSONL, read it back.
    let out = dir.path().join("out.jsonl");
    ds.write_jsonl(&out).unwrap();
    let back = load_file(&out, &FieldMapping::default()).unwrap();
    assert_eq!(back.examples, ds.examples);

    // Mapping overrides: data source, prompt format.
    let m = FieldMapping {
        data_source: Some("mine".into()),
        prompt_format: PromptFormat::Chat,
        ..Default::default()
    };
    let ds = load_file(&p, &m).unwrap();
    assert_eq!(ds.examples[1].data_source, "mine");
    assert_eq!(ds.examples[1].id, "mine/1");
    assert_eq!(ds.examples[1].prompt, Prompt::user("Complete: 1, 2, 3,"));
}

#[test]
fn templates_fill_records_and_messages_stay() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.jsonl",
        concat!(
            "{\"id\": 7, \"question\": \"What is x?\", \"topic\": \"algebra\", \"points\": 3, \"answer\": \"2\"}\n",
            "{\"id\": \"b\", \"prompt\": [{\"role\": \"user\", \"content\": \"as is\"}], \"answer\": \"5\"}\n",
        ),
    );
    let template = PromptTemplate::new("[{topic}, {points} pts] {question} Use {{braces}}.")
        .unwrap()
        .with_system("You solve {topic}.")
        .unwrap();
    let m = FieldMapping {
        template: Some(template),
        ..Default::default()
    };
    let ds = load_file(&p, &m).unwrap();
    assert_eq!(
        ds.examples[0].prompt,
        Prompt::Messages(vec![
            json!({"role": "system", "content": "You solve algebra."}),
            json!({"role": "user", "content": "[algebra, 3 pts] What is x? Use {braces}."}),
        ])
    );
    assert_eq!(ds.examples[0].id, "7");
    // Fields used by the template are consumed.
    assert_eq!(ds.examples[0].extra_info, json!({}));
    // A record with chat messages keeps them.
    assert_eq!(ds.examples[1].prompt, Prompt::user("as is"));

    // A placeholder the record lacks: the error names the line, the template and the field.
    let m = FieldMapping {
        template: Some(PromptTemplate::new("{question} ({difficulty})").unwrap()),
        ..Default::default()
    };
    let text = err_text(&p, &m);
    assert!(
        text.starts_with(&format!(
            "{}:1: prompt template \"{{question}} ({{difficulty}})\": unknown field \"difficulty\"",
            p.display()
        )),
        "{text}"
    );
    // Text format with a system message is refused up front.
    let m = FieldMapping {
        template: Some(
            PromptTemplate::new("{question}")
                .unwrap()
                .with_system("s")
                .unwrap(),
        ),
        prompt_format: PromptFormat::Text,
        ..Default::default()
    };
    assert!(matches!(
        load_file(&p, &m),
        Err(DataError::InvalidMapping(_))
    ));
}

#[test]
fn duplicate_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.jsonl",
        "{\"id\": \"a\", \"question\": \"q\", \"answer\": 1}\n{\"id\": \"a\", \"question\": \"r\", \"answer\": 2}\n",
    );
    assert_eq!(
        err_text(&p, &FieldMapping::default()),
        format!(
            "{0}:2: field \"id\": duplicate id \"a\" (first at {0}:1)",
            p.display()
        )
    );
}

#[test]
fn humaneval_mapping_on_a_small_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "he.jsonl",
        &json!({"task_id": "T/0", "prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}).to_string(),
    );
    let m = FieldMapping {
        ground_truth: GroundTruthKind::Humaneval,
        ..Default::default()
    };
    let ex = &load_file(&p, &m).unwrap().examples[0];
    assert_eq!(ex.id, "T/0");
    assert_eq!(ex.prompt, Prompt::Text("def f():\n".into()));
    assert_eq!(
        ex.ground_truth,
        json!({"format": "humaneval", "prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"})
    );
    let p = write(
        dir.path(),
        "he2.jsonl",
        "{\"prompt\": \"def g():\", \"test\": \"x\"}\n",
    );
    assert_eq!(
        err_text(&p, &m),
        format!("{}:1: field \"entry_point\": missing", p.display())
    );
}

#[test]
fn field_mapping_serde() {
    let m: FieldMapping = serde_json::from_value(json!({
        "prompt_field": "q",
        "answer_field": "reward_model.ground_truth",
        "answer_extract": "gsm8k_hash",
        "template": {"user": "{q}\nAnswer:", "system": "Be exact."}
    }))
    .unwrap();
    assert_eq!(m.answer_extract, AnswerExtract::Gsm8kHash);
    assert_eq!(m.template.as_ref().unwrap().system(), Some("Be exact."));
    let back: FieldMapping = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!(back, m);
    let m: FieldMapping = serde_json::from_value(json!({"template": "{question}!"})).unwrap();
    assert_eq!(m.template.unwrap().user(), "{question}!");
    assert_eq!(
        serde_json::from_value::<FieldMapping>(json!({})).unwrap(),
        FieldMapping::default()
    );
    // Unknown keys and bad templates are configuration errors.
    assert!(serde_json::from_value::<FieldMapping>(json!({"answr_field": "a"})).is_err());
    let err = serde_json::from_value::<FieldMapping>(json!({"template": "\\boxed{}"})).unwrap_err();
    assert!(err.to_string().contains("empty placeholder"), "{err}");
    assert!(serde_json::from_value::<FieldMapping>(json!({"answer_extract": "last"})).is_err());
}
