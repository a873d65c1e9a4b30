//! The TOML configs: every file in configs/ loads, `default.toml` is the built-in default,
//! overrides apply, and mistakes are reported with the file, line and field.

use std::path::PathBuf;

use rlvr_loop::TrainConfig;

fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

#[test]
fn default_toml_is_the_builtin_default() {
    let from_file = TrainConfig::load(Some(&configs_dir().join("default.toml")), &[]).unwrap();
    assert_eq!(from_file, TrainConfig::default());
    // And the resolved config round-trips through its TOML.
    let text = from_file.to_toml().unwrap();
    let back = TrainConfig::from_toml(&text, "resolved", &[]).unwrap();
    assert_eq!(back, from_file);
}

#[test]
fn every_config_file_loads_and_presets_apply() {
    let mut seen = 0;
    for entry in std::fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let cfg = TrainConfig::load(Some(&path), &[])
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if [
            "grpo",
            "dr_grpo",
            "dapo",
            "rloo",
            "reinforce_plus_plus",
            "remax",
        ]
        .contains(&stem)
        {
            assert_eq!(cfg.algorithm.preset, stem);
            let back = TrainConfig::from_toml(&cfg.to_toml().unwrap(), "resolved", &[]).unwrap();
            assert_eq!(back, cfg, "{stem}: resolved config round trip");
        }
        seen += 1;
    }
    assert!(
        seen >= 9,
        "expected the default, seven presets and gsm8k, saw {seen}"
    );
    let dapo = TrainConfig::load(Some(&configs_dir().join("dapo.toml")), &[]).unwrap();
    assert!(dapo.algorithm.dynamic_sampling.is_some());
    assert_eq!(dapo.algorithm.clip.clip_ratio_high, 0.28);
    assert_eq!(dapo.algorithm.overlong.unwrap().buffer_len, 16);
    let dr = TrainConfig::load(Some(&configs_dir().join("dr_grpo.toml")), &[]).unwrap();
    assert_eq!(dr.algorithm.adv_estimator.name(), "grpo_no_std");
    assert!(!dr.algorithm.kl.use_kl_loss);
}

#[test]
fn set_overrides_apply_in_order() {
    let sets = vec![
        "rollout.n=4".to_string(),
        "algorithm.preset=rloo".to_string(),
        "algorithm.clip.clip_ratio_high=0.3".to_string(),
        "data.train=gsm8k:train".to_string(),
        "name=exp one".to_string(),
        "rollout.n=6".to_string(),
    ];
    let cfg = TrainConfig::load(None, &sets).unwrap();
    assert_eq!(cfg.rollout.n, 6);
    assert_eq!(cfg.algorithm.preset, "rloo");
    assert_eq!(cfg.algorithm.clip.clip_ratio_high, 0.3);
    assert_eq!(cfg.data.train, "gsm8k:train");
    assert_eq!(cfg.name, "exp one");

    // Step rewards and a normalised reward-model part, as the README shows them.
    let sets = vec![
        "algorithm.preset=reinforce_plus_plus".to_string(),
        "trainer.step_rewards=mean".to_string(),
        r#"verifier={type = "weighted_sum", parts = [{weight = 1.0, verifier = "math"}, {weight = 0.3, verifier = "format", normalize = "running", clip = 3.0}]}"#.to_string(),
    ];
    let cfg = TrainConfig::load(None, &sets).unwrap();
    assert_eq!(
        cfg.trainer.step_rewards,
        rlvr_loop::step_rewards::StepRewardMode::Mean
    );
    assert_eq!(cfg.algorithm.preset, "reinforce_plus_plus");
    assert_eq!(cfg.verifier["parts"][1]["normalize"], "running");
    rlvr_verify::registry::from_spec(&cfg.verifier).unwrap();
    let e = TrainConfig::from_toml("[trainer]\nstep_rewards = \"all\"\n", "s.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("s.toml") && e.contains("line 2") && e.contains("outcome"),
        "{e}"
    );
}

#[test]
fn mistakes_name_file_line_and_field() {
    let text = "name = \"x\"\n\n[rollout]\nn = 4\ntemprature = 0.5\n";
    let e = TrainConfig::from_toml(text, "my.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("my.toml") && e.contains("temprature") && e.contains("line 5"),
        "{e}"
    );

    let e = TrainConfig::from_toml("[rollout]\nn = \"many\"\n", "a.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.toml") && e.contains("line 2"), "{e}");

    let e = TrainConfig::from_toml("[algorithm]\npreset = \"nope\"\n", "b.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("b.toml") && e.contains("nope"), "{e}");

    let e = TrainConfig::from_toml("[algorithm]\nclip_ratio = 3\n", "c.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.toml") && e.contains("clip_ratio"), "{e}");

    let e = TrainConfig::from_toml("[rollout]\nn = 0\n", "d.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("d.toml") && e.contains("rollout.n"), "{e}");

    let e = TrainConfig::load(None, &["rollout.n".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--set") && e.contains("key.path=value"), "{e}");

    let e = TrainConfig::load(None, &["rollout.bogus=1".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--set rollout.bogus=1") && e.contains("bogus"),
        "{e}"
    );

    // DAPO's default overlong buffer does not fit 64-token responses: a clear error.
    let e = TrainConfig::load(None, &["algorithm.preset=dapo".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("algorithm.overlong.buffer_len"), "{e}");

    let e = TrainConfig::from_toml("[verifier]\ntype = \"nonsense\"\n", "e.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("e.toml") && e.contains("verifier"), "{e}");
}
