//! Parquet in verl's schema (nested `prompt` list of structs, `reward_model` struct), written
//! with the parquet crate's low-level writer, then loaded.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rlvr_data::{load_file, DataError, FieldMapping, Prompt, Unit};
use serde_json::json;

/// As pyarrow writes `datasets`/pandas frames of verl's preprocessing scripts.
const VERL_SCHEMA: &str = "
message schema {
  OPTIONAL BYTE_ARRAY data_source (UTF8);
  OPTIONAL group prompt (LIST) {
    REPEATED group list {
      OPTIONAL group element {
        OPTIONAL BYTE_ARRAY content (UTF8);
        OPTIONAL BYTE_ARRAY role (UTF8);
      }
    }
  }
  OPTIONAL BYTE_ARRAY ability (UTF8);
  OPTIONAL group reward_model {
    OPTIONAL BYTE_ARRAY ground_truth (UTF8);
    OPTIONAL BYTE_ARRAY style (UTF8);
  }
  OPTIONAL group extra_info {
    OPTIONAL INT64 index;
    OPTIONAL DOUBLE difficulty;
    OPTIONAL BYTE_ARRAY split (UTF8);
  }
}";

struct Row {
    messages: Vec<(&'static str, &'static str)>,
    answer: &'static str,
    difficulty: Option<f64>,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            messages: vec![("system", "Reason, then answer."), ("user", "What is 6*7?")],
            answer: "42",
            difficulty: Some(0.5),
        },
        Row {
            messages: vec![("user", "What is 2+2?")],
            answer: "4",
            difficulty: None,
        },
        Row {
            messages: vec![("user", "Name a prime above 10.")],
            answer: "11",
            difficulty: Some(1.0),
        },
    ]
}

fn bytes(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

fn write_verl_parquet(path: &Path, compression: Compression) {
    let rows = rows();
    let schema = Arc::new(parse_message_type(VERL_SCHEMA).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = writer.next_row_group().unwrap();

    // Flat string column: present in every row (definition level 1).
    let flat = |rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, File>,
                vals: Vec<ByteArray>| {
        let mut col = rg.next_column().unwrap().unwrap();
        let def = vec![1i16; vals.len()];
        col.typed::<ByteArrayType>()
            .write_batch(&vals, Some(&def), None)
            .unwrap();
        col.close().unwrap();
    };
    flat(
        &mut rg,
        rows.iter().map(|_| bytes("openai/gsm8k")).collect(),
    );

    // prompt.list.element.{content,role}: max definition 4, max repetition 1.
    for content in [true, false] {
        let (mut vals, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            for (i, m) in r.messages.iter().enumerate() {
                vals.push(bytes(if content { m.1 } else { m.0 }));
                def.push(4i16);
                rep.push(if i == 0 { 0i16 } else { 1 });
            }
        }
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&vals, Some(&def), Some(&rep))
            .unwrap();
        col.close().unwrap();
    }

    flat(&mut rg, rows.iter().map(|_| bytes("math")).collect());

    // reward_model.{ground_truth,style}: definition 2 when present.
    for vals in [
        rows.iter().map(|r| bytes(r.answer)).collect::<Vec<_>>(),
        rows.iter().map(|_| bytes("rule")).collect(),
    ] {
        let mut col = rg.next_column().unwrap().unwrap();
        let def = vec![2i16; vals.len()];
        col.typed::<ByteArrayType>()
            .write_batch(&vals, Some(&def), None)
            .unwrap();
        col.close().unwrap();
    }

    // extra_info.index (INT64), .difficulty (DOUBLE, null in row 2: definition 1), .split.
    let mut col = rg.next_column().unwrap().unwrap();
    let idx: Vec<i64> = (0..rows.len() as i64).collect();
    col.typed::<Int64Type>()
        .write_batch(&idx, Some(&vec![2; rows.len()]), None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let vals: Vec<f64> = rows.iter().filter_map(|r| r.difficulty).collect();
    let def: Vec<i16> = rows
        .iter()
        .map(|r| if r.difficulty.is_some() { 2 } else { 1 })
        .collect();
    col.typed::<DoubleType>()
        .write_batch(&vals, Some(&def), None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let vals: Vec<ByteArray> = rows.iter().map(|_| bytes("test")).collect();
    col.typed::<ByteArrayType>()
        .write_batch(&vals, Some(&vec![2; rows.len()]), None)
        .unwrap();
    col.close().unwrap();

    assert!(rg.next_column().unwrap().is_none(), "every column written");
    rg.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn verl_parquet_loads_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (name, compression) in [
        ("snappy", Compression::SNAPPY),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("lz4", Compression::LZ4_RAW),
        ("none", Compression::UNCOMPRESSED),
    ] {
        let path = dir.path().join(format!("train-{name}.parquet"));
        write_verl_parquet(&path, compression);
        let ds = load_file(&path, &FieldMapping::default()).unwrap();
        assert_eq!(ds.len(), 3, "{name}");
        let rows = rows();
        for (i, (ex, row)) in ds.iter().zip(&rows).enumerate() {
            assert_eq!(ex.data_source, "openai/gsm8k");
            assert_eq!(ex.id, format!("openai/gsm8k/{i}"));
            let want: Vec<_> = row
                .messages
                .iter()
                .map(|(role, content)| json!({"content": content, "role": role}))
                .collect();
            assert_eq!(ex.prompt, Prompt::Messages(want), "{name} row {i}");
            assert_eq!(ex.ground_truth, json!(row.answer));
            assert_eq!(
                ex.extra_info,
                json!({
                    "index": i,
                    "difficulty": row.difficulty,
                    "split": "test",
                    "ability": "math",
                    "reward_model": {"style": "rule"},
                }),
                "{name} row {i}"
            );
        }
        // Round trip through verl JSONL.
        let out = dir.path().join(format!("{name}.jsonl"));
        ds.write_jsonl(&out).unwrap();
        assert_eq!(
            load_file(&out, &FieldMapping::default()).unwrap().examples,
            ds.examples
        );
    }
}

#[test]
fn parquet_errors_name_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    // Not a parquet file at all.
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1 this is not parquet").unwrap();
    let err = load_file(&bad, &FieldMapping::default()).unwrap_err();
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: parquet: ", bad.display())),
        "{err}"
    );
    // A valid file whose rows lack what the mapping asks for.
    let path = dir.path().join("verl.parquet");
    write_verl_parquet(&path, Compression::SNAPPY);
    let m = FieldMapping {
        answer_field: Some("solution".into()),
        ..Default::default()
    };
    let err = load_file(&path, &m).unwrap_err();
    match &err {
        DataError::Field { at, field, .. } => {
            assert_eq!(
                (at.unit, at.index, field.as_str()),
                (Unit::Row, 1, "solution")
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("{}: row 1: field \"solution\": missing", path.display())
    );
    // A truncated file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load_file(&cut, &FieldMapping::default()),
        Err(DataError::Parquet { .. })
    ));
}

/// Files written by pyarrow itself (`tests/data/make_pyarrow_fixtures.py`).
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn pyarrow_written_verl_files_load() {
    for name in ["verl-snappy.parquet", "verl-zstd.parquet"] {
        let ds = load_file(&fixture(name), &FieldMapping::default()).unwrap();
        assert_eq!(ds.len(), 2, "{name}");
        let (a, b) = (&ds.examples[0], &ds.examples[1]);
        assert_eq!(a.id, "openai/gsm8k/0");
        assert_eq!(
            a.prompt,
            Prompt::Messages(vec![
                json!({"role": "user", "content": "What is 6*7? Let's think"})
            ])
        );
        assert_eq!(a.ground_truth, json!("42"));
        assert_eq!(
            a.extra_info,
            json!({"split": "train", "index": 0, "answer": "6*7=42 #### 42",
                   "question": "What is 6*7?", "ability": "math",
                   "reward_model": {"style": "rule"}})
        );
        assert_eq!(
            b.prompt,
            Prompt::Messages(vec![
                json!({"role": "system", "content": "sys"}),
                json!({"role": "user", "content": "2+2?"}),
            ])
        );
        assert_eq!(b.ground_truth, json!("4"));
        assert_eq!(b.extra_info["answer"], json!(null));
    }
}

#[test]
fn pyarrow_written_plain_file_converts_every_type() {
    let ds = load_file(&fixture("plain-snappy.parquet"), &FieldMapping::default()).unwrap();
    let (a, b) = (&ds.examples[0], &ds.examples[1]);
    assert_eq!(a.prompt, Prompt::user("q1"));
    assert_eq!(
        (a.ground_truth.clone(), b.ground_truth.clone()),
        (json!(1), json!(2))
    );
    assert_eq!(a.data_source, "plain-snappy");
    assert_eq!(
        a.extra_info,
        json!({"meta": {"a": 1}, "ts": 0, "blob": [255, 0], "dec": "1.25", "f16": 1.5,
               "tags": ["x", "y"], "d": 1})
    );
    assert_eq!(
        b.extra_info,
        json!({"meta": {"b": 2}, "ts": 1000, "blob": "ok", "dec": "-2.50", "f16": null,
               "tags": [], "d": 2})
    );
}
