//! The `code` verifier: extract a program from a completion ([`extract`]), test it against the
//! task's ground truth ([`spec`]: HumanEval, assert lists, stdin/stdout or function-call I/O)
//! in an rlvr sandbox ([`harness`] builds the programs), and score it.
//!
//! Verdicts:
//! - `correct`: every test passed; `incorrect`: some failed (wrong answer, exception, timeout,
//!   crash, out of memory…);
//! - `invalid`: no code could be extracted (or only whitespace);
//! - `error`: the ground truth is malformed (the reason names the field), the sandbox itself
//!   failed (`sandbox_error`), or the test harness did not start (it reports a first line
//!   before any solution code runs; without it the interpreter or the limits are at fault) —
//!   nothing is known about the program.
//!
//! Scores: with `scoring = "all_or_nothing"` (default) the [`RewardMapping`] value of the
//! status; with `"fraction"` a partly passing program scores
//! `incorrect + (correct - incorrect) · passed/total` (plain `passed/total` with the default
//! mapping), its status staying `incorrect`.
//!
//! Details (`Outcome::details`) of a judged program:
//! `{"format", "backend", "extraction": "fenced"|"raw", "tests_total", "tests_passed",
//! "failures": [{"test": i, "reason": "…"}] (the first 5, reasons cut to 300 chars),
//! "setup_error"?: "…" (the solution or setup code raised while loading),
//! "sandbox_status": "ok"|"timeout"|… (the harness run's, or for one program per test the
//! first non-`ok` one), "wall_ms" (summed over runs), "stderr_tail" (the last 1000 bytes of
//! the harness's stderr, or of the first failing run's)}`.
//! `invalid`/`error` outcomes carry `{"reason", "backend", …}`.
//!
//! The sandbox is pluggable: [`CodeVerifier::new`] takes a [`BlockingRunner`]; the registered
//! `code` verifier ([`register`]) gets one per backend from the factory installed with
//! [`set_backend_factory`], created on first use and shared by every verifier built after.

pub mod extract;
pub mod harness;
pub mod spec;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rlvr_sandbox::{BackendKind, BlockingRunner, Limits, Program, RunResult, Status as RunStatus};
use rlvr_verify::error::{Result, VerifyError};
use rlvr_verify::{Outcome, RewardMapping, Status, Verifier, VerifyInput};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::extract::{ExtractConfig, Source};
use crate::harness::{HarnessOptions, Plan, PlanKind, Reports};
use crate::spec::TestSpec;

/// How a sample's tests become a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// The mapping's `correct` score only when every test passes (default).
    #[default]
    AllOrNothing,
    /// The fraction of tests passed (scaled between the mapping's `incorrect` and `correct`).
    Fraction,
}

/// How `io` stdin/stdout tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoMode {
    /// One program per test, the solution run unmodified with the test's stdin (default:
    /// a fresh interpreter per test).
    #[default]
    Separate,
    /// One harness program running every test in turn with an emulated `sys.stdin` and a
    /// captured `sys.stdout` (one interpreter start per sample; `open(0)`/`os.read(0)` do
    /// not see the input).
    Single,
}

/// Settings of the `code` verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeConfig {
    /// The sandbox backend, `wasm` (default) or `docker`.
    pub backend: BackendKind,
    /// Wall-clock limit of a harness program, i.e. of a whole sample for `humaneval`,
    /// `asserts`, `io` with `fn_name` or `io_mode = "single"` (default 10000).
    pub timeout_ms: u64,
    /// Limit of one test: the wall-clock limit of each program in the `separate` stdin mode
    /// (capped at `timeout_ms`), and a per-test timer inside harness programs where the
    /// interpreter has `signal.setitimer` (Docker; not WASI) (default 6000).
    pub per_test_timeout_ms: u64,
    /// Memory limit of a program in MiB (default 256).
    pub memory_mb: u64,
    /// WASM fuel budget of a program; `null` = unlimited (default 20e9, the sandbox's).
    pub fuel: Option<u64>,
    /// `all_or_nothing` (default) or `fraction`.
    pub scoring: Scoring,
    /// How `io` stdin tests run: `separate` (default) or `single`.
    pub io_mode: IoMode,
    /// Code extraction (`{"strategy": "last"|"first"|"all"|"raw", "fallback_raw": true}`).
    pub extract: ExtractConfig,
    /// Keep only the first N tests of a task (default: all).
    pub max_tests: Option<usize>,
    /// Numbers in outputs / return values may differ by this much, absolute or relative
    /// (default: exact comparison).
    pub float_tolerance: Option<f64>,
    /// Scores per status.
    pub mapping: RewardMapping,
}

impl Default for CodeConfig {
    fn default() -> Self {
        CodeConfig {
            backend: BackendKind::Wasm,
            timeout_ms: 10_000,
            per_test_timeout_ms: 6_000,
            memory_mb: 256,
            fuel: Limits::default().fuel,
            scoring: Scoring::AllOrNothing,
            io_mode: IoMode::Separate,
            extract: ExtractConfig::default(),
            max_tests: None,
            float_tolerance: None,
            mapping: RewardMapping::default(),
        }
    }
}

impl CodeConfig {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: &str| VerifyError::Config {
            field: format!("code.{field}"),
            msg: msg.to_string(),
        };
        if self.timeout_ms == 0 {
            return Err(bad("timeout_ms", "must be at least 1"));
        }
        if self.per_test_timeout_ms == 0 {
            return Err(bad("per_test_timeout_ms", "must be at least 1"));
        }
        if self.memory_mb == 0 {
            return Err(bad("memory_mb", "must be at least 1"));
        }
        if self.max_tests == Some(0) {
            return Err(bad("max_tests", "must be at least 1"));
        }
        if self
            .float_tolerance
            .is_some_and(|t| !t.is_finite() || t < 0.0)
        {
            return Err(bad("float_tolerance", "must be a finite number ≥ 0"));
        }
        Ok(())
    }

    fn limits(&self, timeout_ms: u64) -> Limits {
        Limits {
            timeout_ms,
            memory_mb: self.memory_mb,
            fuel: self.fuel,
            ..Limits::default()
        }
    }
}

/// Makes the runner of a backend (wired by the application to the real sandboxes).
pub type BackendFactory = fn(BackendKind) -> std::result::Result<Arc<BlockingRunner>, String>;

static FACTORY: RwLock<Option<BackendFactory>> = RwLock::new(None);

fn runners() -> &'static Mutex<HashMap<BackendKind, Arc<BlockingRunner>>> {
    static RUNNERS: std::sync::OnceLock<Mutex<HashMap<BackendKind, Arc<BlockingRunner>>>> =
        std::sync::OnceLock::new();
    RUNNERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The real backends with their default settings: `rlvr_sandbox::BlockingRunner::open`.
pub fn default_factory(kind: BackendKind) -> std::result::Result<Arc<BlockingRunner>, String> {
    BlockingRunner::open(kind)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Installs the function that creates a backend's runner for registered `code` verifiers.
/// Runners already created by another factory are dropped from the cache (verifiers holding
/// them keep them).
pub fn set_backend_factory(f: BackendFactory) {
    let mut slot = FACTORY.write().unwrap_or_else(|e| e.into_inner());
    if !slot.is_some_and(|old| std::ptr::fn_addr_eq(old, f)) {
        runners().lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    *slot = Some(f);
}

/// The shared runner of `kind`: created by the installed factory on first use, then cached
/// (a failed creation is not cached, so a later call retries).
pub fn runner_for(kind: BackendKind) -> std::result::Result<Arc<BlockingRunner>, String> {
    let factory = (*FACTORY.read().unwrap_or_else(|e| e.into_inner())).unwrap_or(default_factory);
    let mut cache = runners().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.get(&kind) {
        return Ok(r.clone());
    }
    let r = factory(kind)?;
    cache.insert(kind, r.clone());
    Ok(r)
}

/// The `code` verifier.
pub struct CodeVerifier {
    cfg: CodeConfig,
    runner: Arc<BlockingRunner>,
}

/// A sample ready to run, or already decided.
enum Prepared {
    Done(Outcome),
    Run {
        spec: TestSpec,
        plan: Plan,
        extraction: Source,
    },
}

const MAX_FAILURES: usize = 5;
const REASON_CHARS: usize = 300;
const STDERR_TAIL: usize = 1000;

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n).collect();
        out.push('…');
        out
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Why a program that did not report (or print) a result failed, from how its run ended.
fn run_reason(r: &RunResult) -> String {
    match r.status {
        RunStatus::Timeout => "timeout".into(),
        RunStatus::OutOfFuel => "timeout (CPU fuel budget exhausted)".into(),
        RunStatus::OutOfMemory => "out of memory".into(),
        RunStatus::OutputLimit => "output limit exceeded".into(),
        RunStatus::Killed => format!("killed: {}", last_line(&r.stderr)),
        RunStatus::NonzeroExit => format!(
            "runtime error (exit code {}): {}",
            r.exit_code.map_or("?".into(), |c| c.to_string()),
            last_line(&r.stderr)
        ),
        RunStatus::Ok => format!(
            "the program exited before reporting (exit code 0): {}",
            last_line(&r.stderr)
        ),
        RunStatus::SandboxError => format!("sandbox error: {}", r.stderr),
    }
}

fn wrong_answer(expected: &str, got: &str) -> String {
    format!(
        "wrong answer: expected {:?}, got {:?}",
        cut(expected, 80),
        cut(got, 80)
    )
}

impl CodeVerifier {
    /// A verifier running its programs on `runner` (its backend is the one reported).
    pub fn new(cfg: CodeConfig, runner: Arc<BlockingRunner>) -> Result<Self> {
        cfg.validate()?;
        Ok(CodeVerifier { cfg, runner })
    }

    /// The settings.
    pub fn config(&self) -> &CodeConfig {
        &self.cfg
    }

    fn backend(&self) -> &'static str {
        self.runner.sandbox().kind().as_str()
    }

    fn decided(&self, status: Status, reason: String, extra: Value) -> Outcome {
        let mut d = json!({"reason": reason, "backend": self.backend()});
        if let (Value::Object(d), Value::Object(e)) = (&mut d, extra) {
            d.extend(e);
        }
        Outcome::with_status(status, &self.cfg.mapping, d)
    }

    fn prepare(&self, input: &VerifyInput<'_>) -> Prepared {
        let mut spec = match spec::parse(input.ground_truth) {
            Ok(s) => s,
            Err(e) => return Prepared::Done(self.decided(Status::Error, e, json!({}))),
        };
        if let Some(n) = self.cfg.max_tests {
            spec.truncate(n);
        }
        let Some(found) = extract::extract_code(input.response, &self.cfg.extract) else {
            return Prepared::Done(self.decided(
                Status::Invalid,
                "no code found in the response".into(),
                json!({"format": spec.format()}),
            ));
        };
        let per_test = self.cfg.per_test_timeout_ms.min(self.cfg.timeout_ms);
        let opts = HarnessOptions {
            per_test_timeout_s: (per_test < self.cfg.timeout_ms).then(|| per_test as f64 / 1e3),
            stdin_single: self.cfg.io_mode == IoMode::Single,
            output_cap: Limits::default().output_bytes,
        };
        let plan = harness::plan(&spec, &found.code, &opts);
        Prepared::Run {
            spec,
            plan,
            extraction: found.source,
        }
    }

    fn limits_for(&self, plan: &Plan) -> Limits {
        match plan.kind {
            PlanKind::Separate => self
                .cfg
                .limits(self.cfg.per_test_timeout_ms.min(self.cfg.timeout_ms)),
            _ => self.cfg.limits(self.cfg.timeout_ms),
        }
    }

    /// Judges many responses, sending every program of the batch to the sandbox at once
    /// (the backend bounds the concurrency). Outcomes are in input order.
    pub fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        let prepared: Vec<Prepared> = inputs.iter().map(|i| self.prepare(i)).collect();
        let mut jobs: Vec<(Program, Limits)> = Vec::new();
        let mut ranges = Vec::with_capacity(prepared.len());
        for p in &prepared {
            let start = jobs.len();
            if let Prepared::Run { plan, .. } = p {
                let limits = self.limits_for(plan);
                jobs.extend(plan.programs.iter().map(|prog| (prog.clone(), limits)));
            }
            ranges.push(start..jobs.len());
        }
        let mut results = if jobs.is_empty() {
            Vec::new()
        } else {
            self.runner.run_all(jobs)
        };
        // Keep the length honest even if a runner misbehaves.
        let kind = self.runner.sandbox().kind();
        let total = ranges.last().map_or(0, |r| r.end);
        results.resize_with(total, || {
            RunResult::sandbox_error(kind, "the sandbox returned too few results")
        });
        prepared
            .into_iter()
            .zip(ranges)
            .map(|(p, range)| match p {
                Prepared::Done(o) => o,
                Prepared::Run {
                    spec,
                    plan,
                    extraction,
                } => self.judge(&spec, &plan, extraction, &results[range]),
            })
            .collect()
    }

    fn judge(
        &self,
        spec: &TestSpec,
        plan: &Plan,
        extraction: Source,
        runs: &[RunResult],
    ) -> Outcome {
        if let Some(bad) = runs.iter().find(|r| r.status == RunStatus::SandboxError) {
            return self.decided(
                Status::Error,
                format!("sandbox error: {}", cut(bad.stderr.trim(), 1000)),
                json!({"format": spec.format(), "sandbox_status": "sandbox_error"}),
            );
        }
        let tol = self.cfg.float_tolerance;
        let n = plan.tests;
        let mut verdicts: Vec<Option<String>> = Vec::with_capacity(n); // None = passed
        let mut setup_error = None;
        let (sandbox_status, stderr_tail) = match plan.kind {
            PlanKind::Separate => {
                let cases: &[spec::IoCase] = match spec {
                    TestSpec::Io { cases, .. } => cases,
                    _ => &[],
                };
                for (r, case) in runs.iter().zip(cases) {
                    let expected = case.output.as_str().unwrap_or_default();
                    verdicts.push(match r.status {
                        RunStatus::Ok if r.stdout_truncated => Some("output limit exceeded".into()),
                        RunStatus::Ok if harness::outputs_match(expected, &r.stdout, tol) => None,
                        RunStatus::Ok => Some(wrong_answer(expected, &r.stdout)),
                        _ => Some(run_reason(r)),
                    });
                }
                let failed = || runs.iter().zip(&verdicts).filter(|(_, v)| v.is_some());
                let first_bad = failed()
                    .find(|(r, _)| !r.stderr.trim().is_empty())
                    .or_else(|| failed().next())
                    .map(|(r, _)| r)
                    .or(runs.first());
                let status = runs
                    .iter()
                    .map(|r| r.status)
                    .find(|s| *s != RunStatus::Ok)
                    .unwrap_or(RunStatus::Ok);
                (
                    status,
                    first_bad.map_or(String::new(), |r| tail(&r.stderr, STDERR_TAIL).to_string()),
                )
            }
            _ => {
                let run = &runs[0];
                let reports: Reports = harness::parse_reports(&run.stdout, &plan.nonce);
                if !reports.started {
                    // No solution code runs before this line: the harness or the interpreter
                    // failed (or the limits cannot even fit an interpreter start).
                    return self.decided(
                        Status::Error,
                        format!(
                            "the test harness did not start ({}): {}",
                            run.status,
                            cut(tail(&run.stderr, STDERR_TAIL).trim(), STDERR_TAIL)
                        ),
                        json!({"format": spec.format(), "sandbox_status": run.status.as_str()}),
                    );
                }
                setup_error = reports.setup_error.clone();
                let mut missing_seen = false;
                for i in 0..n {
                    let v = match reports.tests.get(&i) {
                        Some(r) if r.ok => self.check_report(spec, plan.kind, i, r, tol),
                        Some(r) => Some(r.reason.clone().unwrap_or_else(|| "failed".into())),
                        None => Some(match &setup_error {
                            Some(e) if i == 0 => format!("the solution failed to load: {e}"),
                            Some(_) => "the solution failed to load".into(),
                            None if missing_seen => {
                                "not run (an earlier test did not finish)".into()
                            }
                            None => {
                                missing_seen = true;
                                run_reason(run)
                            }
                        }),
                    };
                    verdicts.push(v);
                }
                (run.status, tail(&run.stderr, STDERR_TAIL).to_string())
            }
        };
        let passed = verdicts.iter().filter(|v| v.is_none()).count();
        let failures: Vec<Value> = verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.as_ref()
                    .map(|r| json!({"test": i, "reason": cut(r, REASON_CHARS)}))
            })
            .take(MAX_FAILURES)
            .collect();
        let wall_ms: f64 = runs.iter().map(|r| r.wall_ms).sum();
        let mut details = json!({
            "format": spec.format(),
            "backend": self.backend(),
            "extraction": extraction,
            "tests_total": n,
            "tests_passed": passed,
            "failures": failures,
            "sandbox_status": sandbox_status.as_str(),
            "wall_ms": (wall_ms * 10.0).round() / 10.0,
            "stderr_tail": stderr_tail,
        });
        if let (Some(e), Some(d)) = (setup_error, details.as_object_mut()) {
            d.insert("setup_error".into(), json!(cut(&e, REASON_CHARS)));
        }
        let m = &self.cfg.mapping;
        if n > 0 && passed == n {
            return Outcome::with_status(Status::Correct, m, details);
        }
        let score = match self.cfg.scoring {
            Scoring::AllOrNothing => m.incorrect,
            Scoring::Fraction => {
                m.incorrect + (m.correct - m.incorrect) * passed as f32 / n.max(1) as f32
            }
        };
        Outcome {
            score,
            status: Status::Incorrect,
            details,
        }
    }

    /// The verdict of a test its harness reported `ok`: compared here for `io` tests.
    fn check_report(
        &self,
        spec: &TestSpec,
        kind: PlanKind,
        i: usize,
        r: &harness::TestReport,
        tol: Option<f64>,
    ) -> Option<String> {
        let TestSpec::Io { cases, .. } = spec else {
            return None;
        };
        let expected = &cases.get(i)?.output;
        match kind {
            PlanKind::HarnessCalls => {
                let got = r.result.as_ref().unwrap_or(&Value::Null);
                (!harness::call_matches(expected, got, tol))
                    .then(|| wrong_answer(&expected.to_string(), &got.to_string()))
            }
            PlanKind::HarnessStdin => {
                let got = r.stdout.as_deref().unwrap_or_default();
                let exp = expected.as_str().unwrap_or_default();
                (!harness::outputs_match(exp, got, tol)).then(|| wrong_answer(exp, got))
            }
            _ => None,
        }
    }
}

impl Verifier for CodeVerifier {
    fn name(&self) -> &str {
        "code"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        CodeVerifier::verify_batch(self, std::slice::from_ref(input))
            .pop()
            .unwrap_or_else(|| Outcome::error(&self.cfg.mapping, "no outcome"))
    }

    /// The inherent [`CodeVerifier::verify_batch`]: every program of the batch goes to the
    /// sandbox at once.
    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        // The path names the inherent method (inherent methods come first): not a recursion.
        CodeVerifier::verify_batch(self, inputs)
    }

    /// Programs of a batch run in the sandbox at once.
    fn batch_hint(&self) -> usize {
        8
    }
}

fn factory(settings: &Map<String, Value>) -> Result<Arc<dyn Verifier>> {
    let cfg: CodeConfig = rlvr_verify::registry::settings(settings, "code")?;
    cfg.validate()?;
    let runner = runner_for(cfg.backend).map_err(|msg| VerifyError::Config {
        field: "code.backend".into(),
        msg,
    })?;
    Ok(Arc::new(CodeVerifier::new(cfg, runner)?))
}

/// Registers this verifier as `code` (idempotent). Its sandbox comes from the factory
/// installed with [`set_backend_factory`].
pub fn register() -> Result<()> {
    rlvr_verify::registry::register("code", factory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A sandbox that runs nothing: it counts the programs it was given and fails them.
    struct Counting(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl rlvr_sandbox::Sandbox for Counting {
        fn kind(&self) -> BackendKind {
            BackendKind::Wasm
        }
        async fn run(&self, _program: Program, _limits: Limits) -> RunResult {
            self.0.fetch_add(1, Ordering::Relaxed);
            RunResult::sandbox_error(BackendKind::Wasm, "counting sandbox")
        }
    }

    #[test]
    fn the_trait_batch_is_the_inherent_one() {
        let runs = Arc::new(AtomicUsize::new(0));
        let runner = BlockingRunner::new(Arc::new(Counting(runs.clone())), 1).unwrap();
        let v = CodeVerifier::new(CodeConfig::default(), Arc::new(runner)).unwrap();
        let v: &dyn Verifier = &v;
        let gt = json!({"format": "asserts", "tests": ["assert f() == 1"]});
        let meta = Value::Null;
        let inputs: Vec<VerifyInput> = [
            "```python\ndef f():\n    return 1\n```",
            "   ",
            "def f(): return 2",
        ]
        .iter()
        .map(|r| VerifyInput {
            response: r,
            ground_truth: &gt,
            metadata: &meta,
        })
        .collect();
        // Through the trait object: no recursion, one outcome per input, in order.
        let out = v.verify_batch(&inputs);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].status, Status::Invalid, "{:?}", out[1]);
        assert_eq!(out[0].status, Status::Error, "{:?}", out[0]);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        assert!(v.verify_batch(&[]).is_empty());
        assert_eq!(v.verify(&inputs[1]).status, Status::Invalid);
    }
}
