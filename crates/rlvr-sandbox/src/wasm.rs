//! The WASM backend: CPython 3.11 for wasm32-wasi under wasmtime.
//!
//! The interpreter is built by `sandbox/wasm/build-cpython.sh` into `$CACHE/wasm/`
//! (`python.wasm`, `lib/python311.zip`). The module is compiled once and cached next to it as a
//! `.cwasm` keyed by the engine's compatibility hash and the module's sha256; every run then
//! instantiates it from one [`InstancePre`] into a fresh [`Store`].
//!
//! What a guest sees: the stdlib read-only at `/usr/local/lib`, its program read-only at
//! `/code/main.py`, a fresh empty scratch dir read-write at `/tmp` (its working directory, with
//! the program's extra files), `PYTHONHOME=/usr/local` and `PYTHONHASHSEED=0` (reproducible fuel) and nothing else in the
//! environment, no
//! sockets, no processes, no threads.
//!
//! Limits: a fuel budget (CPU work, reproducible), an epoch deadline (wall-clock backstop for
//! computation, ticked every 10 ms by one thread), a tokio timeout (for time spent blocked in the
//! host, e.g. `time.sleep`), a memory cap through a [`ResourceLimiter`] that records a refused
//! growth, and capped stdout/stderr that stop the guest on overflow.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::{Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::output::{CappedPipe, OutputLimitExceeded};
use crate::{BackendKind, Limits, Program, RunResult, Sandbox, SandboxError, Status};

/// Epoch tick period.
const TICK: Duration = Duration::from_millis(10);

/// Settings of the WASM backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WasmConfig {
    /// The interpreter directory (`python.wasm`, `lib/`); default `$RLVR_SANDBOX_CACHE/wasm`
    /// (`~/.cache/rlvr-sandbox/wasm`).
    pub dir: Option<PathBuf>,
    /// Programs run at once (default: the number of CPUs).
    pub concurrency: usize,
    /// Maximum WebAssembly stack in KiB (default 4096); deep recursion beyond it is stopped
    /// as `killed` ("call stack exhausted").
    pub max_wasm_stack_kb: usize,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            dir: None,
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_wasm_stack_kb: 4096,
        }
    }
}

impl WasmConfig {
    /// The interpreter directory in use.
    pub fn interpreter_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| crate::cache_dir().join("wasm"))
    }
}

/// The message given when the interpreter is missing.
pub fn missing_interpreter_message(dir: &Path) -> String {
    format!(
        "CPython for WASI is not built (looked for {0}/python.wasm and {0}/lib/python311.zip). \
         Build it once with `sandbox/wasm/build-cpython.sh` (2–7 minutes; installs clang-14, \
         lld-14 and wasi-libc from apt and compiles Debian's python3.11 source), or point \
         RLVR_SANDBOX_CACHE at a directory holding wasm/python.wasm",
        dir.display()
    )
}

/// Per-run store data.
struct RunState {
    wasi: WasiP1Ctx,
    limiter: MemLimiter,
}

/// Caps linear memory and remembers whether the cap refused a growth.
struct MemLimiter {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            Ok(false)
        } else {
            Ok(true)
        }
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
    fn instances(&self) -> usize {
        1
    }
    fn memories(&self) -> usize {
        1
    }
}

/// One WASI (preview 1) command module, compiled once and instantiated per run into a fresh
/// store, under fuel, an epoch deadline, a timeout, a memory cap and capped output. The
/// CPython sandbox is one; verifier plugins (`wasm:PATH.wasm`) are others. Drop stops its
/// epoch ticker.
pub struct WasiModule {
    engine: Engine,
    pre: InstancePre<RunState>,
    permits: Arc<Semaphore>,
    stop_ticker: Arc<AtomicBool>,
    load_ms: f64,
}

/// What one run of a [`WasiModule`] gets: arguments, environment, stdin and directories.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `argv`, program name first.
    pub args: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Standard input.
    pub stdin: Vec<u8>,
    /// Host directories made visible: (host path, guest path, writable).
    pub preopens: Vec<(PathBuf, String, bool)>,
    /// A host directory whose size is watched against `Limits::scratch_mb`/`scratch_files`.
    pub scratch: Option<PathBuf>,
}

impl WasiModule {
    /// Compiles `wasm_path` (or loads its cached `.cwasm` next to it, or in `cache_dir`)
    /// and prepares it for instantiation. `concurrency` bounds simultaneous runs.
    pub fn load(
        wasm_path: &Path,
        cache_dir: Option<&Path>,
        max_wasm_stack_kb: usize,
        concurrency: usize,
    ) -> Result<Self, SandboxError> {
        let t0 = Instant::now();
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .async_stack_size((max_wasm_stack_kb + 1024) << 10)
            .max_wasm_stack(max_wasm_stack_kb << 10);
        let engine = Engine::new(&config)
            .map_err(|e| SandboxError::Setup(format!("creating the wasmtime engine: {e}")))?;
        let module = load_module(&engine, wasm_path, cache_dir)?;
        let mut linker: Linker<RunState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut RunState| &mut s.wasi)
            .map_err(|e| SandboxError::Setup(format!("linking WASI: {e}")))?;
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            SandboxError::Setup(format!(
                "{}: cannot be instantiated as a WASI preview-1 command: {e}",
                wasm_path.display()
            ))
        })?;
        if module.get_export("_start").is_none() {
            return Err(SandboxError::Setup(format!(
                "{}: exports no `_start` (build a WASI command, e.g. `clang --target=wasm32-wasi`)",
                wasm_path.display()
            )));
        }
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("rlvr-wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| SandboxError::Setup(format!("starting the epoch ticker: {e}")))?;
        }
        Ok(WasiModule {
            engine,
            pre,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            stop_ticker,
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Milliseconds spent loading (and, the first time, compiling) the module.
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Runs the module once (waiting for a slot of the pool); a failure of the runtime itself
    /// is a `sandbox_error` result.
    pub async fn run(&self, inv: Invocation, limits: Limits) -> RunResult {
        let _permit = match self.permits.acquire().await {
            Ok(p) => p,
            Err(_) => return RunResult::sandbox_error(BackendKind::Wasm, "sandbox closed"),
        };
        match self.run_once(inv, limits).await {
            Ok(r) => r,
            Err(why) => RunResult::sandbox_error(BackendKind::Wasm, why),
        }
    }

    async fn run_once(&self, inv: Invocation, limits: Limits) -> Result<RunResult, String> {
        let stdout = CappedPipe::new(limits.output_bytes);
        let stderr = CappedPipe::new(limits.output_bytes);
        let mut b = WasiCtxBuilder::new();
        b.stdin(MemoryInputPipe::new(inv.stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&inv.args)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (k, v) in &inv.env {
            b.env(k, v);
        }
        for (host, guest, writable) in &inv.preopens {
            let perms = if *writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(host, guest, perms)
                .map_err(|e| format!("preopening {}: {e}", host.display()))?;
        }
        let wasi = b.build_p1();
        let mut store = Store::new(
            &self.engine,
            RunState {
                wasi,
                limiter: MemLimiter {
                    max_bytes: (limits.memory_mb as usize).saturating_mul(1 << 20),
                    hit: false,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let fuel = limits.fuel.unwrap_or(u64::MAX);
        store
            .set_fuel(fuel)
            .map_err(|e| format!("setting fuel: {e}"))?;
        let ticks = limits.timeout_ms.div_ceil(TICK.as_millis() as u64) + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let start = Instant::now();
        let outcome = {
            let pre = &self.pre;
            let store = &mut store;
            let fut = async move {
                let instance = pre.instantiate_async(&mut *store).await?;
                let main = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                main.call_async(&mut *store, ()).await
            };
            // The epoch deadline stops computation; the timeout stops time spent blocked in
            // the host (`time.sleep`); the watchdog bounds the scratch dir, which lives on the
            // host's disk (file writes are host calls, so the guest yields at each of them).
            let limit_bytes = limits.scratch_mb.saturating_mul(1 << 20);
            let watchdog = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    let Some(dir) = &inv.scratch else {
                        std::future::pending::<()>().await;
                        continue;
                    };
                    let (bytes, files) = dir_usage(dir);
                    if bytes > limit_bytes || files > limits.scratch_files {
                        return (bytes, files);
                    }
                }
            };
            tokio::select! {
                r = tokio::time::timeout(limits.timeout() + TICK * 5, fut) => r.map(Ok),
                (bytes, files) = watchdog => Ok(Err((bytes, files))),
            }
        };
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let mem_hit = store.data().limiter.hit;

        let mut exit_code = None;
        let mut note = None;
        let mut status = match outcome {
            Err(_elapsed) => Status::Timeout,
            Ok(Err((bytes, files))) => {
                note = Some(format!(
                    "[sandbox] scratch space limit exceeded: {bytes} bytes in {files} files \
                     (limits: {} MiB, {} files)",
                    limits.scratch_mb, limits.scratch_files
                ));
                Status::OutputLimit
            }
            Ok(Ok(Ok(()))) => {
                exit_code = Some(0);
                Status::Ok
            }
            Ok(Ok(Err(e))) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    exit_code = Some(exit.0);
                    if exit.0 == 0 {
                        Status::Ok
                    } else {
                        Status::NonzeroExit
                    }
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    match trap {
                        Trap::OutOfFuel => Status::OutOfFuel,
                        Trap::Interrupt => Status::Timeout,
                        other => {
                            note = Some(format!("[sandbox] wasm trap: {other}"));
                            Status::Killed
                        }
                    }
                } else if e.downcast_ref::<OutputLimitExceeded>().is_some()
                    || format!("{e:?}").contains("output limit exceeded")
                {
                    Status::OutputLimit
                } else {
                    return Err(format!("running the interpreter: {e:?}"));
                }
            }
        };
        if stdout.overflowed() || stderr.overflowed() {
            status = Status::OutputLimit;
        } else if mem_hit && matches!(status, Status::NonzeroExit | Status::Killed) {
            status = Status::OutOfMemory;
        }
        let fuel_used = match status {
            Status::Ok
            | Status::NonzeroExit
            | Status::OutOfFuel
            | Status::OutOfMemory
            | Status::OutputLimit
            | Status::Killed => store.get_fuel().ok().map(|left| fuel.saturating_sub(left)),
            _ => None,
        };
        drop(store);
        let mut stderr_text = stderr.text();
        if let Some(n) = note {
            if !stderr_text.is_empty() && !stderr_text.ends_with('\n') {
                stderr_text.push('\n');
            }
            stderr_text.push_str(&n);
        }
        Ok(RunResult {
            status,
            exit_code,
            stdout: stdout.text(),
            stderr: stderr_text,
            stdout_truncated: stdout.overflowed(),
            stderr_truncated: stderr.overflowed(),
            wall_ms,
            fuel_used,
            backend: BackendKind::Wasm,
        })
    }
}

impl Drop for WasiModule {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// CPython/WASI under wasmtime. Cheap to share (`Arc`).
pub struct WasmSandbox {
    module: WasiModule,
    lib_dir: PathBuf,
}

impl WasmSandbox {
    /// Loads (compiling and caching on first use) the interpreter from `cfg`'s directory.
    pub fn new(cfg: &WasmConfig) -> Result<Self, SandboxError> {
        let dir = cfg.interpreter_dir();
        let wasm_path = dir.join("python.wasm");
        let lib_dir = dir.join("lib");
        if !wasm_path.is_file() || !lib_dir.join("python311.zip").is_file() {
            return Err(SandboxError::InterpreterMissing(
                missing_interpreter_message(&dir),
            ));
        }
        let module = WasiModule::load(&wasm_path, None, cfg.max_wasm_stack_kb, cfg.concurrency)?;
        Ok(WasmSandbox { module, lib_dir })
    }

    /// Milliseconds spent loading (and, the first time, compiling) the interpreter.
    pub fn load_ms(&self) -> f64 {
        self.module.load_ms()
    }

    async fn run_inner(&self, program: Program, limits: Limits) -> Result<RunResult, String> {
        program.validate()?;
        // A fresh directory per run: `code/` (read-only, the program) and `tmp/` (scratch).
        let root = tempfile::Builder::new()
            .prefix("rlvr-wasm-")
            .tempdir()
            .map_err(|e| format!("creating the scratch dir: {e}"))?;
        let code = root.path().join("code");
        let tmp = root.path().join("tmp");
        std::fs::create_dir_all(&code)
            .and_then(|_| std::fs::create_dir_all(&tmp))
            .and_then(|_| std::fs::write(code.join("main.py"), &program.source))
            .map_err(|e| format!("writing the program: {e}"))?;
        for (name, content) in &program.files {
            let p = tmp.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("writing {name}: {e}"))?;
            }
            std::fs::write(&p, content).map_err(|e| format!("writing {name}: {e}"))?;
        }
        let mut args: Vec<String> = ["python", "-B", "-s", "-u", "/code/main.py"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(program.argv.iter().cloned());
        let inv = Invocation {
            args,
            env: vec![
                ("PYTHONHOME".into(), "/usr/local".into()),
                // string hashing is then reproducible, and so is the fuel a program uses
                ("PYTHONHASHSEED".into(), "0".into()),
            ],
            stdin: program.stdin.into_bytes(),
            preopens: vec![
                (self.lib_dir.clone(), "/usr/local/lib".into(), false),
                (code, "/code".into(), false),
                (tmp.clone(), "/tmp".into(), true),
                // wasi-libc resolves relative paths against a preopen named "." (its cwd is
                // "/" otherwise): the scratch dir is the working directory
                (tmp.clone(), ".".into(), true),
            ],
            scratch: Some(tmp),
        };
        let r = self.module.run(inv, limits).await;
        drop(root);
        Ok(r)
    }
}

#[async_trait::async_trait]
impl Sandbox for WasmSandbox {
    fn kind(&self) -> BackendKind {
        BackendKind::Wasm
    }

    async fn run(&self, program: Program, limits: Limits) -> RunResult {
        match self.run_inner(program, limits).await {
            Ok(r) => r,
            Err(why) => RunResult::sandbox_error(BackendKind::Wasm, why),
        }
    }
}

/// Bytes and entries under `dir` (not following symlinks; stops counting past 1M entries).
fn dir_usage(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            files += 1;
            if files > 1 << 20 {
                return (bytes, files);
            }
            if let Ok(md) = e.metadata() {
                if md.is_dir() {
                    stack.push(e.path());
                } else {
                    bytes += md.len();
                }
            }
        }
    }
    (bytes, files)
}

/// Compiles `wasm_path` or loads its cached `.cwasm` (keyed by the engine's compatibility
/// hash and the module's sha256; written to a temp file and renamed).
fn load_module(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: Option<&Path>,
) -> Result<Module, SandboxError> {
    let bytes = std::fs::read(wasm_path)
        .map_err(|e| SandboxError::Setup(format!("reading {}: {e}", wasm_path.display())))?;
    let sha = Sha256::digest(&bytes);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let key = format!(
        "{:016x}-{}",
        h.finish(),
        sha.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let dir = cache_dir.unwrap_or(wasm_path.parent().unwrap_or(Path::new(".")));
    let stem = wasm_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("module");
    let cwasm = dir.join(format!("{stem}-{key}.cwasm"));
    if cwasm.is_file() {
        // SAFETY: the file was written by `Module::serialize` of this same engine
        // configuration (the name carries its compatibility hash) into our cache directory;
        // wasmtime additionally checks the header and refuses incompatible artifacts.
        match unsafe { Module::deserialize_file(engine, &cwasm) } {
            Ok(m) => return Ok(m),
            Err(e) => tracing::warn!("ignoring {}: {e}", cwasm.display()),
        }
    }
    tracing::info!(
        "compiling {} (first use; cached as {})",
        wasm_path.display(),
        cwasm.display()
    );
    let module = Module::new(engine, &bytes)
        .map_err(|e| SandboxError::Setup(format!("compiling {}: {e}", wasm_path.display())))?;
    match module.serialize() {
        Ok(ser) => {
            let tmp = dir.join(format!(".{stem}-{key}.cwasm.{}", std::process::id()));
            let written = std::fs::write(&tmp, ser).and_then(|_| std::fs::rename(&tmp, &cwasm));
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!("could not cache {}: {e}", cwasm.display());
            }
        }
        Err(e) => tracing::warn!("could not serialise the module: {e}"),
    }
    Ok(module)
}
