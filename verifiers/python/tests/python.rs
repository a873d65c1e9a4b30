//! Python reward functions through the worker pool: verl and TRL conventions, the example
//! file, and faulty functions (exceptions with tracebacks, hangs, crashes, garbage, a broken
//! file) that become `error` outcomes or clear errors — never a hang or a crash of rlvr.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rlvr_verifier_python::{register, PythonConfig, PythonVerifier};
use rlvr_verify::registry::from_spec;
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::{json, Value};

/// Whether `python3` runs; under CI its absence fails the test, elsewhere it skips.
fn have_python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !rlvr_conformance::in_ci(),
            "python3 is missing (CI=true: required)"
        );
        eprintln!(
            "SKIPPED: python3 is missing: install CPython 3 to run the Python verifier tests"
        );
    }
    ok
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/reward.py")
}

fn check(v: &dyn Verifier, response: &str, gt: Value) -> (Status, f32, Value) {
    let meta = json!({"data_source": "test", "extra_info": {"k": 1}});
    let o = v.verify(&VerifyInput {
        response,
        ground_truth: &gt,
        metadata: &meta,
    });
    (o.status, o.score, o.details)
}

fn write(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("faulty.py");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn verl_and_trl_functions_score() {
    if !have_python() {
        return;
    }
    let v = PythonVerifier::new(PythonConfig {
        path: example(),
        ..PythonConfig::default()
    })
    .unwrap();
    let (s, score, d) = check(&v, "so it is 42", json!("42"));
    assert_eq!((s, score), (Status::Correct, 1.0));
    assert_eq!(d["extracted"], "42");
    assert_eq!(check(&v, "41", json!("42")).0, Status::Incorrect);
    let trl = PythonVerifier::new(PythonConfig {
        path: example(),
        function: "length_penalty".into(),
        correct_threshold: 0.5,
        ..PythonConfig::default()
    })
    .unwrap();
    let (s, score, _) = check(&trl, "short", json!(null));
    assert_eq!(s, Status::Correct);
    assert!((score - 0.95).abs() < 1e-6, "{score}");
    // Many calls from several threads share the pool.
    let v = std::sync::Arc::new(v);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let v = v.clone();
            std::thread::spawn(move || check(v.as_ref(), &format!("{i}"), json!(i.to_string())).0)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Status::Correct);
    }
}

#[test]
fn faulty_functions_are_error_outcomes_and_the_pool_recovers() {
    if !have_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        r#"
import os, time
def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    if solution_str == "raise":
        raise ValueError("bad input " + solution_str)
    if solution_str == "hang":
        time.sleep(60)
    if solution_str == "crash":
        os._exit(3)
    if solution_str == "nan":
        return float("nan")
    if solution_str == "print":
        print("noise on stdout")
    return 1.0
"#,
    );
    let v = PythonVerifier::new(PythonConfig {
        path,
        workers: 1,
        timeout_ms: 1500,
        ..PythonConfig::default()
    })
    .unwrap();
    let (s, _, d) = check(&v, "raise", json!(null));
    assert_eq!(s, Status::Error);
    let tb = d["traceback"].as_str().unwrap();
    assert!(tb.contains("ValueError: bad input raise"), "{tb}");
    // The user's prints do not corrupt the protocol.
    assert_eq!(check(&v, "print", json!(null)).0, Status::Correct);
    let t = Instant::now();
    let (s, _, d) = check(&v, "hang", json!(null));
    assert_eq!(s, Status::Error);
    assert!(d["reason"].as_str().unwrap().contains("timed out"), "{d}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The hung worker was replaced.
    let (s, _, d) = check(&v, "ok", json!(null));
    assert_eq!(s, Status::Correct, "{d}");
    let (s, _, d) = check(&v, "crash", json!(null));
    assert_eq!(s, Status::Error, "{d}");
    assert_eq!(check(&v, "ok", json!(null)).0, Status::Correct);
    assert_eq!(check(&v, "nan", json!(null)).0, Status::Error);
}

#[test]
fn a_broken_file_or_missing_function_is_a_clear_error() {
    if !have_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "def compute_score(:\n");
    let e = PythonVerifier::new(PythonConfig {
        path,
        ..PythonConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("SyntaxError"), "{e}");
    let e = PythonVerifier::new(PythonConfig {
        path: example(),
        function: "nope".into(),
        ..PythonConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = PythonVerifier::new(PythonConfig {
        path: tmp.path().join("missing.py"),
        ..PythonConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("missing.py") && e.contains("python.path"), "{e}");
}

#[test]
fn registered_as_python_with_path_and_function_in_the_name() {
    if !have_python() {
        return;
    }
    register().unwrap();
    let name = format!("python:{}:length_penalty", example().display());
    let v = from_spec(&json!(name)).unwrap();
    assert_eq!(check(v.as_ref(), "", json!(null)).1, 1.0);
    let v = from_spec(&json!({"type": "python", "path": example(), "workers": 1})).unwrap();
    assert_eq!(check(v.as_ref(), "7", json!("7")).0, Status::Correct);
    let e = from_spec(&json!({"type": "python", "path": example(), "wokers": 1}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("python.wokers"), "{e}");
}

/// A sandboxed verifier, or `None` (skip; a failure under CI) when the backend is missing.
fn sandboxed(path: PathBuf, function: &str, sandbox: &str) -> Option<PythonVerifier> {
    let cfg = PythonConfig {
        path,
        function: function.into(),
        sandbox: sandbox.into(),
        timeout_ms: 2_000,
        ..PythonConfig::default()
    };
    match PythonVerifier::new(cfg) {
        Ok(v) => Some(v),
        Err(e) if e.to_string().contains("is not built") || e.to_string().contains("Docker") => {
            assert!(
                !rlvr_conformance::in_ci(),
                "the {sandbox} sandbox is missing (CI=true: required): {e}"
            );
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn untrusted_functions_run_in(sandbox: &str) {
    // the example, unchanged, in both conventions
    let Some(v) = sandboxed(example(), "compute_score", sandbox) else {
        return;
    };
    assert_eq!(check(&v, "so 42", json!("42")).0, Status::Correct);
    assert_eq!(check(&v, "so 41", json!("42")).0, Status::Incorrect);
    let v = sandboxed(example(), "length_penalty", sandbox).unwrap();
    let (st, score, _) = check(&v, &"x".repeat(50), json!(""));
    assert_eq!((st, score), (Status::Incorrect, 0.5));

    // a hostile function: reads host files, calls out, loops — all contained
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary.txt");
    std::fs::write(&canary, "secret-canary").unwrap();
    let body = format!(
        "import socket, time\n\
         def steal(data_source, solution_str, ground_truth, extra_info=None):\n    \
             return {{'score': 1.0, 'data': open({:?}).read()}}\n\
         def call_out(data_source, solution_str, ground_truth, extra_info=None):\n    \
             socket.create_connection(('1.1.1.1', 80), timeout=1)\n    return 1.0\n\
         def spin(data_source, solution_str, ground_truth, extra_info=None):\n    \
             while True:\n        pass\n",
        canary.display().to_string()
    );
    let path = write(dir.path(), &body);
    for f in ["steal", "call_out"] {
        let v = sandboxed(path.clone(), f, sandbox).unwrap();
        let (st, _, d) = check(&v, "x", json!("1"));
        assert_eq!(st, Status::Error, "{f}: {d}");
        assert!(d.to_string().contains("Error"), "{f}: {d}");
        assert!(!d.to_string().contains("secret-canary"), "{f}: {d}");
    }
    let v = sandboxed(path.clone(), "spin", sandbox).unwrap();
    let t = Instant::now();
    let (st, _, d) = check(&v, "x", json!("1"));
    assert_eq!(st, Status::Error, "{d}");
    assert!(
        d["reason"].as_str().unwrap().contains("timeout")
            || d["reason"].as_str().unwrap().contains("out_of_fuel"),
        "{d}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // a broken file is reported at construction, with Python's error
    let bad = dir.path().join("broken.py");
    std::fs::write(&bad, "def f(:\n").unwrap();
    let e = PythonVerifier::new(PythonConfig {
        path: bad,
        sandbox: sandbox.into(),
        ..PythonConfig::default()
    })
    .err()
    .expect("a syntax error is refused");
    assert!(e.to_string().contains("SyntaxError"), "{e}");
}

#[test]
fn untrusted_functions_run_in_the_wasm_sandbox() {
    untrusted_functions_run_in("wasm");
}

#[test]
fn untrusted_functions_run_in_the_docker_sandbox() {
    untrusted_functions_run_in("docker");
}

#[test]
fn an_unknown_sandbox_is_a_config_error() {
    let e = PythonVerifier::new(PythonConfig {
        path: example(),
        sandbox: "vm".into(),
        ..PythonConfig::default()
    })
    .err()
    .unwrap();
    assert!(e.to_string().contains("python.sandbox"), "{e}");
}
