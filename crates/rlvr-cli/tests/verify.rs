//! `rlvr verify` end to end: one output line per input line in order, malformed lines reported
//! with their line number, the summary on stderr, composite specs.

use std::io::Write;
use std::process::Command;

use serde_json::Value;

fn rlvr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn");
    c
}

fn run(args: &[&str], input: &str) -> (Vec<Value>, String) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(input.as_bytes()).unwrap();
    let out = rlvr()
        .arg("verify")
        .args(args)
        .arg("--input")
        .arg(f.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, stderr)
}

#[test]
fn math_lines_in_order_with_malformed_ones_reported() {
    let input = [
        r#"{"response": "so \\boxed{\\dfrac{1}{2}}", "ground_truth": "0.5", "data_source": "x"}"#,
        r#"{"response": "The answer is 7.", "ground_truth": "8"}"#,
        r#"{"response": "no idea", "ground_truth": "8"}"#,
        r#####"{"response": "#### 1,000", "ground_truth": "Work...\n#### 1000"}"#####,
        r#"this is not json"#,
        r#"{"ground_truth": "3"}"#,
        r#"{"response": "\\boxed{(1,2)}", "ground_truth": {"answer": "(1, 2)"}}"#,
    ]
    .join("\n");
    let (out, stderr) = run(&["--verifier", "math"], &format!("{input}\n"));
    assert_eq!(out.len(), 7, "{out:?}");
    let st: Vec<&str> = out.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(
        st,
        [
            "correct",
            "incorrect",
            "invalid",
            "correct",
            "error",
            "error",
            "correct"
        ]
    );
    assert_eq!(out[0]["score"], 1.0);
    assert_eq!(out[1]["score"], 0.0);
    assert_eq!(out[4]["details"]["line"], 5);
    assert!(out[4]["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("line 5"));
    assert_eq!(out[5]["details"]["line"], 6);
    assert!(out[5]["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("response"));
    assert!(
        stderr.contains("3 correct, 1 incorrect, 1 invalid, 2 error (2 malformed)"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_str(
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["lines"], 7);
    assert!((summary["mean_score"].as_f64().unwrap() - 3.0 / 7.0).abs() < 1e-6);
    assert!(summary["lines_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn format_and_gated_specs() {
    let input = [
        r#"{"response": "<think>hm</think><answer>\\boxed{4}</answer>", "ground_truth": "4"}"#,
        r#"{"response": "\\boxed{4}", "ground_truth": "4"}"#,
    ]
    .join("\n");
    let (out, _) = run(&["--verifier", "format"], &input);
    assert_eq!(out[0]["status"], "correct");
    assert_eq!(out[1]["status"], "incorrect");
    assert!(out[1]["details"]["failed"].as_array().unwrap().len() >= 2);
    let spec = r#"{"type": "gated", "gate": "format", "inner": {"type": "math", "last_number_fallback": false}}"#;
    let (out, _) = run(&["--verifier", spec], &input);
    assert_eq!(out[0]["status"], "correct");
    assert_eq!(out[0]["score"], 1.0);
    assert_eq!(out[1]["score"], 0.0);
    assert_eq!(out[1]["details"]["gate_passed"], false);
}

#[test]
fn config_and_unknown_verifier() {
    let input = r#"{"response": "I think 12", "ground_truth": "12"}"#;
    let (out, _) = run(&["--verifier", "math"], input);
    assert_eq!(out[0]["status"], "correct");
    let (out, _) = run(
        &[
            "--verifier",
            "math",
            "--config",
            r#"{"last_number_fallback": false}"#,
        ],
        input,
    );
    assert_eq!(out[0]["status"], "invalid");
    let o = rlvr()
        .args(["verify", "--verifier", "nope", "--input", "-"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown verifier"));
    let o = rlvr()
        .args([
            "verify",
            "--verifier",
            "math",
            "--config",
            r#"{"bogus": 1}"#,
            "--input",
            "-",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bogus"));
}

#[test]
fn the_rust_plugin_example_is_usable_by_name_and_in_specs() {
    let input = [
        r#"{"response": "Paris is the capital of France.", "ground_truth": null}"#,
        r#"{"response": "I am sorry, Paris.", "ground_truth": ["Paris"]}"#,
    ]
    .join("\n");
    let (out, _) = run(
        &[
            "--verifier",
            "keyword",
            "--config",
            r#"{"forbidden": ["sorry"], "required": ["Paris"]}"#,
        ],
        &input,
    );
    let st: Vec<&str> = out.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(st, ["correct", "incorrect"]);
    assert_eq!(out[1]["details"]["forbidden_found"][0], "sorry");
    let (out, _) = run(
        &[
            "--verifier",
            r#"{"type": "weighted_sum", "parts": [{"weight": 1.0, "verifier": {"type": "keyword", "required": ["France"]}}]}"#,
        ],
        &input,
    );
    assert_eq!(out[0]["score"], 1.0);
    // Line 2's ground truth adds "Paris" (found); "France" is missing: half credit.
    assert_eq!(out[1]["score"], 0.5);
    // An unknown name lists the known ones, the plugin included.
    let o = rlvr()
        .args(["verify", "--verifier", "nope", "--input", "-"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("keyword") && err.contains("math"), "{err}");
}

#[test]
fn a_python_reward_function_by_path() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../verifiers/python/examples/reward.py");
    let input = [
        r#"{"response": "it is 12", "ground_truth": "12"}"#,
        r#"{"response": "it is 13", "ground_truth": "12"}"#,
    ]
    .join("\n");
    let name = format!("python:{}", example.display());
    let (out, _) = run(&["--verifier", &name], &input);
    let st: Vec<&str> = out.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(st, ["correct", "incorrect"]);
    assert_eq!(out[0]["details"]["extracted"], "12");
    let name = format!("python:{}:length_penalty", example.display());
    let (out, _) = run(&["--verifier", &name], &input);
    assert!(
        (out[0]["score"].as_f64().unwrap() - 0.92).abs() < 1e-6,
        "{}",
        out[0]
    );
}
