use std::fs;

use rlvr_store::{read_metrics, MetricsLog, StoreError};
use serde_json::json;

#[test]
fn appends_flushes_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    let mut log = MetricsLog::open(&p).unwrap();
    log.append(&json!({"step": 1, "loss": 0.5})).unwrap();
    log.append(&json!({"step": 2, "loss": 0.25, "reward": {"mean": 1}}))
        .unwrap();
    log.flush().unwrap();
    let text = fs::read_to_string(&p).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with('\n'));
    let m = read_metrics(&p).unwrap();
    assert_eq!(m[1]["reward"]["mean"], 1);
    drop(log);

    // Reopening appends.
    let mut log = MetricsLog::open(&p).unwrap();
    log.append(&json!({"step": 3})).unwrap();
    drop(log); // drop flushes the buffer
    assert_eq!(read_metrics(&p).unwrap().len(), 3);
}

#[test]
fn rejects_records_without_step() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    let mut log = MetricsLog::open(&p).unwrap();
    for bad in [
        json!({"loss": 1}),
        json!({"step": -1}),
        json!({"step": "3"}),
        json!([1]),
    ] {
        let err = log.append(&bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidRecord { .. }), "{err}");
        assert!(err.to_string().contains("metrics.jsonl"), "{err}");
    }
}

#[test]
fn malformed_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    fs::write(&p, "{\"step\":1}\n{\"step\":2,\n{\"step\":3}\n").unwrap();
    let err = read_metrics(&p).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("metrics.jsonl:2:"), "{msg}");
    let err = MetricsLog::truncate_after(&p, 10).unwrap_err();
    assert!(err.to_string().contains("metrics.jsonl:2:"), "{err}");

    fs::write(&p, "{\"step\":1}\n\n{\"loss\":3}\n").unwrap();
    let err = read_metrics(&p).unwrap_err();
    assert!(err.to_string().contains("metrics.jsonl:3:"), "{err}");
    assert!(err.to_string().contains("step"), "{err}");
}

#[test]
fn torn_last_line_is_dropped_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    fs::write(&p, "{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"lo").unwrap();
    assert_eq!(read_metrics(&p).unwrap().len(), 2);
    // Opening for append cuts the torn tail so the next record starts on its own line.
    let mut log = MetricsLog::open(&p).unwrap();
    log.append(&json!({"step": 3})).unwrap();
    log.flush().unwrap();
    assert_eq!(
        fs::read_to_string(&p).unwrap(),
        "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n"
    );
}

#[test]
fn complete_record_missing_only_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    fs::write(&p, "{\"step\":1}\n{\"step\":2}").unwrap();
    assert_eq!(read_metrics(&p).unwrap().len(), 2);
    let mut log = MetricsLog::open(&p).unwrap();
    log.append(&json!({"step": 3})).unwrap();
    log.flush().unwrap();
    assert_eq!(read_metrics(&p).unwrap().len(), 3);
}

#[test]
fn truncate_after_keeps_steps_up_to_and_including() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    fs::write(
        &p,
        "{\"step\":1,\"a\":1}\n{\"step\":2}\n{\"step\":3}\n{\"step\":4}\n{\"step\":5,\"x\"",
    )
    .unwrap();
    assert_eq!(MetricsLog::truncate_after(&p, 2).unwrap(), 2);
    assert_eq!(
        fs::read_to_string(&p).unwrap(),
        "{\"step\":1,\"a\":1}\n{\"step\":2}\n"
    );
    // No temporary files left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    // Missing file: nothing to do.
    assert_eq!(
        MetricsLog::truncate_after(&dir.path().join("none.jsonl"), 3).unwrap(),
        0
    );
}

#[test]
fn reading_a_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_metrics(&dir.path().join("gone.jsonl")).unwrap_err();
    assert!(err.to_string().contains("gone.jsonl"), "{err}");
}
