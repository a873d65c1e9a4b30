//! Existing Python reward functions as rlvr verifiers — what verl and TRL users already have:
//! verl's `compute_score(data_source, solution_str, ground_truth, extra_info=None)` (a float or
//! a dict with `score`) and TRL's `reward_fn(prompts, completions, **kwargs) -> list[float]`.
//!
//! The function runs in a pool of long-lived worker processes (`python3` by default, on the
//! host: trusted code) speaking JSON lines. Each call has a deadline; a worker that times out,
//! crashes or answers garbage is killed and replaced at its next use, and the call becomes an
//! `error` outcome. An exception in the function is an `error` outcome with the traceback in
//! `details.traceback`. Scores ≥ `correct_threshold` are `correct`, others `incorrect`.
//!
//! Untrusted functions run in a code sandbox instead (`"sandbox": "wasm"` or `"docker"`): each
//! call is one fresh sandbox run of the same worker with the function's file copied into its
//! scratch dir — no host filesystem, no network, the sandbox's time/memory/output limits; a
//! limit hit or a sandbox failure is an `error` outcome naming the sandbox status. (The WASM
//! interpreter has the standard library only: no numpy, no zlib.)
//!
//! Batches ([`Verifier::verify_batch`]) go to the function in one call per chunk: the batch
//! is split into at most `workers` chunks of at most `batch_size` items, sent to different
//! workers (or sandbox runs) at once, each as ONE request line answered by one line; a TRL
//! function is called once per chunk with the lists of all its prompts and completions, a
//! verl function once per item inside the worker. A chunk of `n` items has a deadline of
//! `timeout_ms × min(n, 10)` ([`BATCH_DEADLINE_CAP`]); a chunk that times out, crashes or
//! answers garbage makes every one of its items an `error` outcome, and its worker is replaced
//! as for a single call.
//!
//! Registered as `python`: `rlvr verify --verifier python:PATH.py[:FUNCTION]`, or a spec
//! `{"type": "python", "path": "reward.py", "function": "compute_score", "workers": 2}`
//! (`"sandbox": "wasm"` for untrusted code).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rlvr_sandbox::{BackendKind, BlockingRunner, Limits, Program, RunResult, Status as SbStatus};
use rlvr_verify::error::{Result, VerifyError};
use rlvr_verify::{Outcome, RewardMapping, Status, Verifier, VerifyInput};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const WORKER: &str = include_str!("worker.py");

/// A batch call over `n` items may take `timeout_ms × min(n, BATCH_DEADLINE_CAP)` (and, in a
/// sandbox, as many times the fuel and output allowance of a single call).
pub const BATCH_DEADLINE_CAP: u64 = 10;

/// A fresh request id (unique in this process).
fn next_id() -> u64 {
    static IDS: AtomicU64 = AtomicU64::new(1);
    IDS.fetch_add(1, Ordering::Relaxed)
}

/// The worker's request for one input (without its `id`).
fn item_request(input: &VerifyInput<'_>) -> Map<String, Value> {
    let meta = input.metadata;
    let field = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("response".into(), json!(input.response));
    m.insert("ground_truth".into(), input.ground_truth.clone());
    m.insert("data_source".into(), field("data_source"));
    m.insert("extra_info".into(), field("extra_info"));
    m.insert("prompt".into(), field("prompt"));
    m
}

/// One shared runner per sandbox backend (the WASM interpreter is loaded once).
fn sandbox_runner(kind: BackendKind) -> std::result::Result<Arc<BlockingRunner>, String> {
    static RUNNERS: Mutex<Vec<(BackendKind, Arc<BlockingRunner>)>> = Mutex::new(Vec::new());
    let mut rs = RUNNERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = rs.iter().find(|(k, _)| *k == kind) {
        return Ok(r.clone());
    }
    let r = Arc::new(BlockingRunner::open(kind).map_err(|e| e.to_string())?);
    rs.push((kind, r.clone()));
    Ok(r)
}

/// The last `n` bytes of `s`, on a char boundary.
fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Settings of the Python verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PythonConfig {
    /// The Python file defining the function (required).
    pub path: PathBuf,
    /// The function (default `compute_score`).
    pub function: String,
    /// Calling convention: `verl`, `trl` or `auto` (default: by the first parameter's name —
    /// `prompts`/`completions` mean TRL).
    pub style: String,
    /// The interpreter (default `python3`).
    pub python: String,
    /// Worker processes (default 2); also how many chunks (worker calls or sandbox runs, at
    /// once) a batch is split into at most.
    pub workers: usize,
    /// Deadline of one call in ms, and of a worker's start-up (default 10000). It is per item:
    /// a batch call over `n` items gets `timeout_ms × min(n, 10)` ([`BATCH_DEADLINE_CAP`]).
    pub timeout_ms: u64,
    /// Scores at or above this are `correct` (default 1.0).
    pub correct_threshold: f64,
    /// Where the function runs: `host` (default; the worker pool, trusted code), `wasm` or
    /// `docker` (one sandbox run per call, untrusted code).
    pub sandbox: String,
    /// Memory limit of a sandboxed call in MiB (default 256).
    pub memory_mb: u64,
    /// Most items in one worker call or sandbox run of a batch (default 64).
    pub batch_size: usize,
}

impl Default for PythonConfig {
    fn default() -> Self {
        PythonConfig {
            path: PathBuf::new(),
            function: "compute_score".into(),
            style: "auto".into(),
            python: "python3".into(),
            workers: 2,
            timeout_ms: 10_000,
            correct_threshold: 1.0,
            sandbox: "host".into(),
            memory_mb: 256,
            batch_size: 64,
        }
    }
}

/// One worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps the last few KiB of a worker's stderr (the user's prints and Python's errors).
fn keep_tail(buf: &Arc<Mutex<String>>, text: &str) {
    let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
    b.push_str(text);
    if b.len() > 4096 {
        let cut = b.len() - 4096;
        let cut = (cut..b.len())
            .find(|&i| b.is_char_boundary(i))
            .unwrap_or(b.len());
        b.drain(..cut);
    }
}

impl Worker {
    fn start(cfg: &PythonConfig) -> std::result::Result<Worker, String> {
        // The worker's code is passed with -c: no file to write, share or clean up.
        let mut child = Command::new(&cfg.python)
            .arg("-u")
            .arg("-c")
            .arg(WORKER)
            .arg(&cfg.path)
            .arg(&cfg.function)
            .arg(&cfg.style)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", cfg.python))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                keep_tail(&sink, &String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut w = Worker {
            child,
            stdin,
            lines,
            stderr,
        };
        match w.lines.recv_timeout(Duration::from_millis(cfg.timeout_ms)) {
            Ok(l) if serde_json::from_str::<Value>(&l).is_ok_and(|v| v["ready"] == true) => Ok(w),
            Ok(l) => Err(format!("unexpected first line from the worker: {l}")),
            Err(e) => {
                // Give the stderr thread a moment to collect the traceback.
                let _ = w.child.wait_timeout_ms(200);
                let tail = w.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
                Err(format!(
                    "the worker did not start ({}): {}",
                    match e {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "exited",
                    },
                    tail.trim()
                ))
            }
        }
    }
}

trait WaitTimeout {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + Duration::from_millis(ms);
        loop {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `python` verifier: a pool of workers running one reward function.
pub struct PythonVerifier {
    cfg: PythonConfig,
    /// The sandbox and the function's source, when `sandbox` is not `host`.
    sandboxed: Option<(Arc<BlockingRunner>, String)>,
    slots: Vec<Mutex<Option<Worker>>>,
    next: AtomicU64,
    mapping: RewardMapping,
}

impl PythonVerifier {
    /// Checks the settings and starts one worker (so a broken file or function is reported
    /// now, with Python's traceback); the others start on first use.
    pub fn new(cfg: PythonConfig) -> Result<Self> {
        let bad = |field: &str, msg: String| VerifyError::Config {
            field: format!("python.{field}"),
            msg,
        };
        if cfg.path.as_os_str().is_empty() {
            return Err(bad(
                "path",
                "missing: the Python file defining the function".into(),
            ));
        }
        if !cfg.path.is_file() {
            return Err(bad("path", format!("{}: no such file", cfg.path.display())));
        }
        if !["auto", "verl", "trl"].contains(&cfg.style.as_str()) {
            return Err(bad(
                "style",
                format!("`{}`: expected auto, verl or trl", cfg.style),
            ));
        }
        if cfg.workers == 0 || cfg.timeout_ms == 0 {
            return Err(bad(
                "workers",
                "workers and timeout_ms must be at least 1".into(),
            ));
        }
        if cfg.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1".into()));
        }
        if cfg.sandbox != "host" {
            let kind: BackendKind = cfg
                .sandbox
                .parse()
                .map_err(|e: String| bad("sandbox", format!("{e} (or host)")))?;
            let source = std::fs::read_to_string(&cfg.path)
                .map_err(|e| bad("path", format!("{}: {e}", cfg.path.display())))?;
            let runner = sandbox_runner(kind).map_err(|e| bad("sandbox", e))?;
            let v = PythonVerifier {
                cfg,
                sandboxed: Some((runner, source)),
                slots: Vec::new(),
                next: AtomicU64::new(0),
                mapping: RewardMapping::default(),
            };
            // Import the file and find the function now, so that a broken file is reported
            // at once with Python's traceback.
            let r = v.run_sandboxed(&[], 1);
            if r.status != SbStatus::Ok || !r.stdout.contains("\"ready\": true") {
                return Err(bad(
                    "path",
                    format!(
                        "{} ({}) in the {} sandbox: {}: {}",
                        v.cfg.path.display(),
                        v.cfg.function,
                        kind.as_str(),
                        r.status,
                        r.stderr.trim()
                    ),
                ));
            }
            return Ok(v);
        }
        let first = Worker::start(&cfg).map_err(|e| {
            bad(
                "path",
                format!("{} ({}): {e}", cfg.path.display(), cfg.function),
            )
        })?;
        let mut slots = Vec::with_capacity(cfg.workers);
        slots.push(Mutex::new(Some(first)));
        slots.extend((1..cfg.workers).map(|_| Mutex::new(None)));
        Ok(PythonVerifier {
            cfg,
            sandboxed: None,
            slots,
            next: AtomicU64::new(0),
            mapping: RewardMapping::default(),
        })
    }

    /// One sandbox run of the worker over `requests` (none: just import and report ready),
    /// with `scale` times a single call's time, fuel and output allowance.
    fn run_sandboxed(&self, requests: &[Value], scale: u64) -> RunResult {
        let (runner, source) = self.sandboxed.as_ref().expect("sandboxed verifier");
        let mut program = Program::python(WORKER);
        program.files.insert("reward.py".into(), source.clone());
        program.argv = vec![
            "reward.py".into(),
            self.cfg.function.clone(),
            self.cfg.style.clone(),
        ];
        program.stdin = requests.iter().map(|r| r.to_string() + "\n").collect();
        let d = Limits::default();
        let limits = Limits {
            timeout_ms: self.cfg.timeout_ms.saturating_mul(scale),
            memory_mb: self.cfg.memory_mb,
            fuel: d.fuel.map(|f| f.saturating_mul(scale)),
            output_bytes: d.output_bytes.saturating_mul(scale as usize),
            ..d
        };
        runner.run(program, limits)
    }

    /// One sandbox run answering `request`, with `scale` times a single call's limits.
    fn call_sandboxed(&self, request: &Value, scale: u64) -> std::result::Result<Value, String> {
        let r = self.run_sandboxed(std::slice::from_ref(request), scale);
        let answer = r
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["id"] == request["id"]);
        match answer {
            Some(v) => Ok(v),
            None => Err(format!(
                "the sandboxed call ended with {}{}: {}",
                r.status,
                r.exit_code
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default(),
                tail(&r.stderr, 1500).trim()
            )),
        }
    }

    fn call(&self, request: &Value) -> std::result::Result<Value, String> {
        if self.sandboxed.is_some() {
            return self.call_sandboxed(request, 1);
        }
        self.exchange(request, self.cfg.timeout_ms, |_| true)
    }

    /// Sends `request` to a pool worker and waits at most `timeout_ms` for the answer with
    /// its id, which `valid` must accept. A worker that fails is killed and replaced at the
    /// next use of its slot.
    fn exchange(
        &self,
        request: &Value,
        timeout_ms: u64,
        valid: impl Fn(&Value) -> bool,
    ) -> std::result::Result<Value, String> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        // A free worker if there is one, else wait for the one this call was dealt.
        let mut slot = (0..n)
            .find_map(|k| self.slots[(start + k) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.slots[start % n]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
            });
        if slot.is_none() {
            *slot = Some(Worker::start(&self.cfg)?);
        }
        let w = slot.as_mut().expect("started above");
        let id = request["id"].clone();
        let line = request.to_string() + "\n";
        let written = w
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| w.stdin.flush());
        let answer = match written {
            Err(e) => Err(format!("the worker died: {e}")),
            Ok(()) => match w.lines.recv_timeout(Duration::from_millis(timeout_ms)) {
                Ok(l) => match serde_json::from_str::<Value>(&l) {
                    Ok(v) if v["id"] == id && valid(&v) => Ok(v),
                    Ok(v) if v["id"] == id => {
                        Err(format!("the worker answered garbage: {}", head(&l, 1000)))
                    }
                    Ok(v) => Err(format!("the worker answered another request: {v}")),
                    Err(_) => Err(format!("the worker answered garbage: {l}")),
                },
                Err(RecvTimeoutError::Timeout) => Err(format!("timed out after {timeout_ms} ms")),
                Err(RecvTimeoutError::Disconnected) => {
                    let tail = w.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    Err(format!("the worker exited: {}", tail.trim()))
                }
            },
        };
        if answer.is_err() {
            // Killed (on drop) and replaced at the next use of this slot.
            *slot = None;
        }
        answer
    }
}

impl PythonVerifier {
    /// The outcome of one answer (`{"score", "details"}` or `{"error": traceback}`).
    fn judge(&self, v: &Value) -> Outcome {
        if let Some(tb) = v.get("error").and_then(Value::as_str) {
            return Outcome::with_status(
                Status::Error,
                &self.mapping,
                json!({"reason": "the reward function raised", "traceback": tb}),
            );
        }
        match v.get("score").and_then(Value::as_f64) {
            Some(score) if score.is_finite() => Outcome {
                score: score as f32,
                status: if score >= self.cfg.correct_threshold {
                    Status::Correct
                } else {
                    Status::Incorrect
                },
                details: v.get("details").cloned().unwrap_or(json!({})),
            },
            _ => Outcome::error(&self.mapping, format!("no finite score in {v}")),
        }
    }

    /// One worker call (or sandbox run) over `items`: one outcome per item, in order.
    fn call_chunk(&self, items: &[Map<String, Value>]) -> Vec<Outcome> {
        let n = items.len();
        let request = json!({"id": next_id(), "batch": items});
        let scale = (n as u64).clamp(1, BATCH_DEADLINE_CAP);
        let shaped =
            |v: &Value| v.get("results").and_then(Value::as_array).map(Vec::len) == Some(n);
        let answer = if self.sandboxed.is_some() {
            self.call_sandboxed(&request, scale).and_then(|v| {
                if shaped(&v) {
                    Ok(v)
                } else {
                    Err(format!(
                        "the sandboxed worker answered garbage: {}",
                        head(&v.to_string(), 1000)
                    ))
                }
            })
        } else {
            self.exchange(&request, self.cfg.timeout_ms.saturating_mul(scale), shaped)
        };
        match answer {
            Ok(v) => v["results"]
                .as_array()
                .map(|rs| rs.iter().map(|r| self.judge(r)).collect())
                .unwrap_or_default(),
            Err(reason) => {
                let reason = format!("{reason} (a batch call over {n} items)");
                (0..n)
                    .map(|_| Outcome::error(&self.mapping, reason.clone()))
                    .collect()
            }
        }
    }
}

/// The first `n` bytes of `s`, on a char boundary, with `…` when cut.
fn head(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    format!("{}…", &s[..i])
}

impl Verifier for PythonVerifier {
    fn name(&self) -> &str {
        "python"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let mut request = item_request(input);
        request.insert("id".into(), json!(next_id()));
        match self.call(&Value::Object(request)) {
            Err(reason) => Outcome::error(&self.mapping, reason),
            Ok(v) => self.judge(&v),
        }
    }

    /// `batch_size` items per worker call for each worker.
    fn batch_hint(&self) -> usize {
        self.cfg.batch_size.max(1) * self.cfg.workers.max(1)
    }

    /// The batch in chunks of at most `batch_size` items, at most `workers` chunks at once,
    /// each chunk one worker call (one sandbox run) with a deadline of
    /// `timeout_ms × min(len, 10)`. A single input is a plain [`verify`](Self::verify).
    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        let n = inputs.len();
        if n <= 1 {
            return inputs.iter().map(|i| self.verify(i)).collect();
        }
        let items: Vec<Map<String, Value>> = inputs.iter().map(item_request).collect();
        let parallel = self.cfg.workers.max(1);
        let size = n.div_ceil(parallel).clamp(1, self.cfg.batch_size.max(1));
        let chunks: Vec<&[Map<String, Value>]> = items.chunks(size).collect();
        if chunks.len() == 1 {
            return self.call_chunk(chunks[0]);
        }
        let next = AtomicUsize::new(0);
        let mut done: Vec<Option<Vec<Outcome>>> = vec![None; chunks.len()];
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..parallel.min(chunks.len()))
                .map(|_| {
                    s.spawn(|| {
                        let mut got = Vec::new();
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(chunk) = chunks.get(k) else {
                                return got;
                            };
                            got.push((k, self.call_chunk(chunk)));
                        }
                    })
                })
                .collect();
            for h in handles {
                for (k, outcomes) in h.join().unwrap_or_default() {
                    done[k] = Some(outcomes);
                }
            }
        });
        let mut out = Vec::with_capacity(n);
        for (k, chunk) in chunks.iter().enumerate() {
            match done[k].take() {
                Some(o) if o.len() == chunk.len() => out.extend(o),
                _ => out.extend(
                    (0..chunk.len())
                        .map(|_| Outcome::error(&self.mapping, "the batch thread failed")),
                ),
            }
        }
        out
    }
}

fn factory(settings: &Map<String, Value>) -> Result<Arc<dyn Verifier>> {
    let mut m = settings.clone();
    // `python:PATH.py[:FUNCTION]` arrives as {"target": "PATH.py[:FUNCTION]"}.
    if let Some(t) = m
        .remove("target")
        .and_then(|t| t.as_str().map(str::to_string))
    {
        let (path, function) = match t.rsplit_once(':') {
            Some((p, f)) if p.ends_with(".py") => (p.to_string(), Some(f.to_string())),
            _ => (t.clone(), None),
        };
        m.insert("path".into(), json!(path));
        if let Some(f) = function {
            m.insert("function".into(), json!(f));
        }
    }
    let cfg: PythonConfig = rlvr_verify::registry::settings(&m, "python")?;
    Ok(Arc::new(PythonVerifier::new(cfg)?))
}

/// Registers this verifier as `python` (idempotent).
pub fn register() -> Result<()> {
    rlvr_verify::registry::register("python", factory)
}
