use std::fs;

use rlvr_store::{RunDir, RunMeta, StoreError};
use serde_json::json;

#[test]
fn create_under_names_dirs_by_time_and_config_with_suffixes() {
    let base = tempfile::tempdir().unwrap();
    let a = RunDir::create_under(base.path(), "grpo gsm8k").unwrap();
    let b = RunDir::create_under(base.path(), "grpo gsm8k").unwrap();
    let c = RunDir::create_under(base.path(), "grpo gsm8k").unwrap();
    for r in [&a, &b, &c] {
        assert_eq!(r.path().parent().unwrap(), base.path().join("runs"));
        assert!(r.checkpoints_dir().is_dir());
        assert!(r.plots_dir().is_dir());
    }
    let name = a.path().file_name().unwrap().to_str().unwrap().to_string();
    // YYYYmmdd-HHMMSS-<name>
    let (stamp, rest) = name.split_at(15);
    assert_eq!(rest, "-grpo-gsm8k", "{name}");
    assert!(stamp[..8].bytes().all(|b| b.is_ascii_digit()), "{name}");
    assert_eq!(&stamp[8..9], "-");
    assert!(stamp[9..].bytes().all(|b| b.is_ascii_digit()), "{name}");
    // Within one second the later ones get suffixes; across a second boundary they differ anyway.
    assert_ne!(a.path(), b.path());
    assert_ne!(b.path(), c.path());
    let b_name = b.path().file_name().unwrap().to_str().unwrap();
    if b_name.starts_with(stamp) {
        assert_eq!(b_name, format!("{name}-2"));
    }
}

#[test]
fn explicit_dir_is_created_and_refuses_to_clobber_a_run() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("my").join("run");
    let run = RunDir::create(Some(&dir), "ignored").unwrap();
    assert_eq!(run.path(), dir);
    assert!(dir.join("checkpoints").is_dir() && dir.join("plots").is_dir());
    run.write_config("seed = 1\n").unwrap();
    let err = RunDir::create(Some(&dir), "x").unwrap_err();
    assert!(matches!(err, StoreError::RunExists { .. }), "{err}");
    assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
}

#[test]
fn open_requires_the_resolved_config() {
    let base = tempfile::tempdir().unwrap();
    let err = RunDir::open(base.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotARunDir { .. }), "{err}");
    assert!(err.to_string().contains(base.path().to_str().unwrap()));
    assert!(err.to_string().contains("config.resolved.toml"));

    let missing = base.path().join("nope");
    let err = RunDir::open(&missing).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    let run = RunDir::create(Some(base.path()), "x").unwrap();
    run.write_config("[train]\nlr = 1e-6\n").unwrap();
    fs::remove_dir(run.plots_dir()).unwrap();
    let reopened = RunDir::open(base.path()).unwrap();
    assert_eq!(reopened.read_config().unwrap(), "[train]\nlr = 1e-6\n");
    assert!(reopened.plots_dir().is_dir());
}

#[test]
fn meta_summary_and_json_files() {
    let base = tempfile::tempdir().unwrap();
    let run = RunDir::create(Some(base.path()), "x").unwrap();
    let meta = RunMeta {
        rlvr_version: "0.1.0".into(),
        git_revision: Some("abc123".into()),
        seed: 7,
        host: "box".into(),
        start_time: "2025-01-01T00:00:00+00:00".into(),
        command: vec!["rlvr".into(), "train".into()],
        resumed_from_step: None,
    };
    run.write_meta(&meta).unwrap();
    assert_eq!(run.read_meta().unwrap(), meta);
    let raw: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(base.path().join("meta.json")).unwrap()).unwrap();
    assert_eq!(raw["seed"], 7);
    assert_eq!(raw["resumed_from_step"], serde_json::Value::Null);

    let summary = json!({"final_step": 10, "reward_mean": 0.5});
    run.write_summary(&summary).unwrap();
    let text = fs::read_to_string(base.path().join("summary.json")).unwrap();
    assert!(
        text.contains("\n  \"final_step\": 10"),
        "not pretty: {text}"
    );
    assert!(text.ends_with('\n'));
    assert_eq!(run.read_json("summary.json").unwrap(), summary);

    run.write_json("eval.json", &json!([1, 2])).unwrap();
    assert_eq!(run.read_json("eval.json").unwrap(), json!([1, 2]));
    for bad in ["", "..", "a/b", "../x.json"] {
        let err = run.write_json(bad, &json!(1)).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidName { .. }),
            "{bad}: {err}"
        );
    }

    // A corrupt meta.json is an error naming the file, not a panic.
    fs::write(base.path().join("meta.json"), "{\"seed\": ").unwrap();
    let err = run.read_meta().unwrap_err();
    assert!(err.to_string().contains("meta.json"), "{err}");
}

#[test]
fn run_meta_now_fills_host_version_and_time() {
    let m = RunMeta::now(3, vec!["rlvr".into()], Some(5));
    assert_eq!(m.rlvr_version, env!("CARGO_PKG_VERSION"));
    assert!(!m.host.is_empty());
    assert!(
        chrono::DateTime::parse_from_rfc3339(&m.start_time).is_ok(),
        "{}",
        m.start_time
    );
    assert_eq!(m.resumed_from_step, Some(5));
    // The crate is built inside the rlvr git checkout; outside one this is None.
    if let Some(rev) = &m.git_revision {
        let hash = rev.trim_end_matches("-dirty");
        assert_eq!(hash.len(), 40, "{rev}");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{rev}");
    }
}
