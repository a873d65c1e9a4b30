//! The `code` verifier end to end, with a native `python3` standing in for the sandbox.

mod common;

use common::{check, native_runner, verifier, Broken};
use rlvr_code::extract::{extract_code, ExtractConfig, Source, Strategy};
use rlvr_code::{CodeConfig, CodeVerifier, IoMode, Scoring};
use rlvr_verify::{Status, Verifier, VerifyInput};
use serde_json::{json, Value};
use std::sync::Arc;

fn cfg() -> CodeConfig {
    CodeConfig::default()
}

fn failures(o: &rlvr_verify::Outcome) -> Vec<String> {
    o.details["failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["reason"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn extraction() {
    let c = ExtractConfig::default();
    let text =
        "Here:\n```python\na = 1\n```\nthen\n```\nb = 2\n```\nand output:\n```text\n3\n```\n";
    assert_eq!(extract_code(text, &c).unwrap().code, "b = 2");
    let first = ExtractConfig {
        strategy: Strategy::First,
        ..c
    };
    assert_eq!(extract_code(text, &first).unwrap().code, "a = 1");
    let all = ExtractConfig {
        strategy: Strategy::All,
        ..c
    };
    assert_eq!(extract_code(text, &all).unwrap().code, "a = 1\n\nb = 2");
    let raw = ExtractConfig {
        strategy: Strategy::Raw,
        ..c
    };
    assert!(extract_code(text, &raw).unwrap().code.starts_with("Here:"));
    // tags: py, Python3; the reasoning block is dropped
    let t = "<think>maybe\n```py\nwrong = 1\n```\n</think>\nFinal:\n```Python3\nright = 1\n```";
    let e = extract_code(t, &first).unwrap();
    assert_eq!((e.code.as_str(), e.source), ("right = 1", Source::Fenced));
    // no fence: the raw text, indentation kept (a HumanEval body)
    let e = extract_code("    return x\n\n", &c).unwrap();
    assert_eq!((e.code.as_str(), e.source), ("    return x", Source::Raw));
    let strict = ExtractConfig {
        fallback_raw: false,
        ..c
    };
    assert!(extract_code("    return x", &strict).is_none());
    // fences, but none Python; empty blocks; nothing after the reasoning
    assert!(extract_code("```bash\nls\n```", &c).is_none());
    assert!(extract_code("```python\n\n```", &c).is_none());
    assert!(extract_code("<think>```python\nx = 1\n```</think>  ", &c).is_none());
    // an unclosed fence (truncated generation) runs to the end
    assert_eq!(
        extract_code("```python\nx = 1\n", &c).unwrap().code,
        "x = 1"
    );
}

#[test]
fn no_code_is_invalid() {
    let v = verifier(cfg());
    let gt = json!({"format": "asserts", "tests": ["assert True"]});
    for r in ["", "   \n", "```python\n```", "<think>still thinking"] {
        let o = check(&v, r, &gt);
        assert_eq!(o.status, Status::Invalid, "{r:?}: {o:?}");
        assert_eq!(o.details["reason"], "no code found in the response");
    }
}

#[test]
fn humaneval_real_problems() {
    let Some(path) = rlvr_conformance::require_shared("datasets/humaneval/test.jsonl") else {
        return;
    };
    let rows = rlvr_conformance::read_jsonl(&path);
    // 10 and 38 have helper functions in the prompt, 32 imports math.
    let picked: Vec<&Value> = [
        "HumanEval/0",
        "HumanEval/10",
        "HumanEval/32",
        "HumanEval/38",
        "HumanEval/53",
    ]
    .iter()
    .map(|id| rows.iter().find(|r| r["task_id"] == *id).expect(id))
    .collect();
    let mut gts = Vec::new();
    let mut responses = Vec::new();
    for r in &picked {
        let gt = json!({"format": "humaneval", "prompt": r["prompt"], "test": r["test"],
                        "entry_point": r["entry_point"]});
        let prompt = r["prompt"].as_str().unwrap();
        let body = r["canonical_solution"].as_str().unwrap();
        // 1. the body as a raw continuation, 2. `return None`, 3. the full function fenced
        // (defines the entry point: only the prompt's head is prepended), 4. as a JSON string
        responses.push((gt.clone(), body.to_string(), Status::Correct));
        responses.push((
            gt.clone(),
            "    return None\n".to_string(),
            Status::Incorrect,
        ));
        let head = &prompt[..prompt
            .find(&format!("def {}", r["entry_point"].as_str().unwrap()))
            .unwrap()];
        let full = format!("Sure.\n```python\n{}{}```\n", &prompt[head.len()..], body);
        responses.push((gt.clone(), full, Status::Correct));
        gts.push(gt);
    }
    let v = verifier(cfg());
    let strs: Vec<Value> = gts.iter().map(|g| Value::String(g.to_string())).collect();
    let mut inputs: Vec<VerifyInput> = responses
        .iter()
        .map(|(gt, resp, _)| VerifyInput {
            response: resp,
            ground_truth: gt,
            metadata: &Value::Null,
        })
        .collect();
    inputs.extend(strs.iter().zip(&picked).map(|(gt, r)| VerifyInput {
        response: r["canonical_solution"].as_str().unwrap(),
        ground_truth: gt,
        metadata: &Value::Null,
    }));
    let outs = v.verify_batch(&inputs);
    assert_eq!(outs.len(), 20);
    for (k, o) in outs.iter().enumerate() {
        let want = responses.get(k).map_or(Status::Correct, |r| r.2);
        assert_eq!(o.status, want, "case {k}: {}", o.details);
        assert_eq!(o.details["format"], "humaneval");
        assert_eq!(o.details["tests_total"], 1);
        if want == Status::Incorrect {
            assert_eq!(o.score, 0.0);
            assert!(failures(o)[0].contains("Error"), "{}", o.details);
        } else {
            assert_eq!(o.score, 1.0);
        }
    }
}

fn humaneval_gt() -> Value {
    json!({"format": "humaneval",
           "prompt": "def add(a, b):\n    \"\"\"Adds.\"\"\"\n",
           "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
           "entry_point": "add"})
}

#[test]
fn humaneval_exit_tricks_and_main_blocks() {
    let v = verifier(cfg());
    let gt = humaneval_gt();
    // exiting before the tests run is not a pass (the concatenated program would exit 0)
    for hack in [
        "    import sys; sys.exit(0)\n",
        "    import os; os._exit(0)\n",
    ] {
        let o = check(&v, hack, &gt);
        assert_eq!(o.status, Status::Incorrect, "{hack}: {}", o.details);
    }
    let o = check(&v, "import os\nos._exit(0)\n", &gt);
    assert_eq!(o.status, Status::Incorrect, "{}", o.details);
    assert!(
        failures(&o)[0].contains("exited before reporting"),
        "{}",
        o.details
    );
    // a demo under `if __name__ == "__main__"` that reads stdin does not run
    let o = check(
        &v,
        "```python\ndef add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    print(add(int(input()), 1))\n```",
        &gt,
    );
    assert_eq!(o.status, Status::Correct, "{}", o.details);
    // failing assertion: the reason shows the line
    let o = check(&v, "    return a - b\n", &gt);
    assert!(
        failures(&o)[0].starts_with("AssertionError"),
        "{}",
        o.details
    );
    assert!(
        failures(&o)[0].contains("assert candidate(2, 3) == 5"),
        "{}",
        o.details
    );
    // a syntax error is a failed load
    let o = check(&v, "    return (a +\n", &gt);
    assert_eq!(o.status, Status::Incorrect);
    assert!(
        o.details["setup_error"]
            .as_str()
            .unwrap()
            .contains("SyntaxError"),
        "{}",
        o.details
    );
}

#[test]
fn asserts_fraction() {
    let v = verifier(CodeConfig {
        scoring: Scoring::Fraction,
        ..cfg()
    });
    let gt = json!({"format": "asserts", "setup": "import math",
                    "tests": ["assert sq(2) == 4", "assert sq(3) == 10", "assert sq(math.isqrt(16)) == 16"]});
    let o = check(
        &v,
        "```python\ndef sq(x):\n    print('noise')\n    return x * x\n```",
        &gt,
    );
    assert_eq!(o.status, Status::Incorrect);
    assert!((o.score - 2.0 / 3.0).abs() < 1e-6, "{}", o.score);
    assert_eq!(o.details["tests_passed"], 2);
    assert_eq!(o.details["tests_total"], 3);
    assert_eq!(o.details["failures"][0]["test"], 1);
    assert!(failures(&o)[0].contains("AssertionError"));
    assert_eq!(o.details["sandbox_status"], "ok");
    let o = check(
        &v,
        "def sq(x): return x * x",
        &json!({"format": "asserts", "tests": ["assert sq(2) == 4"]}),
    );
    assert_eq!((o.status, o.score), (Status::Correct, 1.0));
    // all-or-nothing: the same partial pass scores 0
    let o = check(&verifier(cfg()), "def sq(x): return x * x", &gt);
    assert_eq!((o.status, o.score), (Status::Incorrect, 0.0));
    // an exception in one test does not hide the others
    let o = check(
        &v,
        "def sq(x):\n    if x == 2: raise ValueError('two')\n    return x * x",
        &gt,
    );
    assert_eq!(o.details["tests_passed"], 1);
    assert!(
        failures(&o)[0].starts_with("ValueError: two"),
        "{}",
        o.details
    );
}

#[test]
fn io_stdin() {
    let gt = json!({"format": "io", "inputs": ["3\n1 2 3\n", "2\n5 5\n", "1\n7\n"],
                    "outputs": ["6\n", "10", "7\n\n"]});
    let good = "```python\nn = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs), '  ')\nprint()\n```";
    let wrong = "import sys\ndata = sys.stdin.buffer.read().split()\nprint(int(data[0]))";
    for mode in [IoMode::Separate, IoMode::Single] {
        let v = verifier(CodeConfig {
            io_mode: mode,
            scoring: Scoring::Fraction,
            ..cfg()
        });
        let o = check(&v, good, &gt);
        assert_eq!(o.status, Status::Correct, "{mode:?}: {}", o.details);
        let o = check(&v, wrong, &gt);
        assert_eq!(o.status, Status::Incorrect, "{mode:?}: {}", o.details);
        assert_eq!(o.details["tests_passed"], 0, "{mode:?}: {}", o.details);
        assert!(
            failures(&o)[0].starts_with("wrong answer: expected \"6\\n\", got \"3\\n\""),
            "{}",
            o.details
        );
        let o = check(&v, "x = int(input())\nprint(1 // (x - 2))", &gt);
        assert_eq!(o.details["tests_passed"], 0, "{mode:?}: {}", o.details);
        assert!(
            failures(&o)[1].contains("ZeroDivisionError"),
            "{mode:?}: {}",
            o.details
        );
        // exit(0) after printing is a normal end
        let o = check(
            &v,
            "import sys\nn = int(input())\nprint(sum(map(int, input().split())))\nsys.exit(0)",
            &gt,
        );
        assert_eq!(o.status, Status::Correct, "{mode:?}: {}", o.details);
    }
    // number tolerance, off by default
    let gt = json!({"format": "io", "inputs": [""], "outputs": ["0.3333333"]});
    let code = "print(1/3)";
    assert_eq!(check(&verifier(cfg()), code, &gt).status, Status::Incorrect);
    let v = verifier(CodeConfig {
        float_tolerance: Some(1e-6),
        ..cfg()
    });
    assert_eq!(check(&v, code, &gt).status, Status::Correct);
}

#[test]
fn io_fn_name() {
    let v = verifier(CodeConfig {
        scoring: Scoring::Fraction,
        ..cfg()
    });
    // LiveCodeBench: newline-separated JSON arguments, a method of class Solution
    let gt = json!({"format": "io", "fn_name": "twoSum",
                    "inputs": ["[2,7,11,15]\n9", "[3,2,4]\n6"], "outputs": ["[0, 1]", "[1, 2]"]});
    let code = "```python\nclass Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n                return (seen[target - x], i)\n            seen[x] = i\n```";
    let o = check(&v, code, &gt);
    assert_eq!(o.status, Status::Correct, "{}", o.details);
    // APPS: argument lists as JSON arrays, expected values wrapped in a list
    let gt = json!({"inputs": [[[1, 2, 3]], [[4]], [[]]], "outputs": [[6], [4], [0]], "fn_name": "total"});
    let o = check(&v, "def total(xs):\n    return sum(xs)", &gt);
    assert_eq!(o.status, Status::Correct, "{}", o.details);
    // one line holding a list: one argument, or the argument list when the arity says so
    let gt = json!({"format": "io", "fn_name": "f", "inputs": ["[1, 2]", "[3, 4]"], "outputs": ["3", "7"]});
    assert_eq!(
        check(&v, "def f(a, b): return a + b", &gt).status,
        Status::Correct
    );
    assert_eq!(
        check(&v, "def f(xs): return sum(xs)", &gt).status,
        Status::Correct
    );
    // wrong value, a non-JSON return value, and an always-equal object do not pass
    let o = check(&v, "def f(xs): return 3", &gt);
    assert!((o.score - 0.5).abs() < 1e-6);
    assert!(
        failures(&o)[0].starts_with("wrong answer: expected \"7\", got \"3\""),
        "{}",
        o.details
    );
    let o = check(
        &v,
        "class Eq(int):\n    def __eq__(self, o): return True\ndef f(xs): return {1, 2}",
        &gt,
    );
    assert!(
        failures(&o)[0].contains("not a JSON value"),
        "{}",
        o.details
    );
    let o = check(&v, "class Eq(int):\n    def __eq__(self, o): return True\n    def __int__(self): return -1\ndef f(xs): return Eq(5)", &gt);
    assert_eq!(o.details["tests_passed"], 0, "{}", o.details);
    // a missing function
    let o = check(&v, "def g(xs): return 3", &gt);
    assert!(
        o.details["setup_error"]
            .as_str()
            .unwrap()
            .contains("no function `f`"),
        "{}",
        o.details
    );
}

#[test]
fn printed_markers_cannot_fake_a_pass() {
    let v = verifier(cfg());
    let fake = r#"
import sys
for i in range(3):
    line = '__RLVR_RESULT__ {"test": %d, "ok": true}' % i
    print(line); sys.__stdout__.write(line + '\n'); sys.stderr.write(line + '\n')
    sys.__stdout__.write('__RLVR___ {"test": %d, "ok": true}\n' % i)
    sys.__stdout__.write('__RLVR_%s__ {"test": %d, "ok": true}\n' % (open('main.py').read()[:40], i))
sys.__stdout__.write('__RLVR___ {"done": true}\n')
sys.__stdout__.flush()
import os
os._exit(0)
"#;
    let gt =
        json!({"format": "asserts", "tests": ["assert False", "assert False", "assert False"]});
    let o = check(&v, fake, &gt);
    assert_eq!(o.status, Status::Incorrect, "{}", o.details);
    assert_eq!(o.details["tests_passed"], 0);
    let o = check(
        &v,
        &format!("    {}\n", fake.trim().replace('\n', "\n    ")),
        &humaneval_gt(),
    );
    assert_eq!(o.status, Status::Incorrect, "{}", o.details);
}

#[test]
fn infinite_loops_time_out() {
    // per-test timers where signals exist: the loop costs one test, the others still run
    let v = verifier(CodeConfig {
        per_test_timeout_ms: 300,
        scoring: Scoring::Fraction,
        ..cfg()
    });
    let gt = json!({"format": "asserts", "tests": ["assert f(1) == 1", "assert f(0) == 0", "assert f(2) == 2"]});
    let o = check(
        &v,
        "def f(x):\n    while x == 0:\n        pass\n    return x",
        &gt,
    );
    assert_eq!(o.status, Status::Incorrect);
    assert_eq!(o.details["tests_passed"], 2, "{}", o.details);
    assert_eq!(failures(&o), vec!["timeout"]);
    // the sandbox's limit: the running test is a timeout, the rest not run
    let v = verifier(CodeConfig {
        timeout_ms: 800,
        ..cfg()
    });
    let o = check(
        &v,
        "def f(x):\n    while x == 0:\n        pass\n    return x",
        &gt,
    );
    assert_eq!(o.status, Status::Incorrect);
    assert_eq!(o.details["sandbox_status"], "timeout");
    assert_eq!(o.details["tests_passed"], 1, "{}", o.details);
    let f = failures(&o);
    assert_eq!(f[0], "timeout");
    assert!(f[1].starts_with("not run"), "{f:?}");
    let o = check(&v, "    while True:\n        pass\n", &humaneval_gt());
    assert_eq!(
        (o.status, o.details["sandbox_status"].as_str()),
        (Status::Incorrect, Some("timeout"))
    );
    assert_eq!(failures(&o), vec!["timeout"]);
    // separate stdin programs: each one has the per-test limit
    let v = verifier(CodeConfig {
        per_test_timeout_ms: 500,
        ..cfg()
    });
    let gt = json!({"format": "io", "inputs": ["1", "0"], "outputs": ["1", "0"]});
    let o = check(&v, "x = int(input())\nwhile x == 0: pass\nprint(x)", &gt);
    assert_eq!(o.details["tests_passed"], 1, "{}", o.details);
    assert_eq!(failures(&o), vec!["timeout"]);
}

#[test]
fn malformed_ground_truth_is_an_error() {
    let v = verifier(cfg());
    let cases = [
        (
            json!({"format": "asserts", "tests": "assert 1"}),
            "ground_truth.tests",
        ),
        (
            json!({"format": "asserts", "tests": []}),
            "ground_truth.tests",
        ),
        (
            json!({"format": "io", "inputs": ["1", "2"], "outputs": ["1"]}),
            "ground_truth.outputs",
        ),
        (
            json!({"format": "io", "fn_name": "f", "inputs": ["not json"], "outputs": ["1"]}),
            "ground_truth.inputs[0]",
        ),
        (
            json!({"format": "humaneval", "prompt": "", "test": ""}),
            "ground_truth.entry_point",
        ),
        (
            json!({"format": "rust", "tests": []}),
            "ground_truth.format",
        ),
        (json!({"nothing": 1}), "ground_truth.format"),
        (json!("{not json"), "ground_truth"),
        (json!(3), "ground_truth"),
    ];
    for (gt, field) in cases {
        let o = check(&v, "x = 1", &gt);
        assert_eq!(o.status, Status::Error, "{gt}");
        let reason = o.details["reason"].as_str().unwrap();
        assert!(reason.starts_with(&format!("{field}:")), "{gt}: {reason}");
    }
}

#[test]
fn sandbox_failure_is_an_error() {
    let runner = Arc::new(rlvr_sandbox::BlockingRunner::new(Arc::new(Broken), 1).unwrap());
    let v = CodeVerifier::new(cfg(), runner).unwrap();
    let o = v.verify(&VerifyInput {
        response: "def f(): pass",
        ground_truth: &json!({"format": "asserts", "tests": ["assert f() is None"]}),
        metadata: &Value::Null,
    });
    assert_eq!(o.status, Status::Error);
    assert_eq!(o.details["backend"], "docker");
    assert!(o.details["reason"]
        .as_str()
        .unwrap()
        .contains("the engine is unreachable"));
}

#[test]
fn a_harness_that_never_starts_is_an_error() {
    let runner = Arc::new(rlvr_sandbox::BlockingRunner::new(Arc::new(common::Silent), 1).unwrap());
    let v = CodeVerifier::new(cfg(), runner).unwrap();
    let o = check(
        &v,
        "x = 1",
        &json!({"format": "asserts", "tests": ["assert x == 1"]}),
    );
    assert_eq!(o.status, Status::Error, "{}", o.details);
    let reason = o.details["reason"].as_str().unwrap();
    assert!(
        reason.contains("did not start") && reason.contains("standard library"),
        "{reason}"
    );
}

fn native_factory(
    kind: rlvr_sandbox::BackendKind,
) -> Result<Arc<rlvr_sandbox::BlockingRunner>, String> {
    match kind {
        rlvr_sandbox::BackendKind::Wasm => Ok(native_runner()),
        rlvr_sandbox::BackendKind::Docker => Err("no docker here".into()),
    }
}

#[test]
fn registered_by_name() {
    rlvr_code::register().unwrap();
    rlvr_code::register().unwrap();
    rlvr_code::set_backend_factory(native_factory);
    let a = rlvr_code::runner_for(rlvr_sandbox::BackendKind::Wasm).unwrap();
    let b = rlvr_code::runner_for(rlvr_sandbox::BackendKind::Wasm).unwrap();
    assert!(Arc::ptr_eq(&a, &b), "one runner per backend");
    let v = rlvr_verify::registry::from_spec(&json!({"type": "code", "scoring": "fraction",
        "extract": {"strategy": "first"}, "max_tests": 2}))
    .unwrap();
    assert_eq!(v.name(), "code");
    let gt =
        json!({"format": "asserts", "tests": ["assert x == 1", "assert x == 2", "assert x == 3"]});
    let o = v.verify(&VerifyInput {
        response: "```python\nx = 1\n```\n```python\nx = 2\n```",
        ground_truth: &gt,
        metadata: &Value::Null,
    });
    assert_eq!(
        (o.status, o.score, o.details["tests_total"].clone()),
        (Status::Incorrect, 0.5, json!(2))
    );
    let e = rlvr_verify::registry::from_spec(&json!({"type": "code", "timeout": 5}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("code.timeout"), "{e}");
    let e = rlvr_verify::registry::from_spec(&json!({"type": "code", "backend": "docker"}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("no docker here"), "{e}");
    let e = rlvr_verify::registry::from_spec(&json!({"type": "code", "timeout_ms": 0}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("code.timeout_ms"), "{e}");
}
