//! The `rlvr` binary end to end: `model inspect`, `model logprobs` against the PyTorch
//! reference, and clear errors on bad input.

use std::process::Command;

use rlvr_conformance::{f64s, read_json, require_shared, u32_rows};

fn rlvr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn");
    c
}

#[test]
fn inspect_reports_the_model() {
    let Some(dir) = require_shared("fixtures/tiny-qwen3") else {
        return;
    };
    let out = rlvr()
        .args(["model", "inspect", "--json", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "Qwen3ForCausalLM");
    assert_eq!(v["head_dim"], 24);
    assert_eq!(v["vocab_size"], 509);
    assert_eq!(v["stop_ids"], serde_json::json!([2]));
    // 2 layers of hidden 64, 4 × 24 query / 2 × 24 kv heads, q/k norms, MLP 160, tied embeddings
    let (h, d, i, v_) = (64u64, 24u64, 160u64, 509u64);
    let layer = h * 4 * d + 2 * h * 2 * d + 4 * d * h + 2 * d + 3 * h * i + 2 * h;
    assert_eq!(v["parameters"], v_ * h + 2 * layer + h);
    let specials = v["special_tokens"].as_array().unwrap();
    assert!(specials
        .iter()
        .any(|s| s["token"] == "<|im_end|>" && s["id"] == 2));
}

#[test]
fn logprobs_match_pytorch() {
    let Some(dir) = require_shared("fixtures/tiny-llama") else {
        return;
    };
    let reference = read_json(&dir.join("reference.json"));
    let ids = u32_rows(&reference["batch"]["input_ids"]);
    let mask = u32_rows(&reference["batch"]["attention_mask"]);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let mut lines = String::new();
    for (row, m) in ids.iter().zip(&mask) {
        let n = m.iter().filter(|&&x| x == 1).count();
        lines.push_str(&serde_json::json!({"ids": &row[..n]}).to_string());
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    for batch_size in ["1", "3"] {
        let out = rlvr()
            .args(["model", "logprobs", "--batch-size", batch_size, "--model"])
            .arg(&dir)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), ids.len());
        for (i, row) in rows.iter().enumerate() {
            let got = f64s(&row["logprobs"]);
            let exp = f64s(&reference["batch"]["next_token_logprobs"][i]);
            assert_eq!(got.len(), row["ids"].as_array().unwrap().len() - 1);
            let err = got
                .iter()
                .zip(&exp)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                err <= 1e-4,
                "row {i} (batch size {batch_size}): error {err:e}"
            );
        }
    }
}

#[test]
fn logprobs_of_text_tokenizes_it() {
    let Some(dir) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let reference = read_json(&dir.join("reference.json"));
    let case = &reference["encode"][0];
    let out = rlvr()
        .args(["model", "logprobs", "--input", "-", "--model"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let line = serde_json::json!({"text": case["text"]}).to_string();
            child.stdin.take().unwrap().write_all(line.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ids"], case["ids"]);
    assert_eq!(
        v["logprobs"].as_array().unwrap().len(),
        case["ids"].as_array().unwrap().len() - 1
    );
}

#[test]
fn bad_input_lines_are_named() {
    let Some(dir) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (content, needle) in [
        (
            "{\"ids\": [1, 2]}\n{\"ids\": [1, \n",
            "in.jsonl:2: invalid JSON",
        ),
        (
            "{\"ids\": [1, 2]}\n\n{\"tokens\": [1]}\n",
            "in.jsonl:3: expected an object with `ids` or `text`",
        ),
        (
            "{\"ids\": [1, 99999]}\n",
            "in.jsonl:1: field `ids`: token id 99999 is outside the vocabulary",
        ),
        ("{\"ids\": []}\n", "in.jsonl:1: empty sequence"),
        (
            "{\"ids\": [1, -3]}\n",
            "in.jsonl:1: field `ids`: -3 is not a token id",
        ),
    ] {
        let input = tmp.path().join("in.jsonl");
        std::fs::write(&input, content).unwrap();
        let out = rlvr()
            .args(["model", "logprobs", "--model"])
            .arg(&dir)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
        assert!(out.stdout.is_empty(), "nothing is printed for a bad file");
    }
    let out = rlvr()
        .args(["model", "inspect", "--model", "/nonexistent/model"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model/config.json"));
}
