//! The harness under the real CPython/WASI sandbox, when its interpreter is built (skipped
//! otherwise: `sandbox/wasm/build-cpython.sh`).

use std::sync::Arc;

use rlvr_code::{CodeConfig, CodeVerifier, IoMode, Scoring};
use rlvr_sandbox::wasm::{WasmConfig, WasmSandbox};
use rlvr_sandbox::{BlockingRunner, SandboxError};
use rlvr_verify::{Status, VerifyInput};
use serde_json::{json, Value};

fn wasm_runner() -> Option<Arc<BlockingRunner>> {
    match WasmSandbox::new(&WasmConfig::default()) {
        Ok(sb) => Some(Arc::new(BlockingRunner::new(Arc::new(sb), 2).unwrap())),
        Err(SandboxError::InterpreterMissing(why)) => {
            if rlvr_conformance::in_ci() {
                panic!("{why} (CI=true: the sandbox tests must not be skipped)");
            }
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_format_under_wasi() {
    let Some(runner) = wasm_runner() else {
        return;
    };
    let check = |cfg: CodeConfig, items: &[(&str, Value, Status, usize)]| {
        let v = CodeVerifier::new(cfg, runner.clone()).unwrap();
        let inputs: Vec<VerifyInput> = items
            .iter()
            .map(|(r, gt, _, _)| VerifyInput {
                response: r,
                ground_truth: gt,
                metadata: &Value::Null,
            })
            .collect();
        for (o, (r, _, want, passed)) in v.verify_batch(&inputs).iter().zip(items) {
            eprintln!("{}", o.details);
            assert_eq!(o.status, *want, "{r}: {}", o.details);
            assert_eq!(o.details["tests_passed"], *passed, "{r}: {}", o.details);
            assert_eq!(o.details["backend"], "wasm");
        }
    };
    let he = json!({"format": "humaneval", "prompt": "def add(a, b):\n    \"\"\"Adds.\"\"\"\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"});
    let asserts = json!({"format": "asserts", "setup": "import math",
        "tests": ["assert f(4) == 2", "assert f(9) == 4", "assert f(16) == 4"]});
    let stdin = json!({"format": "io", "inputs": ["2\n1 2\n", "1\n5\n"], "outputs": ["3\n", "5"]});
    let call = json!({"format": "io", "fn_name": "f", "inputs": ["[1, 2]\n3", "[]\n0"],
        "outputs": ["[1, 2, 3]", "[0]"]});
    let items = [
        ("    return a + b\n", he.clone(), Status::Correct, 1),
        ("    import os; os._exit(0)\n", he.clone(), Status::Incorrect, 0),
        ("def f(x):\n    print('x')\n    return math.isqrt(x)", asserts, Status::Incorrect, 2),
        ("import sys\nsys.stdin.buffer.readline()\nprint(sum(map(int, sys.stdin.buffer.readline().split())), ' ')", stdin.clone(), Status::Correct, 2),
        ("def f(xs, x):\n    return tuple(xs + [x])", call, Status::Correct, 2),
        ("def f(x):\n  return f(x)", json!({"format": "asserts", "tests": ["assert f(1)", "assert True"]}), Status::Incorrect, 1),
    ];
    let cfg = CodeConfig {
        scoring: Scoring::Fraction,
        ..CodeConfig::default()
    };
    check(cfg.clone(), &items);
    let single = CodeConfig {
        io_mode: IoMode::Single,
        ..cfg.clone()
    };
    check(single, &items[3..4]);
    // a loop runs into the sandbox's limit (WASI has no per-test timer)
    let fast = CodeConfig {
        timeout_ms: 1500,
        ..cfg
    };
    check(
        fast,
        &[("    while True:\n        pass\n", he, Status::Incorrect, 0)],
    );
}
