//! The reward-model commands end to end on the tiny Qwen2 fixture: `rlvr rm label`
//! (Math-Shepherd labels from the policy's completions) writes `rlvr rm train --kind prm`
//! data; the PRM trained from it serves as `prm:DIR` in `rlvr verify`, with per-step scores.

use std::path::Path;
use std::process::Command;

use rlvr_conformance::require_shared;
use serde_json::Value;

fn rlvr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "stdout: {o}\nstderr: {e}");
    (o, e)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn label_then_train_a_prm_then_verify_with_it() {
    let Some(model) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            // Given steps: a right and a wrong solution.
            "{\"prompt\": \"What is 2+3?\", \"ground_truth\": \"5\", \"steps\": [\"2+3=5\", \"The answer is \\\\boxed{5}\"]}\n",
            "{\"prompt\": \"What is 2+3?\", \"answer\": \"5\", \"response\": \"2+3=6\\nThe answer is \\\\boxed{6}\"}\n",
            "\n",
            // No solution: two are sampled from the policy.
            "{\"prompt\": \"What is 4+4?\", \"ground_truth\": \"8\"}\n",
        ),
    )
    .unwrap();
    let labelled = tmp.path().join("steps.jsonl");
    let (stdout, _) = run(rlvr()
        .args(["rm", "label", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&input)
        .arg("--out")
        .arg(&labelled)
        .args([
            "--rollouts",
            "2",
            "--solutions",
            "2",
            "--max-new-tokens",
            "6",
            "--chat",
        ]));
    assert!(stdout.contains("labelled 4 solutions"), "{stdout}");
    let recs = lines(&labelled);
    assert_eq!(recs.len(), 4);
    for r in &recs {
        let steps = r["steps"].as_array().unwrap();
        let labels = r["labels"].as_array().unwrap();
        assert_eq!(steps.len(), labels.len(), "{r}");
        assert!(labels.iter().all(|l| l == "+" || l == "-"), "{r}");
        // `--chat`: the prompt is written as the messages the policy saw.
        assert_eq!(r["prompt"][0]["role"], "user", "{r}");
    }
    // The last step is the whole solution, verified as it is.
    assert_eq!(recs[0]["labels"].as_array().unwrap().last().unwrap(), "+");
    assert_eq!(recs[1]["labels"].as_array().unwrap().last().unwrap(), "-");
    assert_eq!(recs[1]["steps"][0], "2+3=6");
    assert_eq!(recs[2]["ground_truth"], "8");

    // The output is `rlvr rm train --kind prm` data.
    let prm = tmp.path().join("prm");
    let (stdout, _) = run(rlvr()
        .args(["rm", "train", "--kind", "prm", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&labelled)
        .arg("--eval")
        .arg(&labelled)
        .arg("--out")
        .arg(&prm)
        .args(["--set", "steps=2", "--set", "lr=1e-3"]));
    assert!(stdout.contains("trained a prm on 4 records"), "{stdout}");
    assert!(stdout.contains("per-step accuracy"), "{stdout}");

    let vin = tmp.path().join("verify.jsonl");
    std::fs::write(
        &vin,
        "{\"response\": \"2+3=5\\nThe answer is \\\\boxed{5}\", \"ground_truth\": \"5\", \"prompt\": \"What is 2+3?\"}\n",
    )
    .unwrap();
    let (stdout, _) = run(rlvr()
        .arg("verify")
        .arg("--verifier")
        .arg(format!("prm:{}", prm.display()))
        .arg("--input")
        .arg(&vin));
    let o: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let steps = o["details"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{o}");
    assert_eq!(o["details"]["step_end_bytes"][0], 5, "{o}");
    let p = o["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{o}");
}

#[test]
fn label_names_the_line_and_field_at_fault() {
    let Some(model) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"q\", \"ground_truth\": \"1\", \"steps\": [\"a\"]}\n{\"prompt\": \"q\"}\n",
    )
    .unwrap();
    let out_path = tmp.path().join("out.jsonl");
    std::fs::write(&out_path, "kept\n").unwrap();
    let out = rlvr()
        .args(["rm", "label", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&input)
        .arg("--out")
        .arg(&out_path)
        .args(["--rollouts", "1", "--max-new-tokens", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in.jsonl:2") && err.contains("ground_truth"),
        "{err}"
    );
    // Nothing already written is lost.
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "kept\n");
}
