//! Shared test helpers: getting a sandbox (fail under CI, skip elsewhere) and running the
//! hostile suite with host checks.
#![allow(dead_code)]

pub mod hostile;

use std::sync::Arc;

use rlvr_sandbox::wasm::{WasmConfig, WasmSandbox};
use rlvr_sandbox::{BackendKind, Program, RunResult, Sandbox, Status};

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Under CI a missing sandbox fails the test; elsewhere the test is skipped with `why`.
pub fn missing(why: &str) {
    if in_ci() {
        panic!("{why} (CI=true: the sandbox tests must not be skipped)");
    }
    eprintln!("SKIPPED: {why}");
}

/// The WASM sandbox, or `None` (skip) when the interpreter is not built.
pub fn wasm() -> Option<Arc<WasmSandbox>> {
    match WasmSandbox::new(&WasmConfig::default()) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            missing(&e.to_string());
            None
        }
    }
}

/// One row of the hostile-suite table.
pub struct Row {
    pub name: &'static str,
    pub expected: Status,
    pub result: RunResult,
}

/// Runs the hostile suite in `sb` (two at a time) and checks every program's classification
/// and that nothing leaked; returns the table (also printed).
pub async fn run_hostile(sb: Arc<dyn Sandbox>) -> Vec<Row> {
    let kind = sb.kind();
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("canary.txt");
    let canary_text = format!("rlvr-canary-{}", std::process::id());
    std::fs::write(&canary, &canary_text).unwrap();
    let secret = format!("rlvr-secret-{}", std::process::id() * 7919);
    std::env::set_var("RLVR_TEST_SECRET", &secret);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host = hostile::Host {
        canary: canary.display().to_string(),
        canary_text: canary_text.clone(),
        secret: secret.clone(),
        repo: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap()
            .display()
            .to_string(),
        cargo_home: std::env::var("CARGO_HOME")
            .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default())),
        port: listener.local_addr().unwrap().port(),
    };
    let cases = hostile::cases(&host);
    assert!(cases.len() >= 30, "the suite has {} programs", cases.len());
    let sem = Arc::new(tokio::sync::Semaphore::new(2));
    let mut handles = Vec::new();
    for c in cases {
        let sb = sb.clone();
        let sem = sem.clone();
        handles.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let expected = match kind {
                BackendKind::Wasm => c.wasm,
                BackendKind::Docker => c.docker,
            };
            let program = Program::python(c.source).with_stdin(c.stdin);
            let result = sb.run(program, c.limits).await;
            Row {
                name: c.name,
                expected,
                result,
            }
        }));
    }
    let mut rows = Vec::new();
    for h in handles {
        rows.push(h.await.unwrap());
    }
    let mut bad = Vec::new();
    println!(
        "| program | expected | {} status | exit | wall ms |",
        kind.as_str()
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        let leaked = r.result.stdout.contains("ESCAPED")
            || r.result.stdout.contains(&canary_text)
            || r.result.stderr.contains(&canary_text)
            || r.result.stdout.contains(&secret)
            || r.result.stderr.contains(&secret);
        println!(
            "| {} | {} | {} | {:?} | {:.0} |",
            r.name, r.expected, r.result.status, r.result.exit_code, r.result.wall_ms
        );
        if r.result.status != r.expected || leaked {
            bad.push(format!(
                "{}: expected {}, got {} (leaked: {leaked}); stdout {:?}; stderr tail {:?}",
                r.name,
                r.expected,
                r.result.status,
                tail(&r.result.stdout, 300),
                tail(&r.result.stderr, 600)
            ));
        }
    }
    // nobody connected to the host's loopback listener
    assert!(
        listener.accept().is_err(),
        "a program connected to the host's loopback port"
    );
    assert_eq!(
        std::fs::read_to_string(&canary).unwrap(),
        canary_text,
        "the canary was modified"
    );
    assert!(
        bad.is_empty(),
        "hostile suite ({kind:?}):\n{}",
        bad.join("\n")
    );
    rows
}

/// The last `n` bytes of `s` (on a char boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// MemAvailable from /proc/meminfo in MiB.
pub fn mem_available_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
