//! `rlvr sample` end to end on the tiny Qwen2 fixture.

use std::process::Command;

use rlvr_conformance::require_shared;

fn rlvr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn");
    c
}

fn sample(args: &[&str]) -> std::process::Output {
    let dir = require_shared("fixtures/tiny-qwen2").expect("checked by the caller");
    rlvr()
        .arg("sample")
        .arg("--model")
        .arg(&dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn samples_g_completions_per_prompt_reproducibly() {
    if require_shared("fixtures/tiny-qwen2").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"prompt\": \"2 + 2 =\"}\n",
            "\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
            "{\"ids\": [5, 17, 42]}\n",
            "{\"ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}\n",
        ),
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let args = [
        "--input",
        input,
        "--n",
        "3",
        "--temperature",
        "1.0",
        "--top-p",
        "0.9",
        "--max-new-tokens",
        "8",
        "--seed",
        "4",
        "--max-prompt-len",
        "19",
    ];
    let out = sample(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(":5: prompt of 20 tokens"), "{stderr}");
    assert!(stderr.contains("(1 filtered)"), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    let keys: Vec<(u64, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["sample_index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [1, 3, 4]
            .iter()
            .flat_map(|&l| (0..3).map(move |j| (l, j)))
            .collect::<Vec<_>>()
    );
    for l in &lines {
        let n = l["tokens"].as_array().unwrap().len();
        assert!((1..=8).contains(&n));
        assert_eq!(l["logprobs"].as_array().unwrap().len(), n);
        assert_eq!(l["sampler_logprobs"].as_array().unwrap().len(), n);
        assert_eq!(l["truncated"], n == 8 && l["finish_reason"] == "length");
        assert!(l["text"].is_string());
    }
    assert_eq!(lines[6]["prompt_len"], 3);
    // Same seed, same output.
    let again = sample(&args);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn malformed_lines_name_file_and_line() {
    if require_shared("fixtures/tiny-qwen2").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bad.jsonl");
    for (body, what) in [
        ("{\"prompt\": \"ok\"}\n{\"prompt\": \n", "invalid JSON"),
        (
            "{\"prompt\": \"ok\"}\n{\"text\": \"x\"}\n",
            "`prompt`, `messages` or `ids`",
        ),
        (
            "{\"prompt\": \"ok\"}\n{\"ids\": [1, 99999]}\n",
            "vocabulary",
        ),
    ] {
        std::fs::write(&input, body).unwrap();
        let out = sample(&["--input", input.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.jsonl:2"), "{err}");
        assert!(err.contains(what), "{err}");
    }
}
