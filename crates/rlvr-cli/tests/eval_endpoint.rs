//! `rlvr eval --endpoint` against `rlvr serve` on loopback gives the same results as
//! `rlvr eval --model` in-process for greedy decoding; a server that is not there gives
//! per-sample `error` outcomes after the retries, not a hang or a crash. (GSM8K: its prompts fit
//! the fixture's 512-token context, which the server enforces.)

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rlvr_conformance::{read_jsonl, require_shared, shared_dir, spawn_serve};
use serde_json::Value;

fn rlvr(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn")
        .env("RLVR_SHARED", shared_dir())
        .env("RAYON_NUM_THREADS", "1")
        .current_dir(cwd);
    c
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "rlvr eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is the summary JSON")
}

const COMMON: &[&str] = &[
    "eval",
    "--dataset",
    "gsm8k",
    "--limit",
    "6",
    "--n",
    "1",
    "--k",
    "1",
    "--temperature",
    "0",
    "--max-new-tokens",
    "12",
];

#[test]
fn endpoint_and_in_process_agree_for_greedy_decoding() {
    let (Some(model), Some(_)) = (
        require_shared("fixtures/tiny-qwen2"),
        require_shared("datasets/gsm8k/test.jsonl"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = spawn_serve(Path::new(env!("CARGO_BIN_EXE_rlvr")), &model);
    let remote = ok(&rlvr(tmp.path())
        .args(COMMON)
        .args(["--endpoint", &url, "--out", "remote"])
        .output()
        .unwrap());
    let local = ok(&rlvr(tmp.path())
        .args(COMMON)
        .args(["--model", model.to_str().unwrap(), "--out", "local"])
        .output()
        .unwrap());
    assert!(
        remote["backend"].as_str().unwrap().starts_with("http:"),
        "{remote}"
    );
    let a = read_jsonl(&tmp.path().join("remote/samples.jsonl"));
    let b = read_jsonl(&tmp.path().join("local/samples.jsonl"));
    for key in [
        "pass@1",
        "maj@1",
        "mean@1",
        "num_problems",
        "correct",
        "incorrect",
        "invalid",
        "error",
        "mean_response_tokens",
        "truncation_rate",
    ] {
        assert_eq!(remote[key], local[key], "{key}: remote {a:?}\nlocal {b:?}");
    }
    assert_eq!(remote["error"], 0);
    assert_eq!(a.len(), 6);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for key in ["response", "score", "status", "tokens", "truncated"] {
            assert_eq!(x[key], y[key], "{key} of problem {}", x["problem"]);
        }
    }
}

#[test]
fn a_dead_endpoint_gives_error_outcomes_after_retries() {
    let Some(_) = require_shared("datasets/gsm8k/test.jsonl") else {
        return;
    };
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = rlvr(tmp.path())
        .args(COMMON)
        .args([
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--api-model",
            "m",
        ])
        .args([
            "--retries",
            "1",
            "--request-timeout-ms",
            "500",
            "--out",
            "dead",
        ])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    let summary = ok(&out);
    assert_eq!(summary["error"], 6, "{summary}");
    assert_eq!(summary["pass@1"], 0.0);
    let samples = read_jsonl(&tmp.path().join("dead/samples.jsonl"));
    let reason = samples[0]["details"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("127.0.0.1") && reason.contains("attempt"),
        "{}",
        samples[0]
    );
}
