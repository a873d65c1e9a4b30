//! `rlvr rm train`: train an outcome or process reward model and save it with its head.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use rlvr_rm::job::TrainJob;
use rlvr_rm::RmKind;

#[derive(Subcommand)]
pub enum RmCommand {
    /// Train a reward model from JSONL: `{prompt, chosen, rejected}` (Bradley–Terry),
    /// `{prompt, response, label}` (pointwise BCE) for `--kind orm`; `{prompt, steps,
    /// labels}` (per-step BCE) for `--kind prm`. Prints pairwise accuracy, AUC and per-step
    /// accuracy on held-out records and saves an HF directory with `score.weight`.
    Train(TrainArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Orm,
    Prm,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Outcome (`orm`) or process (`prm`) reward model.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Base model directory (a causal LM, a `*ForSequenceClassification` checkpoint or a
    /// reward model saved by rlvr).
    #[arg(long)]
    model: PathBuf,
    /// Training data (JSONL).
    #[arg(long)]
    data: PathBuf,
    /// Evaluation data (JSONL); default: `eval_fraction` of `--data`, held out.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Output directory (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Label `{prompt, response, ground_truth}` lines with this verifier (e.g. `math`).
    #[arg(long)]
    label_verifier: Option<String>,
    /// Override a setting: `--set steps=500 --set lr=1e-4 --set step_separator=ки
    /// --set aggregation=min` (fields of the training config and the model settings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

pub fn run(cmd: RmCommand) -> Result<()> {
    match cmd {
        RmCommand::Train(a) => {
            let job = TrainJob {
                kind: match a.kind {
                    Kind::Orm => RmKind::Orm,
                    Kind::Prm => RmKind::Prm,
                },
                model: a.model,
                data: a.data,
                eval: a.eval,
                out: a.out,
                sets: a.sets,
                label_verifier: a.label_verifier,
            };
            let s = job.run(|_| {}).context("rm train")?;
            if s.head_initialised {
                eprintln!(
                    "note: the base model had no score.weight; the head was initialised at random"
                );
            }
            println!(
                "trained a {} on {} records in {:.1}s: loss {:.4} -> {:.4}",
                s.kind.name(),
                s.train_records,
                s.report.seconds,
                s.report.first_loss,
                s.report.final_loss
            );
            if let (Some(b), Some(m)) = (&s.before, &s.after) {
                let show = |name: &str, x: Option<f64>, y: Option<f64>| {
                    if let (Some(x), Some(y)) = (x, y) {
                        println!("  {name:<22} {x:.3} -> {y:.3}");
                    }
                };
                println!("held-out ({} records), before -> after:", s.eval_records);
                show(
                    "pairwise accuracy",
                    b.pairwise_accuracy,
                    m.pairwise_accuracy,
                );
                show("AUC", b.auc, m.auc);
                show("accuracy", b.point_accuracy, m.point_accuracy);
                show("per-step accuracy", b.step_accuracy, m.step_accuracy);
                show(
                    "first-wrong-step acc.",
                    b.first_error_accuracy,
                    m.first_error_accuracy,
                );
                show("clean accepted", b.clean_accuracy, m.clean_accuracy);
            }
            println!("saved {} (metrics in rm_metrics.json)", s.out.display());
            Ok(())
        }
    }
}
