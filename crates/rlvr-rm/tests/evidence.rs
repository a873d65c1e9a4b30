//! Evidence that the reward models learn what they are meant to: on the built-in arithmetic
//! task, an ORM separates held-out (clean, corrupted) pairs and a PRM locates the first wrong
//! step of corrupted solutions. Small built-in models trained from scratch, fixed seeds, CPU.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use rlvr_data::tasks::Split;
use rlvr_loop::builtin::{self, BuiltinModelConfig};
use rlvr_rm::arith::ArithRmData;
use rlvr_rm::train::first_error_accuracy;
use rlvr_rm::{evaluate, train, Example, Record, RewardModel, RmKind, RmTrainConfig};

fn model_config(layers: usize) -> BuiltinModelConfig {
    BuiltinModelConfig {
        hidden_size: 64,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        intermediate_size: 192,
        max_position_embeddings: 256,
        initializer_range: 0.02,
    }
}

fn examples(records: Vec<Record>) -> Vec<Example> {
    records
        .into_iter()
        .map(|record| Example {
            path: "arith".into(),
            line: 0,
            record,
        })
        .collect()
}

/// `RLVR_<NAME>_SEED=N` runs the test with another seed (how the thresholds' spreads were
/// measured; `.ci/README.md`), else `default`.
fn seed_from_env(name: &str, default: u64) -> u64 {
    let var = format!("RLVR_{name}_SEED");
    match std::env::var(&var) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{var}={s:?} is not a number")),
        Err(_) => default,
    }
}

fn fresh(dir: &Path, kind: RmKind, layers: usize, init_seed: u64) -> RewardModel {
    builtin::create(dir, &model_config(layers), init_seed).unwrap();
    let mut rm = RewardModel::load(dir, &Device::Cpu).unwrap();
    assert!(rm.head_was_initialised());
    rm.settings.kind = kind;
    rm
}

#[test]
fn orm_separates_heldout_pairs() {
    let dir = tempfile::tempdir().unwrap();
    // The seed of the initial weights and of the data order.
    let seed = seed_from_env("ORM", 1);
    let rm = fresh(&dir.path().join("base"), RmKind::Orm, 2, 10 + seed);
    let data = ArithRmData::new(2, 4, 5).unwrap();
    let train_set = examples(data.pairs(3000, Split::Train));
    let heldout = examples(data.pairs(200, Split::Heldout));
    let before = evaluate(&rm, &heldout).unwrap();
    let cfg = RmTrainConfig {
        steps: 800,
        batch_size: 16,
        lr: 5e-3,
        lm_coef: 1.0,
        seed,
        log_every: 50,
        ..RmTrainConfig::default()
    };
    let t = Instant::now();
    let report = train(&rm, &train_set, &cfg, |_| {}).unwrap();
    let after = evaluate(&rm, &heldout).unwrap();
    eprintln!(
        "ORM: pairwise accuracy {:.3} -> {:.3} on {} held-out pairs; loss {:.3} -> {:.3}; {} steps in {:.1}s",
        before.pairwise_accuracy.unwrap(),
        after.pairwise_accuracy.unwrap(),
        after.pairs,
        report.first_loss,
        report.final_loss,
        report.steps,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(report.skipped, 0);
    // Measured over seeds 1–5 (threads 1 and 2 give identical results): untrained
    // 0.455–0.510, trained 0.795–0.875 (median 0.835); one machine gave 0.955 for seed 1.
    // The threshold sits 0.095 under the lowest; chance is 0.5 (SE 0.035 on 200 pairs).
    let (b, a) = (
        before.pairwise_accuracy.unwrap(),
        after.pairwise_accuracy.unwrap(),
    );
    assert!(
        b <= 0.6,
        "the untrained model already separates the pairs: {b}"
    );
    assert!(a >= 0.7, "pairwise accuracy {b:.3} -> {a:.3}: {after:?}");
}

#[test]
fn prm_locates_the_first_wrong_step() {
    let dir = tempfile::tempdir().unwrap();
    // The seed of the data order and (plus 9) of the initial weights.
    let seed = seed_from_env("PRM", 2);
    let mut rm = fresh(&dir.path().join("base"), RmKind::Prm, 3, 9 + seed);
    rm.settings.step_separator = "\n".into();
    let data = ArithRmData::new(2, 4, 7).unwrap();
    // Training: the clean solution and the corrupted copy of 2000 problems (siblings: the
    // step-level Bradley–Terry term pairs them at the corrupted step). Held out: 400 other
    // problems, every third one clean.
    let train_set = examples(data.step_siblings(2000, Split::Train));
    let heldout = examples(data.steps(400, Split::Heldout));
    let cfg = RmTrainConfig {
        steps: 3000,
        batch_size: 16,
        lr: 2e-3,
        lm_coef: 1.0,
        pair_coef: 1.0,
        seed,
        log_every: 50,
        ..RmTrainConfig::default()
    };
    let untrained = evaluate(&rm, &heldout).unwrap();
    let t = Instant::now();
    let report = train(&rm, &train_set, &cfg, |_| {}).unwrap();
    let m = evaluate(&rm, &heldout).unwrap();
    eprintln!(
        "PRM: first-wrong-step accuracy {:.3} -> {:.3} on {} corrupted held-out solutions, clean accepted {:.3} -> {:.3} of {}, step accuracy {:.3}; loss {:.3} -> {:.3}; {} steps in {:.1}s",
        untrained.first_error_accuracy.unwrap(),
        m.first_error_accuracy.unwrap(),
        m.wrong_solutions,
        untrained.clean_accuracy.unwrap(),
        m.clean_accuracy.unwrap(),
        m.clean_solutions,
        m.step_accuracy.unwrap(),
        report.first_loss,
        report.final_loss,
        report.steps,
        t.elapsed().as_secs_f64()
    );
    // Measured over seeds 2–6 (`.ci/README.md`): first wrong step 0.857–1.000 (median 0.880),
    // clean 0.948–1.000; untrained first wrong step 0.000–0.105. The thresholds sit ~0.1
    // under the lowest.
    assert!(
        untrained.first_error_accuracy.unwrap() <= 0.3,
        "the untrained model already locates wrong steps: {untrained:?}"
    );
    assert!(m.first_error_accuracy.unwrap() >= 0.75, "{m:?}");
    assert!(m.clean_accuracy.unwrap() >= 0.85, "{m:?}");
    // The baseline that calls every step correct locates nothing.
    let refs: Vec<&Example> = heldout.iter().collect();
    let probs = rlvr_rm::train::step_probabilities(&rm, &refs).unwrap();
    let always: Vec<Vec<f32>> = probs.iter().map(|p| vec![1.0; p.len()]).collect();
    let truths: Vec<Option<usize>> = heldout
        .iter()
        .map(|e| e.record.first_wrong_step())
        .collect();
    assert_eq!(first_error_accuracy(&always, &truths, 0.5), Some(0.0));
    assert_eq!(
        first_error_accuracy(&probs, &truths, 0.5),
        m.first_error_accuracy
    );
}
