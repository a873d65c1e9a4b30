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

/// The per-call limit of sandboxed calls in these tests: a container start on a loaded CI
/// machine can take over a second, so Docker gets more than WASM.
fn sandbox_timeout_ms(sandbox: &str) -> u64 {
    if sandbox == "docker" {
        6_000
    } else {
        2_000
    }
}

/// A sandboxed verifier, or `None` (skip; a failure under CI) when the backend is missing.
fn sandboxed(path: PathBuf, function: &str, sandbox: &str) -> Option<PythonVerifier> {
    let cfg = PythonConfig {
        path,
        function: function.into(),
        sandbox: sandbox.into(),
        timeout_ms: sandbox_timeout_ms(sandbox),
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
    let bound = Duration::from_millis(5 * sandbox_timeout_ms(sandbox));
    assert!(t.elapsed() < bound, "{:?}", t.elapsed());

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

/// Owned inputs for a batch: (response, ground truth, metadata).
type Item = (String, Value, Value);

fn batch(v: &dyn Verifier, items: &[Item]) -> Vec<rlvr_verify::Outcome> {
    let inputs: Vec<VerifyInput> = items
        .iter()
        .map(|(r, gt, meta)| VerifyInput {
            response: r,
            ground_truth: gt,
            metadata: meta,
        })
        .collect();
    v.verify_batch(&inputs)
}

fn singles(v: &dyn Verifier, items: &[Item]) -> Vec<rlvr_verify::Outcome> {
    items
        .iter()
        .map(|(r, gt, meta)| {
            v.verify(&VerifyInput {
                response: r,
                ground_truth: gt,
                metadata: meta,
            })
        })
        .collect()
}

#[test]
fn a_trl_function_is_called_once_per_batch_with_lists() {
    if !have_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let calls = tmp.path().join("calls.txt");
    let path = write(
        tmp.path(),
        &format!(
            r#"
def reward(prompts, completions, ground_truth, data_source, **kwargs):
    with open({calls:?}, "a") as f:
        f.write(f"{{len(completions)}}\n")
    assert len(prompts) == len(ground_truth) == len(data_source) == len(kwargs["k"]) == len(completions)
    return [
        {{"score": float(c == g), "n": len(completions), "prompt": p, "source": s, "k": k, "only": o}}
        for p, c, g, s, k, o in zip(prompts, completions, ground_truth, data_source, kwargs["k"], kwargs.get("only", [None] * len(completions)))
    ]
"#,
            calls = calls.display().to_string()
        ),
    );
    let items: Vec<Item> = (0..10)
        .map(|i| {
            let mut extra = json!({"k": i});
            if i == 3 {
                extra["only"] = json!("three");
            }
            (
                format!("{}", i % 3),
                json!("1"),
                json!({"prompt": format!("p{i}"), "data_source": format!("s{i}"), "extra_info": extra}),
            )
        })
        .collect();
    let count = |workers: usize| {
        let _ = std::fs::remove_file(&calls);
        let v = PythonVerifier::new(PythonConfig {
            path: path.clone(),
            function: "reward".into(),
            workers,
            ..PythonConfig::default()
        })
        .unwrap();
        let out = batch(&v, &items);
        let log = std::fs::read_to_string(&calls).unwrap();
        let mut sizes: Vec<usize> = log.lines().map(|l| l.parse().unwrap()).collect();
        sizes.sort();
        (v, out, sizes)
    };
    // One worker: one call over all 10 items.
    let (v, out, sizes) = count(1);
    assert_eq!(sizes, [10]);
    assert_eq!(out.len(), 10);
    for (i, o) in out.iter().enumerate() {
        let want = if i % 3 == 1 {
            Status::Correct
        } else {
            Status::Incorrect
        };
        assert_eq!(o.status, want, "{i}: {o:?}");
        let d = &o.details;
        assert_eq!(d["n"], 10, "{d}");
        assert_eq!(d["prompt"], format!("p{i}"), "{d}");
        assert_eq!(d["source"], format!("s{i}"), "{d}");
        assert_eq!(d["k"], i, "{d}");
        // An extra_info key missing from an item is None in its list.
        assert_eq!(d["only"], if i == 3 { json!("three") } else { json!(null) });
    }
    // The same outcomes as single calls (each a call over one item).
    let _ = std::fs::remove_file(&calls);
    let one = singles(&v, &items);
    for (b, s) in out.iter().zip(&one) {
        assert_eq!((b.status, b.score), (s.status, s.score));
        assert_eq!(b.details["prompt"], s.details["prompt"]);
    }
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 10);
    // Two workers: two calls of five, at once.
    let (_, out, sizes) = count(2);
    assert_eq!(sizes, [5, 5]);
    assert!(out.iter().all(|o| o.details["n"] == 5));
    // batch_size caps the items of one call.
    let _ = std::fs::remove_file(&calls);
    let v = PythonVerifier::new(PythonConfig {
        path: path.clone(),
        function: "reward".into(),
        workers: 1,
        batch_size: 4,
        ..PythonConfig::default()
    })
    .unwrap();
    assert_eq!(batch(&v, &items).len(), 10);
    let log = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), ["4", "4", "2"]);
    assert!(v.verify_batch(&[]).is_empty());
}

#[test]
fn verl_batches_equal_single_calls() {
    if !have_python() {
        return;
    }
    let v = PythonVerifier::new(PythonConfig {
        path: example(),
        batch_size: 4,
        ..PythonConfig::default()
    })
    .unwrap();
    let items: Vec<Item> = (0..13)
        .map(|i| {
            let gt = if i == 4 {
                json!("not a number")
            } else {
                json!("7")
            };
            let response = match i % 3 {
                0 => "so 7".to_string(),
                1 => format!("so {i}"),
                _ => "no idea".to_string(),
            };
            (
                response,
                gt,
                json!({"data_source": "t", "extra_info": {"i": i}}),
            )
        })
        .collect();
    let b = batch(&v, &items);
    let s = singles(&v, &items);
    assert_eq!(b.len(), 13);
    for (i, (b, s)) in b.iter().zip(&s).enumerate() {
        assert_eq!((b.status, b.score), (s.status, s.score), "{i}");
        // (a traceback differs in the worker's own frame)
        if b.status != Status::Error {
            assert_eq!(b.details, s.details, "{i}");
        }
    }
    // An exception in one verl item is that item's error only, with its traceback.
    assert_eq!(b[4].status, Status::Error);
    assert!(
        b[4].details["traceback"]
            .as_str()
            .unwrap()
            .contains("ValueError"),
        "{}",
        b[4].details
    );
    assert_eq!(b[0].status, Status::Correct);
    assert_eq!(b[2].status, Status::Incorrect);
    // Many batches from several threads share the pool.
    let v = std::sync::Arc::new(v);
    let items = std::sync::Arc::new(items);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (v, items) = (v.clone(), items.clone());
            std::thread::spawn(move || batch(v.as_ref(), &items))
        })
        .collect();
    for h in handles {
        let got = h.join().unwrap();
        assert!(got.iter().zip(&s).all(|(a, b)| a.status == b.status));
    }
}

#[test]
fn an_exception_in_a_trl_batch_makes_every_item_an_error() {
    if !have_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        r#"
def reward(prompts, completions, **kwargs):
    if "boom" in completions:
        raise RuntimeError("boom in the batch")
    if "short" in completions:
        return [1.0]
    return [float("nan") if c == "nan" else (None if c == "none" else 1.0) for c in completions]
"#,
    );
    let v = PythonVerifier::new(PythonConfig {
        path,
        function: "reward".into(),
        workers: 1,
        ..PythonConfig::default()
    })
    .unwrap();
    let items = |words: &[&str]| -> Vec<Item> {
        words
            .iter()
            .map(|w| (w.to_string(), json!(null), json!(null)))
            .collect()
    };
    let out = batch(&v, &items(&["a", "b", "boom", "c", "d"]));
    assert_eq!(out.len(), 5);
    for o in &out {
        assert_eq!(o.status, Status::Error, "{o:?}");
        let tb = o.details["traceback"].as_str().unwrap();
        assert!(tb.contains("RuntimeError: boom in the batch"), "{tb}");
    }
    // A list of the wrong length: every item is an error saying so.
    let out = batch(&v, &items(&["a", "short", "c"]));
    for o in &out {
        assert_eq!(o.status, Status::Error, "{o:?}");
        let tb = o.details["traceback"].as_str().unwrap();
        assert!(tb.contains("returned 1 scores for 3 completions"), "{tb}");
    }
    // A bad score (NaN, None) spoils its own item only; the worker carries on.
    let out = batch(&v, &items(&["a", "nan", "none", "d"]));
    let st: Vec<Status> = out.iter().map(|o| o.status).collect();
    assert_eq!(
        st,
        [
            Status::Correct,
            Status::Error,
            Status::Error,
            Status::Correct
        ],
        "{out:?}"
    );
    assert!(out[1].details.to_string().contains("nan"), "{:?}", out[1]);
    assert!(out[2].details["traceback"]
        .as_str()
        .unwrap()
        .contains("TypeError"));
    assert_eq!(check(&v, "x", json!(null)).0, Status::Correct);
}

#[test]
fn a_hanging_batch_errors_within_its_deadline_and_the_pool_recovers() {
    if !have_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        r#"
import os, time
def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    if solution_str == "hang":
        time.sleep(60)
    if solution_str == "crash":
        os._exit(3)
    return 1.0
"#,
    );
    let v = PythonVerifier::new(PythonConfig {
        path,
        workers: 1,
        timeout_ms: 1200,
        ..PythonConfig::default()
    })
    .unwrap();
    let items = |words: &[&str]| -> Vec<Item> {
        words
            .iter()
            .map(|w| (w.to_string(), json!(null), json!(null)))
            .collect()
    };
    // 2 items: a deadline of 2 × 1200 ms.
    let t = Instant::now();
    let out = batch(&v, &items(&["hang", "b"]));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    for o in &out {
        assert_eq!(o.status, Status::Error, "{o:?}");
        let r = o.details["reason"].as_str().unwrap();
        assert!(
            r.contains("timed out after 2400 ms") && r.contains("2 items"),
            "{r}"
        );
    }
    // The hung worker was replaced.
    let out = batch(&v, &items(&["a", "b", "c"]));
    assert!(out.iter().all(|o| o.status == Status::Correct), "{out:?}");
    // A crash in a batch: every item an error, then the pool recovers again.
    let out = batch(&v, &items(&["a", "crash"]));
    assert!(out.iter().all(|o| o.status == Status::Error), "{out:?}");
    assert!(out[0].details["reason"]
        .as_str()
        .unwrap()
        .contains("exited"));
    let (s, _, d) = check(&v, "ok", json!(null));
    assert_eq!(s, Status::Correct, "{d}");
    // The deadline is capped at 10 × timeout_ms, however large the batch.
    let mut many = vec!["x"; 40];
    many[7] = "hang";
    let t = Instant::now();
    let out = batch(&v, &items(&many));
    assert!(t.elapsed() < Duration::from_secs(18), "{:?}", t.elapsed());
    assert!(out.iter().all(|o| o.status == Status::Error));
    assert!(out[0].details["reason"]
        .as_str()
        .unwrap()
        .contains("timed out after 12000 ms"));
}

fn a_batch_runs_in_one_sandbox_run_per_chunk(sandbox: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        r#"
def reward(prompts, completions, ground_truth, **kwargs):
    return [{"score": float(c == g), "n": len(completions)} for c, g in zip(completions, ground_truth)]

def boom(prompts, completions, **kwargs):
    raise KeyError("boom")

def spin(data_source, solution_str, ground_truth, extra_info=None):
    while solution_str == "spin":
        pass
    return 1.0
"#,
    );
    let Some(v) = sandboxed(path.clone(), "reward", sandbox) else {
        return;
    };
    let items: Vec<Item> = (0..10)
        .map(|i| (format!("{}", i % 2), json!("1"), json!(null)))
        .collect();
    let t = Instant::now();
    let out = batch(&v, &items);
    eprintln!("10 items in 2 {sandbox} runs: {:?}", t.elapsed());
    assert_eq!(out.len(), 10);
    for (i, o) in out.iter().enumerate() {
        // workers = 2: two runs of five.
        assert_eq!(o.details["n"], 5, "{i}: {o:?}");
        let want = if i % 2 == 1 {
            Status::Correct
        } else {
            Status::Incorrect
        };
        assert_eq!(o.status, want, "{i}: {o:?}");
    }
    // the example, unchanged, equals single calls
    let v = sandboxed(example(), "compute_score", sandbox).unwrap();
    let items: Vec<Item> = ["so 42", "so 41", "nothing", "42"]
        .iter()
        .map(|r| (r.to_string(), json!("42"), json!({"data_source": "t"})))
        .collect();
    let b = batch(&v, &items);
    let s = singles(&v, &items);
    for (b, s) in b.iter().zip(&s) {
        assert_eq!(
            (b.status, b.score, &b.details),
            (s.status, s.score, &s.details)
        );
    }
    // an exception: every item an error with the traceback
    let v = sandboxed(path.clone(), "boom", sandbox).unwrap();
    let out = batch(&v, &items);
    assert!(out.iter().all(|o| o.status == Status::Error
        && o.details["traceback"]
            .as_str()
            .unwrap()
            .contains("KeyError")));
    // a run past its deadline (2 × the per-item limit for 2 items): both items errors naming
    // the status
    let v = sandboxed(path, "spin", sandbox).unwrap();
    let items: Vec<Item> = ["spin", "ok", "ok", "ok"]
        .iter()
        .map(|r| (r.to_string(), json!(null), json!(null)))
        .collect();
    let t = Instant::now();
    let out = batch(&v, &items);
    let bound = Duration::from_millis(15 * sandbox_timeout_ms(sandbox) / 2);
    assert!(t.elapsed() < bound, "{:?}", t.elapsed());
    let st: Vec<Status> = out.iter().map(|o| o.status).collect();
    assert_eq!(
        st,
        [
            Status::Error,
            Status::Error,
            Status::Correct,
            Status::Correct
        ],
        "{out:?}"
    );
    let r = out[0].details["reason"].as_str().unwrap();
    assert!(r.contains("timeout") || r.contains("out_of_fuel"), "{r}");
}

#[test]
fn a_batch_runs_in_one_wasm_sandbox_run_per_chunk() {
    a_batch_runs_in_one_sandbox_run_per_chunk("wasm");
}

#[test]
fn a_batch_runs_in_one_docker_sandbox_run_per_chunk() {
    a_batch_runs_in_one_sandbox_run_per_chunk("docker");
}

#[test]
fn batch_size_must_be_positive() {
    let e = PythonVerifier::new(PythonConfig {
        path: example(),
        batch_size: 0,
        ..PythonConfig::default()
    })
    .err()
    .unwrap();
    assert!(e.to_string().contains("python.batch_size"), "{e}");
}

/// Timing, not a check: `cargo test -p rlvr-verifier-python --test python -- --ignored
/// --nocapture batch_speedup`. 200 items through warm workers, per-item calls vs one batch.
#[test]
#[ignore]
fn batch_speedup() {
    if !have_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let overhead = write(
        tmp.path(),
        "import time\n\
         def reward(prompts, completions, **kwargs):\n    \
             time.sleep(0.005)\n    \
             return [max(0.0, 1.0 - len(c) / 100.0) for c in completions]\n",
    );
    let items: Vec<Item> = (0..200)
        .map(|i| {
            (
                format!("{} so it is {}", "x".repeat(i % 90), i % 7),
                json!((i % 5).to_string()),
                json!({"data_source": "d", "extra_info": {"i": i}}),
            )
        })
        .collect();
    for (path, function) in [
        (example(), "length_penalty"),
        (example(), "compute_score"),
        (overhead, "reward"),
    ] {
        let v = PythonVerifier::new(PythonConfig {
            path,
            function: function.into(),
            ..PythonConfig::default()
        })
        .unwrap();
        // warm both workers
        batch(&v, &items[..4]);
        let best = |f: &dyn Fn() -> Vec<rlvr_verify::Outcome>| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    assert_eq!(f().len(), 200);
                    t.elapsed()
                })
                .min()
                .unwrap()
        };
        let one = best(&|| singles(&v, &items));
        let all = best(&|| batch(&v, &items));
        eprintln!(
            "{function}: 200 items: per-item calls {:.1} ms, batch {:.1} ms: {:.1}x",
            one.as_secs_f64() * 1e3,
            all.as_secs_f64() * 1e3,
            one.as_secs_f64() / all.as_secs_f64()
        );
    }
    // In the WASM sandbox: one interpreter start per item vs one per chunk.
    let Some(v) = sandboxed(example(), "length_penalty", "wasm") else {
        return;
    };
    let few = &items[..20];
    let t = Instant::now();
    singles(&v, few);
    let one = t.elapsed();
    let t = Instant::now();
    batch(&v, few);
    let all = t.elapsed();
    eprintln!(
        "wasm length_penalty: 20 items: per-item runs {:.0} ms, batch (2 runs) {:.0} ms: {:.1}x",
        one.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        one.as_secs_f64() / all.as_secs_f64()
    );
}
