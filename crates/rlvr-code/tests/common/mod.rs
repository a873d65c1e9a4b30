//! Test-only sandboxes: `python3` as a native subprocess (NOT a sandbox: trusted test code
//! only), and one that always fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rlvr_code::{CodeConfig, CodeVerifier};
use rlvr_sandbox::{BackendKind, BlockingRunner, Limits, Program, RunResult, Sandbox, Status};
use rlvr_verify::{Outcome, VerifyInput};
use serde_json::Value;

/// Runs `python3 main.py` in a temp dir: stdin piped, outputs capped, killed on timeout.
pub struct NativePython;

#[async_trait::async_trait]
impl Sandbox for NativePython {
    fn kind(&self) -> BackendKind {
        BackendKind::Wasm
    }

    async fn run(&self, program: Program, limits: Limits) -> RunResult {
        tokio::task::spawn_blocking(move || run_native(&program, &limits))
            .await
            .unwrap_or_else(|e| RunResult::sandbox_error(BackendKind::Wasm, e.to_string()))
    }
}

fn reader(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
    over: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut truncated = false;
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = cap.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
            if n > room {
                truncated = true;
                over.store(true, Ordering::Relaxed);
            }
        }
        (kept, truncated)
    })
}

fn run_native(p: &Program, l: &Limits) -> RunResult {
    let err = |why: String| RunResult::sandbox_error(BackendKind::Wasm, why);
    if let Err(e) = p.validate() {
        return err(e);
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return err(e.to_string()),
    };
    let _ = std::fs::write(dir.path().join("main.py"), &p.source);
    for (name, content) in &p.files {
        let _ = std::fs::write(dir.path().join(name), content);
    }
    let start = Instant::now();
    let mut child = match Command::new("python3")
        .arg("main.py")
        .args(&p.argv)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return err(format!("python3: {e}")),
    };
    let mut stdin = child.stdin.take().expect("piped");
    let input = p.stdin.clone();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let over = Arc::new(AtomicBool::new(false));
    let out = reader(
        child.stdout.take().expect("piped"),
        l.output_bytes,
        over.clone(),
    );
    let errh = reader(
        child.stderr.take().expect("piped"),
        l.output_bytes,
        over.clone(),
    );
    let mut status = None;
    let exit = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if start.elapsed() >= l.timeout() {
            status = Some(Status::Timeout);
        } else if over.load(Ordering::Relaxed) {
            status = Some(Status::OutputLimit);
        }
        if status.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stdout_truncated) = out.join().unwrap_or_default();
    let (stderr, stderr_truncated) = errh.join().unwrap_or_default();
    let exit_code = exit.and_then(|s| s.code());
    let status = status.unwrap_or(match exit_code {
        Some(0) => Status::Ok,
        Some(_) => Status::NonzeroExit,
        None => Status::Killed,
    });
    RunResult {
        status,
        exit_code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_truncated,
        stderr_truncated,
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
        fuel_used: None,
        backend: BackendKind::Wasm,
    }
}

/// Always answers `sandbox_error`.
pub struct Broken;

#[async_trait::async_trait]
impl Sandbox for Broken {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    async fn run(&self, _program: Program, _limits: Limits) -> RunResult {
        RunResult::sandbox_error(BackendKind::Docker, "the engine is unreachable")
    }
}

pub fn native_runner() -> Arc<BlockingRunner> {
    Arc::new(BlockingRunner::new(Arc::new(NativePython), 2).expect("runtime"))
}

pub fn verifier(cfg: CodeConfig) -> CodeVerifier {
    CodeVerifier::new(cfg, native_runner()).expect("valid config")
}

pub fn check(v: &CodeVerifier, response: &str, gt: &Value) -> Outcome {
    v.verify_batch(&[VerifyInput {
        response,
        ground_truth: gt,
        metadata: &Value::Null,
    }])
    .pop()
    .expect("one outcome")
}

/// Runs nothing and says it went fine (an interpreter that prints nothing).
pub struct Silent;

#[async_trait::async_trait]
impl Sandbox for Silent {
    fn kind(&self) -> BackendKind {
        BackendKind::Wasm
    }

    async fn run(&self, _program: Program, _limits: Limits) -> RunResult {
        RunResult {
            status: Status::Ok,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: "python: cannot find the standard library".into(),
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 1.0,
            fuel_used: None,
            backend: BackendKind::Wasm,
        }
    }
}
