//! `rlvr sandbox run` and `rlvr verify --verifier code` through the binary, in both backends:
//! the result JSON has exactly the keys of `../shared/notes/interfaces.md`, limits and stdin/
//! argv pass through, a sandbox failure exits 2, and code lines are judged in order. Under
//! CI=true a missing backend fails; elsewhere the backend's checks are skipped.

use std::io::Write;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn rlvr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlvr"))
        .env("RLVR_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

/// Whether `backend` works here (fails under CI when it does not).
fn available(backend: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ok.py");
    std::fs::write(&p, "print('ok')").unwrap();
    let out = rlvr(&["sandbox", "run", "--backend", backend, p.to_str().unwrap()]);
    if out.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&out.stderr).into_owned();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "the {backend} sandbox is unavailable (CI=true: required): {why}"
    );
    eprintln!("SKIPPED: the {backend} sandbox is unavailable: {why}");
    false
}

fn result(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn sandbox_run(backend: &str) {
    if !available(backend) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("p.py");
    std::fs::write(
        &prog,
        "import sys\nprint('hi', sys.argv[1:], input(), open('data.txt').read())\n",
    )
    .unwrap();
    let stdin = dir.path().join("in.txt");
    std::fs::write(&stdin, "world\n").unwrap();
    let data = dir.path().join("d.txt");
    std::fs::write(&data, "DATA").unwrap();
    let file_arg = format!("data.txt={}", data.display());
    let out = rlvr(&[
        "sandbox",
        "run",
        "--backend",
        backend,
        prog.to_str().unwrap(),
        "--stdin",
        stdin.to_str().unwrap(),
        "--file",
        &file_arg,
        "--",
        "a",
        "b",
    ]);
    assert!(out.status.success());
    let r = result(&out);
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "status",
            "exit_code",
            "stdout",
            "stderr",
            "stdout_truncated",
            "stderr_truncated",
            "wall_ms",
            "fuel_used",
            "backend"
        ]
    );
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stdout"], "hi ['a', 'b'] world DATA\n");
    assert_eq!(r["backend"], backend);
    assert!(r["wall_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["fuel_used"].is_u64(), backend == "wasm", "{r}");

    // limits from the command line
    std::fs::write(&prog, "import time\ntime.sleep(30)\n").unwrap();
    let t = std::time::Instant::now();
    let out = rlvr(&[
        "sandbox",
        "run",
        "--backend",
        backend,
        prog.to_str().unwrap(),
        "--timeout-ms",
        "700",
    ]);
    assert_eq!(result(&out)["status"], "timeout");
    assert!(t.elapsed().as_secs_f64() < 15.0, "{:?}", t.elapsed());
    std::fs::write(&prog, "x = bytearray(400 << 20)\n").unwrap();
    let out = rlvr(&[
        "sandbox",
        "run",
        "--backend",
        backend,
        prog.to_str().unwrap(),
        "--memory-mb",
        "128",
    ]);
    assert_eq!(result(&out)["status"], "out_of_memory");
    std::fs::write(&prog, "print('x' * 10000)\n").unwrap();
    let out = rlvr(&[
        "sandbox",
        "run",
        "--backend",
        backend,
        prog.to_str().unwrap(),
        "--output-bytes",
        "100",
    ]);
    let r = result(&out);
    assert_eq!(r["status"], "output_limit");
    assert_eq!(r["stdout"].as_str().unwrap().len(), 100);
    assert_eq!(r["stdout_truncated"], true);
}

#[test]
fn sandbox_run_wasm() {
    sandbox_run("wasm");
}

#[test]
fn sandbox_run_docker() {
    sandbox_run("docker");
}

#[test]
fn sandbox_run_errors_are_clear() {
    let out = rlvr(&["sandbox", "run", "/nonexistent/prog.py"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("/nonexistent/prog.py"), "{e}");
    let out = rlvr(&["sandbox", "run", "--backend", "vm", "x.py"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("unknown sandbox backend `vm`"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("p.py");
    std::fs::write(&prog, "print(1)").unwrap();
    let out = rlvr(&[
        "sandbox",
        "run",
        prog.to_str().unwrap(),
        "--file",
        "noequals",
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("NAME=PATH"), "{e}");
    // a missing interpreter directory: exit 1 and the build hint, no panic
    let out = Command::new(env!("CARGO_BIN_EXE_rlvr"))
        .env("RLVR_SANDBOX_CACHE", dir.path())
        .args(["sandbox", "run", prog.to_str().unwrap()])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("sandbox/wasm/build-cpython.sh") && !e.contains("panicked"),
        "{e}"
    );
}

fn verify_code(backend: &str) {
    if !available(backend) {
        return;
    }
    let he = json!({"format": "humaneval", "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"});
    let io = json!({"format": "io", "inputs": ["3\n", "5\n"], "outputs": ["6\n", "10\n"]});
    let lines = [
        json!({"response": "    return a + b\n", "ground_truth": he}),
        json!({"response": "    return a - b\n", "ground_truth": he}),
        json!({"response": "```python\nprint(int(input()) * 2)\n```", "ground_truth": io}),
        json!({"response": "I cannot write code.", "ground_truth": {"format": "asserts", "tests": []}}),
        json!({"response": "```python\nwhile True: pass\n```", "ground_truth": io}),
    ];
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    writeln!(f, "{{not json").unwrap();
    // Short enough that the infinite loop ends soon; a container start under a loaded CI
    // machine can take over a second, so Docker gets more.
    let limit_ms = if backend == "docker" { 8000 } else { 3000 };
    let config =
        json!({"backend": backend, "timeout_ms": limit_ms, "per_test_timeout_ms": limit_ms})
            .to_string();
    let out = rlvr(&[
        "verify",
        "--verifier",
        "code",
        "--config",
        &config,
        "--input",
        f.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = got.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "correct",
            "incorrect",
            "correct",
            "error",
            "incorrect",
            "error"
        ],
        "{got:#?}"
    );
    assert_eq!(got[0]["details"]["backend"], backend);
    assert!(got[1]["details"]["failures"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("AssertionError"));
    assert!(got[5]["details"].to_string().contains('6'), "{}", got[5]);
}

#[test]
fn verify_code_wasm() {
    verify_code("wasm");
}

#[test]
fn verify_code_docker() {
    verify_code("docker");
}
