//! `rlvr eval` end to end on the tiny Qwen2 fixture and MATH-500 (a random model scores ~0:
//! what is checked is the pipeline): the files and their keys, determinism, resume without
//! re-sampling, and the errors (malformed data with FILE:LINE, k > n), and HumanEval through the code verifier.

use std::path::Path;
use std::process::{Command, Output};

use rlvr_conformance::{read_jsonl, require_shared, shared_dir};
use serde_json::Value;

fn rlvr(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlvr"));
    c.env("RLVR_LOG", "warn")
        .env("RLVR_SHARED", shared_dir())
        .env("RAYON_NUM_THREADS", "1")
        .current_dir(cwd);
    c
}

fn model() -> String {
    shared_dir()
        .join("fixtures/tiny-qwen2")
        .display()
        .to_string()
}

/// Whether the fixture model and MATH-500 are there (fails under CI when not).
fn have_shared() -> bool {
    require_shared("fixtures/tiny-qwen2").is_some()
        && require_shared("datasets/math500/test.jsonl").is_some()
}

/// `rlvr eval --model tiny-qwen2 --dataset math500 --n 4 --k 1,2,4 --max-new-tokens 16` plus
/// `extra`, in `cwd`.
fn eval(cwd: &Path, extra: &[&str]) -> Output {
    let m = model();
    let mut args = vec![
        "eval",
        "--model",
        &m,
        "--dataset",
        "math500",
        "--n",
        "4",
        "--k",
        "1,2,4",
        "--max-new-tokens",
        "16",
    ];
    args.extend_from_slice(extra);
    rlvr(cwd).args(&args).output().unwrap()
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "rlvr eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is the summary JSON")
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn math500_end_to_end_writes_every_file_with_the_right_keys_and_counts() {
    if !have_shared() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = eval(tmp.path(), &["--limit", "8", "--group-by", "level"]);
    let summary = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("eval math500: 8 problems × 4 samples") && stderr.contains("pass@4"),
        "{stderr}"
    );

    // The default run directory: runs/<YYYYmmdd-HHMMSS>-eval-math500/.
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let dir = &runs[0];
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with("-eval-math500") && name.len() == 15 + 13,
        "{name}"
    );

    for key in [
        "pass@1", "pass@2", "pass@4", "maj@1", "maj@2", "maj@4", "mean@1", "mean@2", "mean@4",
    ] {
        let v = summary[key].as_f64().unwrap_or_else(|| panic!("{key}"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(summary["n"], 4);
    assert_eq!(summary["num_problems"], 8);
    assert_eq!(summary["num_samples"], 32);
    assert_eq!(
        (
            summary["sampled_problems"].clone(),
            summary["cached_problems"].clone()
        ),
        (8.into(), 0.into())
    );
    let counts: u64 = ["correct", "incorrect", "invalid", "error"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap_or_else(|| panic!("{k}")))
        .sum();
    assert_eq!(counts, 32);
    let mrt = summary["mean_response_tokens"].as_f64().unwrap();
    assert!(mrt > 0.0 && mrt <= 16.0, "{mrt}");
    assert!((0.0..=1.0).contains(&summary["truncation_rate"].as_f64().unwrap()));
    assert_eq!(
        summary["subsets"]["data_source"]["math500"]["num_problems"],
        8
    );
    // MATH-500 here has no level field: all under (missing).
    assert_eq!(summary["subsets"]["level"]["(missing)"]["num_problems"], 8);

    // summary.json is what was printed.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(file, summary);

    // samples.jsonl: one line per sample, in problem then sample order, with every field.
    let samples = read_jsonl(&dir.join("samples.jsonl"));
    assert_eq!(samples.len(), 32);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s["problem"], i / 4);
        assert_eq!(s["sample"], i % 4);
        assert_eq!(s["id"], format!("math500/test/{}", i / 4));
        for key in [
            "prompt",
            "response",
            "score",
            "status",
            "details",
            "tokens",
            "truncated",
        ] {
            assert!(s.get(key).is_some(), "samples.jsonl line {i} lacks {key}");
        }
        assert!(s["prompt"].as_str().unwrap().contains("boxed"));
        assert!(s["tokens"].as_u64().unwrap() <= 16);
    }
    let correct = samples.iter().filter(|s| s["status"] == "correct").count();
    assert_eq!(summary["correct"], correct);

    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "# Evaluation: math500",
        "| k | pass@k | maj@k | mean@k |",
        "## By data_source",
        "## By level",
        "| 4 |",
    ] {
        assert!(
            report.contains(needle),
            "report.md lacks {needle:?}:\n{report}"
        );
    }
    for f in [
        "plots/pass_at_k.svg",
        "plots/pass_at_k.png",
        "config.resolved.toml",
        "meta.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(dir.join("store").is_dir());
}

#[test]
fn same_seed_same_samples_and_resume_samples_only_what_is_missing() {
    if !have_shared() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // One uninterrupted run of 6 problems.
    let full = ok(&eval(t, &["--limit", "6", "--seed", "7", "--out", "full"]));
    assert_eq!(full["sampled_problems"], 6);
    // The same in two goes: 3 problems, then 6 with the same --out.
    let first = ok(&eval(t, &["--limit", "3", "--seed", "7", "--out", "parts"]));
    assert_eq!(
        (
            first["sampled_problems"].clone(),
            first["cached_problems"].clone()
        ),
        (3.into(), 0.into())
    );
    let second = ok(&eval(t, &["--limit", "6", "--seed", "7", "--out", "parts"]));
    assert_eq!(
        second["sampled_problems"], 3,
        "only the 3 new problems are sampled"
    );
    assert_eq!(second["cached_problems"], 3);
    assert_eq!(second["num_problems"], 6);

    let a = read_jsonl(&t.join("full/samples.jsonl"));
    let b = read_jsonl(&t.join("parts/samples.jsonl"));
    assert_eq!(a.len(), 24);
    assert_eq!(a, b, "same seed, same samples, resumed or not");
    for k in [
        "pass@1",
        "maj@4",
        "mean@2",
        "correct",
        "invalid",
        "mean_response_tokens",
    ] {
        assert_eq!(full[k], second[k], "{k}");
    }
    // A different seed gives different samples.
    let other = ok(&eval(t, &["--limit", "6", "--seed", "8", "--out", "other"]));
    assert_eq!(other["sampled_problems"], 6);
    assert_ne!(read_jsonl(&t.join("other/samples.jsonl")), a);

    // --resume with the saved settings: nothing left to sample.
    let resumed = ok(&rlvr(t)
        .args(["eval", "--resume", "parts"])
        .output()
        .unwrap());
    assert_eq!(
        (
            resumed["sampled_problems"].clone(),
            resumed["cached_problems"].clone()
        ),
        (0.into(), 6.into())
    );
    assert_eq!(read_jsonl(&t.join("parts/samples.jsonl")), a);

    // The same --out with other sampling settings is refused, naming the difference.
    let e = err(&eval(t, &["--limit", "6", "--seed", "9", "--out", "parts"]));
    assert!(e.contains("seed") && e.contains("--resume"), "{e}");
}

#[test]
fn errors_are_clear_and_leave_no_run_directory() {
    if !have_shared() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // k > n names the flag.
    let e = err(&eval(t, &["--k", "8"]));
    assert!(e.contains("--k 8") && e.contains("--n 4"), "{e}");

    // A malformed JSONL line is reported with FILE:LINE.
    std::fs::write(
        t.join("bad.jsonl"),
        "{\"question\": \"1+1?\", \"answer\": \"2\"}\n{\"question\": \"2+2?\", \"answer\": \n",
    )
    .unwrap();
    let m = model();
    let e = err(&rlvr(t)
        .args([
            "eval",
            "--model",
            &m,
            "--dataset",
            "bad.jsonl",
            "--n",
            "1",
            "--k",
            "1",
        ])
        .output()
        .unwrap());
    assert!(e.contains("bad.jsonl:2"), "{e}");

    // An unknown dataset name.
    let e = err(&rlvr(t)
        .args([
            "eval",
            "--model",
            &m,
            "--dataset",
            "nope",
            "--n",
            "1",
            "--k",
            "1",
        ])
        .output()
        .unwrap());
    assert!(e.contains("nope") && e.contains("math500"), "{e}");

    assert!(
        !t.join("runs").exists(),
        "a failed start must not create a run directory"
    );
}

#[test]
fn a_plain_question_answer_file_evaluates_with_the_math_verifier() {
    if require_shared("fixtures/tiny-qwen2").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(
        t.join("qa.jsonl"),
        "{\"question\": \"What is 1+1?\", \"answer\": \"2\", \"extra_info\": {\"level\": \"easy\"}}\n\
         {\"question\": \"What is 2+3?\", \"answer\": \"5\", \"extra_info\": {\"level\": \"hard\"}}\n",
    )
    .unwrap();
    let m = model();
    let s = ok(&rlvr(t)
        .args([
            "eval",
            "--model",
            &m,
            "--dataset",
            "qa.jsonl",
            "--n",
            "2",
            "--k",
            "1,2",
            "--max-new-tokens",
            "4",
            "--temperature",
            "0",
            "--group-by",
            "level",
            "--out",
            "o",
        ])
        .output()
        .unwrap());
    assert_eq!(s["num_problems"], 2);
    assert_eq!(s["verifier"], "math");
    assert_eq!(s["subsets"]["level"]["easy"]["num_problems"], 1);
    assert_eq!(s["subsets"]["level"]["hard"]["num_problems"], 1);
    assert_eq!(s["subsets"]["data_source"]["qa"]["num_problems"], 2);
    // Greedy: both samples of a problem are the same.
    let lines = read_jsonl(&t.join("o/samples.jsonl"));
    assert_eq!(lines[0]["response"], lines[1]["response"]);
}

#[test]
fn humaneval_runs_end_to_end_through_the_code_verifier() {
    if require_shared("fixtures/tiny-qwen2").is_none()
        || require_shared("datasets/humaneval/test.jsonl").is_none()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model();
    let out = rlvr(tmp.path())
        .args([
            "eval",
            "--model",
            &m,
            "--dataset",
            "humaneval",
            "--n",
            "2",
            "--k",
            "1,2",
            "--limit",
            "3",
            "--max-new-tokens",
            "24",
        ])
        .output()
        .unwrap();
    let summary = ok(&out);
    assert_eq!(summary["num_problems"], 3);
    assert_eq!(summary["num_samples"], 6);
    // A random-weight model writes no working code; the sandbox ran every sample (a
    // missing interpreter would make them `error`: CI builds it, so none may be).
    assert_eq!(summary["correct"], 0, "{summary}");
    assert_eq!(summary["error"], 0, "{summary}");
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let samples = read_jsonl(&runs[0].join("samples.jsonl"));
    assert_eq!(samples.len(), 6);
    for s in &samples {
        assert_eq!(
            s["id"].as_str().unwrap().split('/').next(),
            Some("HumanEval"),
            "{s}"
        );
        let d = &s["details"];
        assert_eq!(d["format"], "humaneval", "{s}");
        assert_eq!(d["backend"], "wasm", "{s}");
    }
}

/// `rerank@K` of a summary (or a subset's metrics), asserting it lies in [0, 1].
fn rerank_at(m: &Value, k: usize) -> f64 {
    let v = m[format!("rerank@{k}")]
        .as_f64()
        .unwrap_or_else(|| panic!("rerank@{k} missing: {m}"));
    assert!((0.0..=1.0).contains(&v), "rerank@{k} = {v}");
    v
}

#[test]
fn rerank_with_a_verifier_and_with_an_orm_adds_rerank_at_k() {
    if !have_shared() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model();
    let base = [
        "eval",
        "--model",
        &m,
        "--dataset",
        "math500",
        "--limit",
        "2",
        "--n",
        "2",
        "--k",
        "1,2",
        "--max-new-tokens",
        "8",
    ];

    // A reranker that needs no model: the format verifier.
    let out = rlvr(tmp.path())
        .args(base)
        .args(["--rerank", "format", "--out", "fmt"])
        .output()
        .unwrap();
    let s = ok(&out);
    assert_eq!(s["rerank_verifier"], "format");
    rerank_at(&s, 1);
    rerank_at(&s, 2);
    rerank_at(&s["subsets"]["data_source"]["math500"], 2);
    let samples = read_jsonl(&tmp.path().join("fmt/samples.jsonl"));
    assert_eq!(samples.len(), 4);
    assert!(samples.iter().all(|l| l["rerank_score"].is_f64()));
    let report = std::fs::read_to_string(tmp.path().join("fmt/report.md")).unwrap();
    assert!(
        report.contains("rerank@k") && report.contains("| rerank_verifier | format |"),
        "{report}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("rerank@2"));

    // An ORM made from the fixture (a random head), saved as a reward model directory.
    let rm = rlvr_rm::RewardModel::load(Path::new(&m), &candle_core::Device::Cpu).unwrap();
    let orm = tmp.path().join("orm");
    rm.save(&orm).unwrap();
    let spec = format!("orm:{}", orm.display());
    let s = ok(&rlvr(tmp.path())
        .args(base)
        .args(["--rerank", &spec, "--out", "orm-run"])
        .output()
        .unwrap());
    assert_eq!(s["rerank_verifier"], spec.as_str());
    rerank_at(&s, 1);
    rerank_at(&s, 2);
    let samples = read_jsonl(&tmp.path().join("orm-run/samples.jsonl"));
    for l in &samples {
        let r = l["rerank_score"].as_f64().expect("an ORM score");
        assert!((0.0..=1.0).contains(&r), "{l}");
    }
    // Without --rerank there are no rerank keys; continuing the run with a reranker rescores
    // the cached samples without sampling again.
    let plain = ok(&rlvr(tmp.path())
        .args(base)
        .args(["--out", "plain"])
        .output()
        .unwrap());
    assert!(plain.get("rerank@1").is_none() && plain.get("rerank_verifier").is_none());
    let again = ok(&rlvr(tmp.path())
        .args(["eval", "--resume", "plain", "--rerank", "format"])
        .output()
        .unwrap());
    assert_eq!(again["cached_problems"], 2);
    assert_eq!(again["sampled_problems"], 0);
    assert_eq!(again["pass@2"], plain["pass@2"]);
    rerank_at(&again, 2);

    // A reranker that cannot be built fails before anything is written.
    let e = err(&rlvr(tmp.path())
        .args(base)
        .args(["--rerank", "orm:/nonexistent/rm", "--out", "bad"])
        .output()
        .unwrap());
    assert!(e.contains("--rerank"), "{e}");
    assert!(!tmp.path().join("bad").exists());
}
