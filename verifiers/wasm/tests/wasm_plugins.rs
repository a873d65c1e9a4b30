//! WASM verifier plugins end to end: the C example (`examples/exact_match.c`, built by
//! `build-examples.sh`) through the registry, composition with a built-in verifier, a batch of
//! concurrent calls, and a deliberately faulty plugin (`tests/faulty.c`) whose every failure
//! mode becomes an `error` outcome quickly, without harming the host. Needs clang-14 and
//! wasi-libc: skipped without them, except under CI=true where their absence fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rlvr_verifier_wasm::{register, WasmPluginConfig, WasmPluginVerifier};
use rlvr_verify::registry::from_spec;
use rlvr_verify::{Outcome, Status, Verifier, VerifyInput};
use serde_json::{json, Value};

const INSTALL: &str = "apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32";

struct Built {
    example: PathBuf,
    faulty: PathBuf,
}

/// Builds both plugins once per test binary into `$CARGO_TARGET_TMPDIR/wasm-plugins`;
/// `None` (after printing SKIPPED) when the toolchain is missing outside CI.
fn plugins() -> Option<&'static Built> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let have_clang = Command::new("clang-14")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !have_clang || !Path::new("/usr/include/wasm32-wasi").is_dir() {
                assert!(
                    !rlvr_conformance::in_ci(),
                    "clang-14 or wasi-libc is missing (CI=true: required): {INSTALL}"
                );
                eprintln!("SKIPPED: clang-14 or wasi-libc is missing: {INSTALL}");
                return None;
            }
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-plugins");
            std::fs::create_dir_all(&out).unwrap();
            let st = Command::new("bash")
                .arg(manifest.join("build-examples.sh"))
                .arg(&out)
                .status()
                .expect("running build-examples.sh");
            assert!(st.success(), "build-examples.sh failed");
            let faulty = out.join("faulty.wasm");
            let st = Command::new("clang-14")
                .args(["--target=wasm32-wasi", "-O2", "-o"])
                .arg(&faulty)
                .arg(manifest.join("tests/faulty.c"))
                .status()
                .expect("running clang-14");
            assert!(st.success(), "building tests/faulty.c failed");
            Some(Built {
                example: out.join("exact_match.wasm"),
                faulty,
            })
        })
        .as_ref()
}

fn check(v: &dyn Verifier, response: &str, gt: Value) -> Outcome {
    let meta = json!({"prompt": "What is 6*7?", "data_source": "test"});
    v.verify(&VerifyInput {
        response,
        ground_truth: &gt,
        metadata: &meta,
    })
}

#[test]
fn example_scores_through_the_registry() {
    let Some(b) = plugins() else { return };
    register().unwrap();
    register().unwrap(); // idempotent
    let path = b.example.display().to_string();

    // By spec, with a config for the plugin.
    let v = from_spec(&json!({"type": format!("wasm:{path}"), "timeout_ms": 5000})).unwrap();
    assert_eq!(v.name(), "wasm");
    let o = check(
        v.as_ref(),
        "Let me think.\nThe answer:\n  42  \n\n",
        json!(" 42"),
    );
    assert_eq!((o.status, o.score), (Status::Correct, 1.0), "{o:?}");
    assert_eq!(o.details["answer"], "42");
    assert_eq!(o.details["expected"], "42");
    let o = check(v.as_ref(), "41", json!("42"));
    assert_eq!((o.status, o.score), (Status::Incorrect, 0.0), "{o:?}");
    let o = check(v.as_ref(), " \n\t\n", json!("42"));
    assert_eq!(o.status, Status::Invalid, "{o:?}");
    let o = check(v.as_ref(), "", json!("42"));
    assert_eq!(o.status, Status::Invalid, "{o:?}");
    let o = check(v.as_ref(), "42", json!({"answer": "42"}));
    assert_eq!(o.status, Status::Error, "{o:?}");
    assert!(o.details["reason"]
        .as_str()
        .unwrap()
        .contains("ground_truth must be a string"));

    // Case: exact by default, folded with config.ignore_case.
    assert_eq!(
        check(v.as_ref(), "PARIS", json!("Paris")).status,
        Status::Incorrect
    );
    let ci =
        from_spec(&json!({"type": "wasm", "path": path, "config": {"ignore_case": true}})).unwrap();
    let o = check(ci.as_ref(), "so...\nPARIS", json!("Paris"));
    assert_eq!(o.status, Status::Correct, "{o:?}");
    assert_eq!(o.details["ignore_case"], true);

    // Escapes both ways: \uXXXX (a surrogate pair), quotes, backslashes, control characters.
    let tricky = "é \"q\" \\ 𝄞\u{1}";
    let o = check(ci.as_ref(), &format!("x\n{tricky}"), json!(tricky));
    assert_eq!(o.status, Status::Correct, "{o:?}");
    assert_eq!(o.details["answer"], tricky);
    // Nested metadata is skipped properly.
    let meta = json!({"extra_info": {"a": [1, {"b": "}]\""}, null, true, -1.5e3]}, "z": "{"});
    let gt = json!("7");
    let o = v.verify(&VerifyInput {
        response: "7",
        ground_truth: &gt,
        metadata: &meta,
    });
    assert_eq!(o.status, Status::Correct, "{o:?}");

    // By plain name.
    let named = rlvr_verify::registry::build(&format!("wasm:{path}")).unwrap();
    assert_eq!(
        check(named.as_ref(), "a\n42", json!("42")).status,
        Status::Correct
    );
    assert!(rlvr_verify::registry::is_known(&format!("wasm:{path}")));
    assert!(rlvr_verify::registry::names().contains(&"wasm".to_string()));
}

#[test]
fn composes_with_builtin_verifiers() {
    let Some(b) = plugins() else { return };
    register().unwrap();
    let path = b.example.display().to_string();
    let v = from_spec(&json!({"type": "weighted_sum", "parts": [
        {"weight": 0.8, "verifier": format!("wasm:{path}")},
        {"weight": 0.2, "verifier": "format"}
    ]}))
    .unwrap();
    let good = check(v.as_ref(), "The answer is\n42", json!("42"));
    let bad = check(v.as_ref(), "The answer is\n41", json!("42"));
    assert!(good.score > bad.score, "{good:?} vs {bad:?}");
    assert!(good.score >= 0.8 - 1e-6, "{good:?}");
    let gated = from_spec(&json!({"type": "gated", "gate": "format",
                                  "inner": {"type": "wasm", "path": path}}))
    .unwrap();
    let o = check(gated.as_ref(), "42", json!("42"));
    assert!(matches!(
        o.status,
        Status::Correct | Status::Incorrect | Status::Invalid
    ));
}

#[test]
fn every_faulty_mode_is_an_error_quickly() {
    let Some(b) = plugins() else { return };
    let modes: &[(&str, &str, &str)] = &[
        // (mode, expected sandbox status, expected words in the reason)
        ("trap", "killed", "trapped: wasm `unreachable`"),
        ("loop", "timeout", "timed out"),
        ("garbage", "ok", "not one JSON object"),
        ("flood", "output_limit", "bytes of output"),
        ("oom", "out_of_memory", "memory limit"),
        ("exit", "nonzero_exit", "exited with code 3"),
        ("badscore", "ok", "`score` is not a number"),
        ("nan", "ok", "not one JSON object"),
        ("badstatus", "ok", "`status` must be"),
        ("sleep", "timeout", "timed out"),
    ];
    let t0 = Instant::now();
    let handles: Vec<_> = modes
        .iter()
        .map(|&(mode, sandbox, words)| {
            let path = b.faulty.clone();
            std::thread::spawn(move || {
                let v = WasmPluginVerifier::new(WasmPluginConfig {
                    config: json!({"mode": mode}).as_object().unwrap().clone(),
                    timeout_ms: 1000,
                    memory_mb: 16,
                    output_bytes: 4096,
                    // the loop must meet the deadline, not the fuel budget (tested below)
                    fuel: if mode == "loop" {
                        u64::MAX / 2
                    } else {
                        2_000_000_000
                    },
                    mapping: rlvr_verify::RewardMapping {
                        error: -1.0,
                        ..Default::default()
                    },
                    ..WasmPluginConfig::for_path(&path)
                })
                .unwrap();
                let start = Instant::now();
                let o = check(&v, "42", json!("42"));
                let took = start.elapsed();
                assert_eq!((o.status, o.score), (Status::Error, -1.0), "{mode}: {o:?}");
                let d = &o.details;
                assert_eq!(d["sandbox_status"], sandbox, "{mode}: {o:?}");
                let reason = d["reason"].as_str().unwrap();
                assert!(reason.contains(words), "{mode}: {reason}");
                assert!(
                    d["plugin"].as_str().unwrap().ends_with("faulty.wasm"),
                    "{d}"
                );
                assert!(
                    d.get("exit_code").is_some() && d["stderr_tail"].is_string(),
                    "{d}"
                );
                assert!(took < Duration::from_secs(8), "{mode} took {took:?}");
                (mode, took, o)
            })
        })
        .collect();
    for h in handles {
        let (mode, took, o) = h.join().expect("no panic");
        eprintln!("{mode:>9}: {took:>10.1?} {}", o.details["reason"]);
        if mode == "exit" {
            assert_eq!(o.details["exit_code"], 3);
        }
        if mode == "trap" {
            assert!(
                o.details["reason"].as_str().unwrap().contains("trap"),
                "{o:?}"
            );
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());

    // Fuel: a short budget stops the loop before the deadline.
    let v = WasmPluginVerifier::new(WasmPluginConfig {
        config: json!({"mode": "loop"}).as_object().unwrap().clone(),
        fuel: 10_000_000,
        timeout_ms: 10_000,
        ..WasmPluginConfig::for_path(&b.faulty)
    })
    .unwrap();
    let start = Instant::now();
    let o = check(&v, "x", json!("x"));
    assert_eq!(o.status, Status::Error);
    assert_eq!(o.details["sandbox_status"], "out_of_fuel", "{o:?}");
    assert!(o.details["reason"].as_str().unwrap().contains("fuel"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // The host is unaffected: the same module still answers, and so does the example.
    let ok = WasmPluginVerifier::new(WasmPluginConfig {
        config: json!({"mode": "ok"}).as_object().unwrap().clone(),
        ..WasmPluginConfig::for_path(&b.faulty)
    })
    .unwrap();
    let o = check(&ok, "x", json!("x"));
    assert_eq!((o.status, o.score), (Status::Correct, 0.5), "{o:?}");
    assert_eq!(o.details, json!({"mode": "ok"}));
    let ex = WasmPluginVerifier::new(WasmPluginConfig::for_path(&b.example)).unwrap();
    assert_eq!(check(&ex, "42", json!("42")).status, Status::Correct);
}

#[test]
fn plugins_cannot_touch_the_filesystem() {
    let Some(b) = plugins() else { return };
    let v = WasmPluginVerifier::new(WasmPluginConfig {
        config: json!({"mode": "readfile"}).as_object().unwrap().clone(),
        ..WasmPluginConfig::for_path(&b.faulty)
    })
    .unwrap();
    let o = check(&v, "x", json!("x"));
    assert_ne!(
        o.status,
        Status::Correct,
        "the plugin read or wrote a file: {o:?}"
    );
    assert_eq!(o.details["read"], false, "{o:?}");
    assert_eq!(o.details["wrote"], false, "{o:?}");
    assert!(!Path::new("/tmp/rlvr-wasm-plugin-escape").exists());
}

#[test]
fn bad_modules_are_config_errors_naming_the_path() {
    let Some(b) = plugins() else { return };
    register().unwrap();
    // Missing.
    let e = from_spec(&json!("wasm:nope/missing-plugin.wasm"))
        .err()
        .expect("missing module refused");
    let msg = e.to_string();
    assert!(
        msg.contains("wasm.path") && msg.contains("nope/missing-plugin.wasm"),
        "{msg}"
    );
    // Random bytes.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    let junk_bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&junk, junk_bytes).unwrap();
    let e = WasmPluginVerifier::new(WasmPluginConfig::for_path(&junk)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("junk.wasm") && msg.contains("not a usable WASI plugin"),
        "{msg}"
    );
    // A directory.
    let e = WasmPluginVerifier::new(WasmPluginConfig::for_path(dir.path())).unwrap_err();
    assert!(e.to_string().contains("not a file"), "{e}");
    // A valid module that is not a command (no `_start`): a minimal module, `(module)`.
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x01\0\0\0").unwrap();
    let e = WasmPluginVerifier::new(WasmPluginConfig::for_path(&empty)).unwrap_err();
    assert!(e.to_string().contains("_start"), "{e}");
    // Contradicting path and target; unknown settings.
    let e = from_spec(&json!({"type": format!("wasm:{}", b.example.display()),
                              "path": "other.wasm"}))
    .err()
    .unwrap();
    assert!(e.to_string().contains("both"), "{e}");
    let e = from_spec(&json!({"type": "wasm", "path": b.example, "timeout": 5}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("wasm.timeout"), "{e}");
}

#[test]
fn a_batch_runs_concurrently_and_is_fast() {
    let Some(b) = plugins() else { return };
    let v = WasmPluginVerifier::new(WasmPluginConfig {
        concurrency: 4,
        ..WasmPluginConfig::for_path(&b.example)
    })
    .unwrap();
    let gts: Vec<Value> = (0..32).map(|i| json!(format!("{i}"))).collect();
    let responses: Vec<String> = (0..32).map(|i| format!("thinking...\n{i}")).collect();
    let meta = json!({});
    let inputs: Vec<VerifyInput> = (0..32)
        .map(|i| VerifyInput {
            response: &responses[i],
            ground_truth: &gts[i],
            metadata: &meta,
        })
        .collect();
    let out = v.verify_batch(&inputs);
    assert_eq!(out.len(), 32);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.status, Status::Correct, "{i}: {o:?}");
        assert_eq!(o.details["answer"], i.to_string());
    }

    // Latency and fuel per call (reported with --nocapture).
    let n = 200;
    let runs = v.run_batch(&vec![inputs[7]; n]);
    assert!(runs.iter().all(|r| r.outcome.status == Status::Correct));
    let t0 = Instant::now();
    for _ in 0..n {
        assert_eq!(v.verify(&inputs[7]).status, Status::Correct);
    }
    let seq = t0.elapsed();
    let t0 = Instant::now();
    let batch = v.run_batch(&vec![inputs[7]; n]);
    let par = t0.elapsed();
    let fuel: Vec<u64> = batch.iter().filter_map(|r| r.fuel_used).collect();
    let mean_wall = batch.iter().map(|r| r.wall_ms).sum::<f64>() / n as f64;
    eprintln!(
        "exact_match: {n} sequential calls {:.3} ms/call; batch of {n} (concurrency 4) {:.3} ms/call; \
         run wall {mean_wall:.3} ms; fuel/call {}..{}; load {:.1} ms",
        seq.as_secs_f64() * 1e3 / n as f64,
        par.as_secs_f64() * 1e3 / n as f64,
        fuel.iter().min().unwrap(),
        fuel.iter().max().unwrap(),
        v.load_ms(),
    );
    assert_eq!(fuel.len(), n);
}

/// The example's JSON reader and writer: random strings with quotes, backslashes, control
/// characters and non-ASCII text survive the round trip (request → plugin → details).
#[test]
fn example_round_trips_any_text() {
    let Some(b) = plugins() else { return };
    let v = WasmPluginVerifier::new(WasmPluginConfig::for_path(&b.example)).unwrap();
    const POOL: &[char] = &[
        'a', 'Z', '0', ' ', ' ', '"', '\\', '/', '\n', '\r', '\t', '\u{0}', '\u{1}', '\u{b}',
        '\u{c}', '\u{1f}', '\u{7f}', 'é', '€', '𝄞', '\u{2028}', '{', '}', '[', ']', ':', ',',
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}');
    let responses: Vec<String> = (0..64)
        .map(|_| {
            let len = (next() % 40) as usize;
            (0..len)
                .map(|_| POOL[(next() % POOL.len() as u64) as usize])
                .collect()
        })
        .collect();
    let expected: Vec<Value> = responses
        .iter()
        .map(|r| {
            let last = r
                .split('\n')
                .map(|l| l.trim_matches(is_space))
                .rfind(|l| !l.is_empty())
                .unwrap_or("");
            json!(last)
        })
        .collect();
    let meta =
        json!({"extra_info": {"nested": [responses[0].clone(), {"k": responses[1].clone()}]}});
    let inputs: Vec<VerifyInput> = responses
        .iter()
        .zip(&expected)
        .map(|(r, e)| VerifyInput {
            response: r,
            ground_truth: e,
            metadata: &meta,
        })
        .collect();
    for ((o, r), e) in v
        .verify_batch(&inputs)
        .iter()
        .zip(&responses)
        .zip(&expected)
    {
        if e == "" {
            assert_eq!(o.status, Status::Invalid, "{r:?}: {o:?}");
        } else {
            assert_eq!(o.status, Status::Correct, "{r:?}: {o:?}");
            assert_eq!(&o.details["answer"], e, "{r:?}");
            assert_eq!(&o.details["expected"], e, "{r:?}");
        }
    }
}

/// A memory cap below the module's initial memory is an error naming the setting.
#[test]
fn a_cap_below_the_initial_memory_is_an_error() {
    let Some(b) = plugins() else { return };
    let v = WasmPluginVerifier::new(WasmPluginConfig {
        config: json!({"mode": "ok"}).as_object().unwrap().clone(),
        memory_mb: 1,
        ..WasmPluginConfig::for_path(&b.faulty)
    })
    .unwrap();
    let o = check(&v, "x", json!("x"));
    assert_eq!(o.status, Status::Error, "{o:?}");
    let reason = o.details["reason"].as_str().unwrap();
    assert!(reason.contains("memory_mb = 1 MiB"), "{reason}");
}
