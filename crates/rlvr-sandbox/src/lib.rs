//! Code-execution sandboxes: run untrusted programs under limits and classify what happened.
//!
//! Two backends sit behind one interface ([`Sandbox`]):
//! - [`wasm::WasmSandbox`]: CPython 3.11 compiled to wasm32-wasi, run under wasmtime with a fuel
//!   budget, an epoch deadline, a memory cap and capped output pipes. No daemon, no network, no
//!   host paths but a read-only stdlib and a fresh scratch dir per run.
//! - [`docker::DockerSandbox`]: single-use hardened containers from a warm pool (network none,
//!   read-only rootfs, sized tmpfs, memory = memory+swap, pids limit, non-root, no capabilities).
//!
//! Every run returns a [`RunResult`]; a failure of the sandbox itself is a
//! [`Status::SandboxError`] result, never a panic or a hang. The JSON shape of a result is the
//! one `rlvr sandbox run` prints (`../shared/notes/interfaces.md`).
//!
//! This crate never depends on the model crates.

pub mod docker;
pub mod output;
pub mod wasm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Exit code 0.
    Ok,
    /// The program exited with a non-zero code (an uncaught exception, `sys.exit(3)`…).
    NonzeroExit,
    /// The wall-clock limit was reached and the program was stopped.
    Timeout,
    /// The program hit the memory limit (OOM-killed, or a failed allocation under the cap).
    OutOfMemory,
    /// The program used up its CPU fuel budget (WASM only).
    OutOfFuel,
    /// The program wrote more than the output limit and was stopped.
    OutputLimit,
    /// The program was killed by the sandbox for another reason (a signal, a runtime trap such
    /// as stack exhaustion).
    Killed,
    /// The sandbox itself failed (engine unreachable, interpreter missing…): nothing is known
    /// about the program.
    SandboxError,
}

impl Status {
    /// Every status, in report order.
    pub const ALL: [Status; 8] = [
        Status::Ok,
        Status::NonzeroExit,
        Status::Timeout,
        Status::OutOfMemory,
        Status::OutOfFuel,
        Status::OutputLimit,
        Status::Killed,
        Status::SandboxError,
    ];

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NonzeroExit => "nonzero_exit",
            Status::Timeout => "timeout",
            Status::OutOfMemory => "out_of_memory",
            Status::OutOfFuel => "out_of_fuel",
            Status::OutputLimit => "output_limit",
            Status::Killed => "killed",
            Status::SandboxError => "sandbox_error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which sandbox ran a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// CPython/WASI under wasmtime.
    #[default]
    Wasm,
    /// Hardened Docker containers.
    Docker,
}

impl BackendKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Wasm => "wasm",
            BackendKind::Docker => "docker",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wasm" => Ok(BackendKind::Wasm),
            "docker" => Ok(BackendKind::Docker),
            other => Err(format!("unknown sandbox backend `{other}` (wasm, docker)")),
        }
    }
}

/// A program to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Program {
    /// The language; only `python` is supported by both backends.
    pub language: String,
    /// The source code.
    pub source: String,
    /// Bytes given to the program on standard input.
    pub stdin: String,
    /// Extra files placed in the program's working directory (name → content). Names must be
    /// plain relative paths without `..`.
    pub files: BTreeMap<String, String>,
    /// Arguments after the program (`sys.argv[1:]`).
    pub argv: Vec<String>,
}

impl Program {
    /// A Python program with no stdin, files or arguments.
    pub fn python(source: impl Into<String>) -> Self {
        Program {
            language: "python".into(),
            source: source.into(),
            ..Default::default()
        }
    }

    /// The same program with `stdin`.
    pub fn with_stdin(mut self, stdin: impl Into<String>) -> Self {
        self.stdin = stdin.into();
        self
    }

    /// Checks the language and file names; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.language.as_str(), "python" | "python3" | "") {
            return Err(format!(
                "language `{}` is not supported (python)",
                self.language
            ));
        }
        for name in self.files.keys() {
            let p = std::path::Path::new(name);
            let plain = !name.is_empty()
                && p.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain || name == "main.py" {
                return Err(format!(
                    "file name `{name}` must be a plain relative path (no `..`, no leading `/`, not main.py)"
                ));
            }
        }
        Ok(())
    }
}

/// Resource limits of one run. Each backend enforces what it can: fuel only exists in WASM,
/// the process count only in Docker (WASI has no processes or threads).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock limit in milliseconds (default 10 000).
    pub timeout_ms: u64,
    /// Memory limit in MiB (default 256).
    pub memory_mb: u64,
    /// CPU fuel budget for WASM (default 20e9, several CPU-seconds); `null` = unlimited.
    pub fuel: Option<u64>,
    /// Bytes kept of stdout and of stderr each; writing more stops the program with
    /// `output_limit` (default 1 MiB).
    pub output_bytes: usize,
    /// Maximum number of processes/threads in a container (default 64).
    pub pids: u32,
    /// Size of the writable scratch space `/tmp` in MiB (default 64): Docker's tmpfs size;
    /// in WASM, a watchdog stops the program (`output_limit`) when its scratch dir grows past it.
    pub scratch_mb: u64,
    /// Files and directories allowed in the scratch space (default 10 000; tmpfs `nr_inodes`
    /// in Docker).
    pub scratch_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 10_000,
            memory_mb: 256,
            fuel: Some(20_000_000_000),
            output_bytes: 1 << 20,
            pids: 64,
            scratch_mb: 64,
            scratch_files: 10_000,
        }
    }
}

impl Limits {
    /// The wall-clock limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// What happened to one program. Serialised as in `../shared/notes/interfaces.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// How the run ended.
    pub status: Status,
    /// The exit code when the program exited by itself (or was killed with a known code).
    pub exit_code: Option<i32>,
    /// Standard output (lossy UTF-8), at most `Limits::output_bytes`.
    pub stdout: String,
    /// Standard error (lossy UTF-8), at most `Limits::output_bytes`; for a `sandbox_error` the
    /// sandbox's own explanation.
    pub stderr: String,
    /// Whether stdout was cut.
    pub stdout_truncated: bool,
    /// Whether stderr was cut.
    pub stderr_truncated: bool,
    /// Wall time of the run in milliseconds (from the start of the program to its end).
    pub wall_ms: f64,
    /// WASM fuel consumed, when known (runs that ended normally or ran out of fuel).
    pub fuel_used: Option<u64>,
    /// The backend that ran it.
    pub backend: BackendKind,
}

impl RunResult {
    /// A `sandbox_error` result explaining `why`.
    pub fn sandbox_error(backend: BackendKind, why: impl Into<String>) -> Self {
        RunResult {
            status: Status::SandboxError,
            exit_code: None,
            stdout: String::new(),
            stderr: why.into(),
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 0.0,
            fuel_used: None,
            backend,
        }
    }
}

/// Errors creating a sandbox (running a program never errors: see [`RunResult`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The WASM interpreter is not built.
    #[error("{0}")]
    InterpreterMissing(String),
    /// The Docker engine could not be reached or the image is missing.
    #[error("{0}")]
    Engine(String),
    /// Anything else while setting up (reading files, compiling the module…).
    #[error("{0}")]
    Setup(String),
}

/// A sandbox backend. Implementations bound their own concurrency and never panic on a
/// program's behaviour.
#[async_trait::async_trait]
pub trait Sandbox: Send + Sync {
    /// The backend.
    fn kind(&self) -> BackendKind;
    /// Runs one program to completion under `limits`.
    async fn run(&self, program: Program, limits: Limits) -> RunResult;
    /// Releases what the backend holds outside this process (Docker's warm containers).
    /// Later runs return `sandbox_error`. The default does nothing.
    async fn shutdown(&self) {}
}

/// Where the sandbox caches live: `$RLVR_SANDBOX_CACHE`, else `$HOME/.cache/rlvr-sandbox`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RLVR_SANDBOX_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/rlvr-sandbox")
}

/// A runtime-independent way to call a sandbox from synchronous code (verifiers are sync):
/// the sandbox's futures run on a private tokio runtime and the caller blocks on a channel,
/// which works from any thread, inside or outside another tokio runtime's blocking pool.
pub struct BlockingRunner {
    runtime: Option<tokio::runtime::Runtime>,
    sandbox: Arc<dyn Sandbox>,
}

impl BlockingRunner {
    /// Wraps `sandbox` with a private runtime of `threads` worker threads.
    pub fn new(sandbox: Arc<dyn Sandbox>, threads: usize) -> Result<Self, SandboxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("rlvr-sandbox")
            .enable_all()
            .build()
            .map_err(|e| SandboxError::Setup(format!("starting the sandbox runtime: {e}")))?;
        Ok(BlockingRunner {
            runtime: Some(runtime),
            sandbox,
        })
    }

    /// Opens a backend with its default settings (`WasmConfig::default()`,
    /// `DockerConfig::default()`, which read `RLVR_SANDBOX_CACHE` / `RLVR_SANDBOX_IMAGE`).
    pub fn open(kind: BackendKind) -> Result<Self, SandboxError> {
        Self::open_with(
            kind,
            &wasm::WasmConfig::default(),
            &docker::DockerConfig::default(),
        )
    }

    /// Opens a backend: loads the WASM interpreter, or connects to the Docker engine (on the
    /// runner's own runtime, from a helper thread, so this works from any context).
    pub fn open_with(
        kind: BackendKind,
        wasm_cfg: &wasm::WasmConfig,
        docker_cfg: &docker::DockerConfig,
    ) -> Result<Self, SandboxError> {
        match kind {
            BackendKind::Wasm => {
                let sb = wasm::WasmSandbox::new(wasm_cfg)?;
                Self::new(Arc::new(sb), wasm_cfg.concurrency.max(1))
            }
            BackendKind::Docker => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("rlvr-sandbox")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        SandboxError::Setup(format!("starting the sandbox runtime: {e}"))
                    })?;
                let cfg = docker_cfg.clone();
                let handle = runtime.handle().clone();
                let connected = std::thread::scope(|s| {
                    s.spawn(move || handle.block_on(docker::DockerSandbox::connect(cfg)))
                        .join()
                });
                let sb = match connected {
                    Ok(r) => r?,
                    Err(_) => {
                        runtime.shutdown_background();
                        return Err(SandboxError::Engine(
                            "connecting to the Docker engine panicked".into(),
                        ));
                    }
                };
                Ok(BlockingRunner {
                    runtime: Some(runtime),
                    sandbox: Arc::new(sb),
                })
            }
        }
    }

    /// The wrapped sandbox.
    pub fn sandbox(&self) -> &Arc<dyn Sandbox> {
        &self.sandbox
    }

    /// Runs programs concurrently (bounded by the backend's pool) and returns their results in
    /// order. Blocks the calling thread.
    pub fn run_all(&self, jobs: Vec<(Program, Limits)>) -> Vec<RunResult> {
        let kind = self.sandbox.kind();
        let n = jobs.len();
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, (p, l)) in jobs.into_iter().enumerate() {
            let sb = self.sandbox.clone();
            let tx = tx.clone();
            self.rt().spawn(async move {
                let r = sb.run(p, l).await;
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        let mut out: Vec<Option<RunResult>> = vec![None; n];
        for (i, r) in rx {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    RunResult::sandbox_error(kind, "the sandbox task ended without a result")
                })
            })
            .collect()
    }

    /// Runs one program. Blocks the calling thread.
    pub fn run(&self, program: Program, limits: Limits) -> RunResult {
        self.run_all(vec![(program, limits)])
            .pop()
            .unwrap_or_else(|| RunResult::sandbox_error(self.sandbox.kind(), "no result"))
    }

    /// The private runtime's handle (to spawn sandbox work on it).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt().handle()
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime present until drop")
    }
}

impl Drop for BlockingRunner {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's async context panics; shutting it down
        // in the background never does.
        if let Some(rt) = self.runtime.take() {
            // Release the backend's external resources first (bounded: a stuck engine must
            // not hang the drop), from a helper thread so that this works in any context.
            let sb = self.sandbox.clone();
            let handle = rt.handle().clone();
            let _ = std::thread::spawn(move || {
                handle.block_on(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), sb.shutdown()).await;
                })
            })
            .join();
            rt.shutdown_background();
        }
    }
}
