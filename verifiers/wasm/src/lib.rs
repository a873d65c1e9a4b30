//! Sandboxed WebAssembly verifier plugins: `wasm:PATH.wasm`.
//!
//! A plugin is a reward function compiled to a **WASI preview-1 command module**
//! (`wasm32-wasi` / `wasm32-wasip1`, entry point `_start`) in any language with a WASI target
//! (C with clang + wasi-libc, Rust, Zig, TinyGo…). It runs under wasmtime
//! ([`rlvr_sandbox::wasm::WasiModule`]), once per response, in a fresh instance, with a fuel
//! budget, a wall-clock deadline, a memory cap and capped output. It gets **no filesystem**
//! (no preopened directories), **no environment variables**, **no network** and no clock beyond
//! what WASI itself offers; its `argv` is just its file name.
//!
//! # The ABI
//!
//! The host writes ONE JSON object to the plugin's stdin, then closes it:
//!
//! ```json
//! {"response": "…", "ground_truth": "…" | {…}, "metadata": {…}, "config": {…}}
//! ```
//!
//! - `response`: the completion text (a string);
//! - `ground_truth`: the verify line's ground truth, as given (usually a string or an object);
//! - `metadata`: the verify line's other fields (`prompt`, `data_source`, `extra_info`, …), an
//!   object (`{}` when there are none);
//! - `config`: the `config` object of the verifier spec (`{}` by default).
//!
//! The plugin writes ONE JSON object to stdout (surrounding whitespace allowed) and exits 0:
//!
//! ```json
//! {"score": 1.0, "status": "correct" | "incorrect" | "invalid" | "error", "details": {…}}
//! ```
//!
//! - `score`: a finite number (representable as an `f32`), required;
//! - `status`: one of the four strings, required;
//! - `details`: an object, optional (`{}` when absent); other top-level keys are ignored.
//!
//! For `correct` and `incorrect` the plugin's `score` is the reward (partial credit is the
//! plugin's business); for `invalid` and `error` the reward is the [`RewardMapping`]'s value
//! for that status (the plugin's number is ignored), as for every rlvr verifier. Whatever the
//! plugin writes to stderr is ignored unless the call fails.
//!
//! Anything else — a trap, a non-zero exit, the timeout, fuel or memory exhausted, output over
//! the cap, stdout that is not one JSON object, a missing or ill-typed field, a non-finite
//! score — is an `error` outcome scored by the mapping's `error`, with details
//! `{"reason", "plugin", "sandbox_status", "exit_code", "stderr_tail"}`; never a panic or a
//! hang of the host.
//!
//! # Use
//!
//! ```sh
//! verifiers/wasm/build-examples.sh          # -> ~/.cache/rlvr-sandbox/plugins/exact_match.wasm
//! rlvr verify --verifier wasm:$HOME/.cache/rlvr-sandbox/plugins/exact_match.wasm --input lines.jsonl
//! ```
//! or a spec `{"type": "wasm", "path": "exact_match.wasm", "config": {"ignore_case": true},
//! "timeout_ms": 2000}` (equivalently `{"type": "wasm:exact_match.wasm", "config": {…}}`),
//! which composes like any verifier (`weighted_sum`, `gated`). See [`WasmPluginConfig`] for
//! the settings.
//!
//! A module is loaded once per (canonical path, modification time, size) and shared by every
//! verifier using it; its compiled form is cached on disk in
//! `$RLVR_SANDBOX_CACHE/plugins` (`~/.cache/rlvr-sandbox/plugins`), keyed by the module's hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use rlvr_sandbox::wasm::{Invocation, WasiModule};
use rlvr_sandbox::{BackendKind, Limits, RunResult};
use rlvr_verify::error::{Result, VerifyError};
use rlvr_verify::{Outcome, RewardMapping, Status, Verifier, VerifyInput};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

/// Maximum WebAssembly stack of a plugin in KiB; deeper recursion traps (an `error` outcome).
pub const MAX_WASM_STACK_KB: usize = 1024;

/// Characters of stderr kept in an error outcome's `stderr_tail`.
const STDERR_TAIL: usize = 2000;

/// Settings of a WASM plugin verifier (a spec `{"type": "wasm", ...}` or
/// `{"type": "wasm:PATH.wasm", ...}`). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WasmPluginConfig {
    /// The plugin module (`.wasm`, a WASI preview-1 command). Relative paths resolve against
    /// the current directory. Required, unless given as `target`.
    pub path: Option<PathBuf>,
    /// The module named by the `wasm:PATH.wasm` form (set by the registry; same as `path`,
    /// which it must not contradict).
    pub target: Option<PathBuf>,
    /// The object passed to the plugin as the request's `config` (default `{}`).
    pub config: Map<String, Value>,
    /// Wall-clock limit of one call in ms (default 2000).
    pub timeout_ms: u64,
    /// Linear-memory limit of one call in MiB (default 64).
    pub memory_mb: u64,
    /// Fuel budget of one call, in wasmtime fuel units, about one per WebAssembly instruction
    /// (default 2e9; an integral float such as `2e9` is accepted).
    #[serde(deserialize_with = "de_count")]
    pub fuel: u64,
    /// Bytes kept of stdout and of stderr each; writing more is an error (default 65536).
    pub output_bytes: usize,
    /// Calls this verifier runs at once, each on a thread of its private runtime (default: the
    /// number of CPUs).
    pub concurrency: usize,
    /// Scores of `invalid` and `error` outcomes (the plugin's own score is used for `correct`
    /// and `incorrect`); default correct 1, incorrect 0, invalid 0, error 0.
    pub mapping: RewardMapping,
}

impl Default for WasmPluginConfig {
    fn default() -> Self {
        WasmPluginConfig {
            path: None,
            target: None,
            config: Map::new(),
            timeout_ms: 2000,
            memory_mb: 64,
            fuel: 2_000_000_000,
            output_bytes: 64 << 10,
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            mapping: RewardMapping::default(),
        }
    }
}

impl WasmPluginConfig {
    /// A configuration for the module at `path`, with default settings.
    pub fn for_path(path: impl Into<PathBuf>) -> Self {
        WasmPluginConfig {
            path: Some(path.into()),
            ..Default::default()
        }
    }

    /// The sandbox limits of one call.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
            fuel: Some(self.fuel),
            output_bytes: self.output_bytes,
            ..Limits::default()
        }
    }
}

/// A non-negative integer, also written as an integral float (`2e9`).
fn de_count<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a non-negative integer, got {v}"
        ))),
    }
}

fn cfg_err(field: &str, msg: impl Into<String>) -> VerifyError {
    VerifyError::Config {
        field: format!("wasm.{field}"),
        msg: msg.into(),
    }
}

/// Loaded modules, shared by every verifier using the same file (while one is alive).
type ModuleKey = (PathBuf, Option<SystemTime>, u64);

fn loaded() -> &'static Mutex<HashMap<ModuleKey, Weak<WasiModule>>> {
    static LOADED: OnceLock<Mutex<HashMap<ModuleKey, Weak<WasiModule>>>> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The compile cache: `$RLVR_SANDBOX_CACHE/plugins`, else a directory under the system's
/// temporary directory when that cannot be created.
fn compile_cache_dir() -> PathBuf {
    let dir = rlvr_sandbox::cache_dir().join("plugins");
    if std::fs::create_dir_all(&dir).is_ok() {
        return dir;
    }
    let tmp = std::env::temp_dir().join("rlvr-sandbox-plugins");
    let _ = std::fs::create_dir_all(&tmp);
    tmp
}

/// Loads the module at `canonical`, or reuses the one already loaded from the same file
/// (same canonical path, modification time and size).
fn load_module(canonical: &Path, shown: &Path) -> Result<Arc<WasiModule>> {
    let md = std::fs::metadata(canonical)
        .map_err(|e| cfg_err("path", format!("{}: {e}", shown.display())))?;
    let key = (canonical.to_path_buf(), md.modified().ok(), md.len());
    let mut map = loaded().lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(m) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(m);
    }
    let cache = compile_cache_dir();
    // Each verifier bounds its own calls; the module's pool does not.
    let module =
        WasiModule::load(canonical, Some(&cache), MAX_WASM_STACK_KB, 1 << 20).map_err(|e| {
            cfg_err(
                "path",
                format!("{}: not a usable WASI plugin: {e}", shown.display()),
            )
        })?;
    let module = Arc::new(module);
    map.insert(key, Arc::downgrade(&module));
    Ok(module)
}

/// One call's outcome and what the sandbox measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRun {
    /// The verdict.
    pub outcome: Outcome,
    /// How the sandboxed run ended (`ok` even when the output was then refused).
    pub sandbox_status: rlvr_sandbox::Status,
    /// Fuel the call consumed, when known.
    pub fuel_used: Option<u64>,
    /// Wall time of the run in ms (instantiation and execution).
    pub wall_ms: f64,
}

/// The `wasm` verifier: one plugin module with its settings. Its calls run on a private
/// runtime (`concurrency` threads, at most `concurrency` calls at once); the compiled module
/// is shared with other verifiers of the same file.
pub struct WasmPluginVerifier {
    cfg: WasmPluginConfig,
    path: PathBuf,
    label: String,
    module: Arc<WasiModule>,
    permits: Arc<Semaphore>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for WasmPluginVerifier {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's async context panics; shutting it down
        // in the background never does.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for WasmPluginVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPluginVerifier")
            .field("path", &self.path)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl WasmPluginVerifier {
    /// Checks the settings and loads the module (compiling it on first use), so that a
    /// missing file or a module that is not a WASI command is reported now, naming the path.
    pub fn new(cfg: WasmPluginConfig) -> Result<Self> {
        let given =
            match (&cfg.path, &cfg.target) {
                (Some(p), Some(t)) if p != t => {
                    return Err(cfg_err(
                        "path",
                        format!(
                            "both `path` ({}) and `wasm:{}` are given",
                            p.display(),
                            t.display()
                        ),
                    ))
                }
                (Some(p), _) | (None, Some(p)) => p.clone(),
                (None, None) => return Err(cfg_err(
                    "path",
                    "missing: the plugin module (`wasm:PATH.wasm` or `\"path\": \"PATH.wasm\"`)",
                )),
            };
        if given.as_os_str().is_empty() {
            return Err(cfg_err("path", "empty: expected the plugin module's path"));
        }
        for (field, v) in [
            ("timeout_ms", cfg.timeout_ms),
            ("memory_mb", cfg.memory_mb),
            ("fuel", cfg.fuel),
            ("output_bytes", cfg.output_bytes as u64),
            ("concurrency", cfg.concurrency as u64),
        ] {
            if v == 0 {
                return Err(cfg_err(field, "must be at least 1"));
            }
        }
        if cfg.memory_mb > 4096 {
            return Err(cfg_err(
                "memory_mb",
                "at most 4096 (a wasm32 module cannot address more)",
            ));
        }
        let absolute = std::path::absolute(&given).unwrap_or_else(|_| given.clone());
        let canonical = match std::fs::canonicalize(&given) {
            Ok(p) if p.is_file() => p,
            Ok(p) => {
                return Err(cfg_err(
                    "path",
                    format!("{}: not a file ({})", given.display(), p.display()),
                ))
            }
            Err(e) => {
                return Err(cfg_err(
                    "path",
                    format!(
                        "{}: cannot open the plugin module ({e}; looked for {})",
                        given.display(),
                        absolute.display()
                    ),
                ))
            }
        };
        let module = load_module(&canonical, &given)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.concurrency)
            .thread_name("rlvr-wasm-plugin")
            .enable_all()
            .build()
            .map_err(|e| cfg_err("concurrency", format!("starting the plugin runtime: {e}")))?;
        Ok(WasmPluginVerifier {
            label: given.display().to_string(),
            path: canonical,
            permits: Arc::new(Semaphore::new(cfg.concurrency)),
            runtime: Some(runtime),
            cfg,
            module,
        })
    }

    /// The module's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings.
    pub fn config(&self) -> &WasmPluginConfig {
        &self.cfg
    }

    /// Milliseconds the module took to load (and, the first time, to compile).
    pub fn load_ms(&self) -> f64 {
        self.module.load_ms()
    }

    /// Judges all `inputs` concurrently (up to `concurrency` calls at once); outcomes in order.
    pub fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        self.run_batch(inputs)
            .into_iter()
            .map(|r| r.outcome)
            .collect()
    }

    /// Like [`verify_batch`](Self::verify_batch), with each call's sandbox status, fuel and
    /// wall time.
    pub fn run_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<PluginRun> {
        let n = inputs.len();
        if n == 0 {
            return Vec::new();
        }
        let limits = self.cfg.limits();
        let arg0 = self
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let (tx, rx) = mpsc::channel();
        for (i, input) in inputs.iter().enumerate() {
            let inv = Invocation {
                args: vec![arg0.clone()],
                env: Vec::new(),
                stdin: request(input, &self.cfg.config).to_string().into_bytes(),
                preopens: Vec::new(),
                scratch: None,
            };
            let module = self.module.clone();
            let permits = self.permits.clone();
            let tx = tx.clone();
            self.handle().spawn(async move {
                let r = match permits.acquire_owned().await {
                    Ok(_permit) => module.run(inv, limits).await,
                    Err(_) => RunResult::sandbox_error(BackendKind::Wasm, "the verifier closed"),
                };
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        // A backstop only: every run is bounded by its own limits once it has a slot.
        let rounds = n.div_ceil(self.cfg.concurrency.max(1)) as u64 + 1;
        let backstop = Duration::from_millis(
            self.cfg
                .timeout_ms
                .saturating_add(1000)
                .saturating_mul(rounds),
        ) + Duration::from_secs(10);
        let deadline = Instant::now() + backstop;
        let mut out: Vec<Option<RunResult>> = vec![None; n];
        let mut got = 0;
        while got < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, r)) => {
                    out[i] = Some(r);
                    got += 1;
                }
                Err(_) => break,
            }
        }
        out.into_iter()
            .map(|r| match r {
                Some(r) => self.judge(r),
                None => PluginRun {
                    outcome: self.error(
                        "the plugin call ended without a result (host backstop)",
                        None,
                    ),
                    sandbox_status: rlvr_sandbox::Status::SandboxError,
                    fuel_used: None,
                    wall_ms: 0.0,
                },
            })
            .collect()
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime present until drop")
            .handle()
    }

    /// An `error` outcome with the standard details.
    fn error(&self, reason: impl Into<String>, run: Option<&RunResult>) -> Outcome {
        let details = json!({
            "reason": reason.into(),
            "plugin": self.label,
            "sandbox_status": run.map(|r| r.status.as_str()),
            "exit_code": run.and_then(|r| r.exit_code),
            "stderr_tail": run.map(|r| tail(&r.stderr, STDERR_TAIL)).unwrap_or_default(),
        });
        Outcome::with_status(Status::Error, &self.cfg.mapping, details)
    }

    /// Turns a run into an outcome.
    fn judge(&self, r: RunResult) -> PluginRun {
        use rlvr_sandbox::Status as S;
        let c = &self.cfg;
        let failure = match r.status {
            S::Ok => None,
            S::NonzeroExit => Some(match r.exit_code {
                Some(code) => format!("the plugin exited with code {code}"),
                None => "the plugin exited with a non-zero code".to_string(),
            }),
            S::Timeout => Some(format!("the plugin timed out after {} ms", c.timeout_ms)),
            S::OutOfFuel => Some(format!("the plugin ran out of fuel ({} units)", c.fuel)),
            S::OutOfMemory => Some(format!(
                "the plugin exceeded the memory limit ({} MiB)",
                c.memory_mb
            )),
            S::OutputLimit => Some(format!(
                "the plugin wrote more than {} bytes of output",
                c.output_bytes
            )),
            S::Killed => Some(match sandbox_note(&r.stderr) {
                Some(note) if note.starts_with("wasm trap: ") => {
                    let mut what = note;
                    while let Some(rest) = what.strip_prefix("wasm trap: ") {
                        what = rest;
                    }
                    format!("the plugin trapped: {what}")
                }
                Some(note) => format!("the plugin was stopped: {note}"),
                None => "the plugin was stopped by the sandbox".to_string(),
            }),
            S::SandboxError if r.stderr.contains("memory minimum size") => Some(format!(
                "the plugin needs more memory at start than memory_mb = {} MiB allows: {}",
                c.memory_mb,
                r.stderr.trim()
            )),
            S::SandboxError => Some(format!(
                "the sandbox failed to run the plugin: {}",
                r.stderr.trim()
            )),
        };
        let outcome = match failure {
            Some(reason) => self.error(reason, Some(&r)),
            None => match parse_verdict(&r.stdout, &c.mapping) {
                Ok(o) => o,
                Err(why) => self.error(why, Some(&r)),
            },
        };
        PluginRun {
            outcome,
            sandbox_status: r.status,
            fuel_used: r.fuel_used,
            wall_ms: r.wall_ms,
        }
    }
}

impl Verifier for WasmPluginVerifier {
    fn name(&self) -> &str {
        "wasm"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        WasmPluginVerifier::verify_batch(self, std::slice::from_ref(input))
            .pop()
            .unwrap_or_else(|| self.error("no result", None))
    }

    /// The inherent [`WasmPluginVerifier::verify_batch`]: up to `concurrency` calls at once.
    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        // The path names the inherent method (inherent methods come first): not a recursion.
        WasmPluginVerifier::verify_batch(self, inputs)
    }

    /// Enough calls to keep `concurrency` instances busy.
    fn batch_hint(&self) -> usize {
        self.cfg.concurrency.max(1) * 4
    }
}

/// The request the host writes to a plugin's stdin for `input` with the spec's `config`.
pub fn request(input: &VerifyInput<'_>, config: &Map<String, Value>) -> Value {
    let metadata = match input.metadata {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    json!({
        "response": input.response,
        "ground_truth": input.ground_truth,
        "metadata": metadata,
        "config": config,
    })
}

/// Reads a plugin's stdout as a verdict; the error says what is wrong with it.
pub fn parse_verdict(
    stdout: &str,
    mapping: &RewardMapping,
) -> std::result::Result<Outcome, String> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err("the plugin wrote nothing to stdout (expected one JSON object)".into());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "the plugin's output is not one JSON object ({e}): {}",
            head(text, 200)
        )
    })?;
    let Value::Object(m) = v else {
        return Err(format!(
            "the plugin's output is not a JSON object: {}",
            head(text, 200)
        ));
    };
    let score = match m.get("score") {
        None => return Err("the plugin's output has no `score`".into()),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => {
            return Err(format!(
                "the plugin's `score` is not a number: {}",
                head(&other.to_string(), 100)
            ))
        }
    };
    if !score.is_finite() || !(score as f32).is_finite() {
        return Err(format!("the plugin's `score` is not finite: {score}"));
    }
    let status = match m.get("status") {
        None => return Err("the plugin's output has no `status`".into()),
        Some(Value::String(s)) => match s.as_str() {
            "correct" => Status::Correct,
            "incorrect" => Status::Incorrect,
            "invalid" => Status::Invalid,
            "error" => Status::Error,
            other => {
                return Err(format!(
                    "the plugin's `status` must be correct, incorrect, invalid or error, got `{}`",
                    head(other, 100)
                ))
            }
        },
        Some(other) => {
            return Err(format!(
                "the plugin's `status` is not a string: {}",
                head(&other.to_string(), 100)
            ))
        }
    };
    let details = match m.get("details") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(d)) => Value::Object(d.clone()),
        Some(other) => {
            return Err(format!(
                "the plugin's `details` is not an object: {}",
                head(&other.to_string(), 100)
            ))
        }
    };
    Ok(match status {
        Status::Correct | Status::Incorrect => Outcome {
            score: score as f32,
            status,
            details,
        },
        Status::Invalid | Status::Error => Outcome::with_status(status, mapping, details),
    })
}

/// The sandbox's own explanation in a run's stderr (`[sandbox] wasm trap: …`).
fn sandbox_note(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("[sandbox] "))
}

/// The first `max` characters of `s` (with `…` when cut).
fn head(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The last `max` characters of `s`.
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    s.chars().skip(n - max).collect()
}

fn factory(settings: &Map<String, Value>) -> Result<Arc<dyn Verifier>> {
    let cfg: WasmPluginConfig = rlvr_verify::registry::settings(settings, "wasm")?;
    Ok(Arc::new(WasmPluginVerifier::new(cfg)?))
}

/// Registers this verifier as `wasm` (idempotent), so that `wasm:PATH.wasm` and
/// `{"type": "wasm", "path": …}` build it everywhere a verifier is named.
pub fn register() -> Result<()> {
    rlvr_verify::registry::register("wasm", factory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_checked() {
        let m = RewardMapping {
            invalid: -0.5,
            error: -1.0,
            ..RewardMapping::default()
        };
        let o = parse_verdict(" {\"score\": 0.25, \"status\": \"correct\"}\n", &m).unwrap();
        assert_eq!(
            (o.score, o.status, o.details),
            (0.25, Status::Correct, json!({}))
        );
        let o = parse_verdict(
            r#"{"score": 3, "status": "invalid", "details": {"a": 1}}"#,
            &m,
        )
        .unwrap();
        assert_eq!(
            (o.score, o.status, o.details),
            (-0.5, Status::Invalid, json!({"a": 1}))
        );
        let o = parse_verdict(r#"{"score": 0, "status": "error"}"#, &m).unwrap();
        assert_eq!(o.score, -1.0);
        for (bad, why) in [
            ("", "nothing"),
            ("not json", "not one JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"score": 1} {"score": 1}"#, "not one JSON object"),
            (r#"{"status": "correct"}"#, "no `score`"),
            (r#"{"score": "high", "status": "correct"}"#, "not a number"),
            (r#"{"score": 1e300, "status": "correct"}"#, "not finite"),
            (
                r#"{"score": 1e999, "status": "correct"}"#,
                "not one JSON object",
            ),
            (r#"{"score": 1}"#, "no `status`"),
            (r#"{"score": 1, "status": "great"}"#, "must be correct"),
            (r#"{"score": 1, "status": 1}"#, "not a string"),
            (
                r#"{"score": 1, "status": "correct", "details": 3}"#,
                "not an object",
            ),
        ] {
            let e = parse_verdict(bad, &m).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn settings_defaults_and_errors() {
        let c: WasmPluginConfig = rlvr_verify::registry::settings(
            json!({"target": "a.wasm", "fuel": 1e9})
                .as_object()
                .unwrap(),
            "wasm",
        )
        .unwrap();
        assert_eq!(c.target, Some(PathBuf::from("a.wasm")));
        assert_eq!(
            (c.fuel, c.timeout_ms, c.memory_mb),
            (1_000_000_000, 2000, 64)
        );
        assert_eq!(c.output_bytes, 65536);
        assert!(c.config.is_empty());
        let e = rlvr_verify::registry::settings::<WasmPluginConfig>(
            json!({"path": "a.wasm", "fule": 1}).as_object().unwrap(),
            "wasm",
        )
        .unwrap_err();
        assert!(e.to_string().contains("wasm.fule"), "{e}");
        let e = rlvr_verify::registry::settings::<WasmPluginConfig>(
            json!({"fuel": 1.5}).as_object().unwrap(),
            "wasm",
        )
        .unwrap_err();
        assert!(e.to_string().contains("wasm.fuel"), "{e}");
        let e = WasmPluginVerifier::new(WasmPluginConfig::default()).unwrap_err();
        assert!(e.to_string().contains("wasm.path"), "{e}");
        let e = WasmPluginVerifier::new(WasmPluginConfig {
            timeout_ms: 0,
            ..WasmPluginConfig::for_path("x.wasm")
        })
        .unwrap_err();
        assert!(e.to_string().contains("wasm.timeout_ms"), "{e}");
    }

    #[test]
    fn request_shape() {
        let gt = json!("42");
        let meta = json!({"prompt": "p", "data_source": "d"});
        let input = VerifyInput {
            response: "so 42",
            ground_truth: &gt,
            metadata: &meta,
        };
        let cfg = json!({"ignore_case": true});
        let r = request(&input, cfg.as_object().unwrap());
        assert_eq!(
            r,
            json!({"response": "so 42", "ground_truth": "42",
                   "metadata": {"prompt": "p", "data_source": "d"},
                   "config": {"ignore_case": true}})
        );
        let null = Value::Null;
        let r = request(
            &VerifyInput {
                metadata: &null,
                ..input
            },
            &Map::new(),
        );
        assert_eq!(r["metadata"], json!({}));
        assert_eq!(r["config"], json!({}));
    }

    #[test]
    fn the_trait_batch_is_the_inherent_one() {
        // The smallest WASI command: exports `_start` (which returns at once) and `memory`;
        // it writes nothing, so every call is an `error` outcome.
        let module: &[u8] = &[
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
            0x03, 0x02, 0x01, 0x00, // one function of that type
            0x05, 0x03, 0x01, 0x00, 0x01, // one memory, 1 page
            0x07, 0x13, 0x02, // two exports
            0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // "_start": func 0
            0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, // "memory": memory 0
            0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // body: end
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wasm");
        std::fs::write(&path, module).unwrap();
        let v = WasmPluginVerifier::new(WasmPluginConfig {
            concurrency: 2,
            ..WasmPluginConfig::for_path(&path)
        })
        .unwrap();
        let v: &dyn Verifier = &v;
        let (gt, meta) = (json!("1"), Value::Null);
        let inputs: Vec<VerifyInput> = ["a", "b", "c"]
            .iter()
            .map(|r| VerifyInput {
                response: r,
                ground_truth: &gt,
                metadata: &meta,
            })
            .collect();
        // Through the trait object: no recursion, one outcome per input.
        let out = v.verify_batch(&inputs);
        assert_eq!(out.len(), 3);
        for o in &out {
            assert_eq!(o.status, Status::Error, "{o:?}");
            assert!(
                o.details["reason"].as_str().unwrap().contains("nothing"),
                "{o:?}"
            );
        }
        assert!(v.verify_batch(&[]).is_empty());
        assert_eq!(v.verify(&inputs[0]).status, Status::Error);
    }

    #[test]
    fn tails_and_heads_cut_on_characters() {
        assert_eq!(tail("héllo", 3), "llo");
        assert_eq!(tail("hé", 3), "hé");
        assert_eq!(head("héllo", 2), "hé…");
        assert_eq!(
            sandbox_note("x\n[sandbox] wasm trap: unreachable\n"),
            Some("wasm trap: unreachable")
        );
    }
}
