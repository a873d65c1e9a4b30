//! `rlvr rm train`: train an outcome or process reward model and save it with its head.
//! `rlvr rm label`: Math-Shepherd step labels from a policy's completions.

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
    /// Label solution steps automatically (Math-Shepherd): for every step prefix, sample
    /// `--rollouts` completions from `--model` (the policy) and label the step `+` when any
    /// reaches the right answer (`--soft`: the fraction that do). Input JSONL lines:
    /// `{prompt, ground_truth, response | steps}`; a line without a solution gets
    /// `--solutions` sampled ones. Output: `{prompt, steps, labels, ground_truth}` lines, the
    /// `rlvr rm train --kind prm` format.
    Label(LabelArgs),
}

#[derive(Args)]
pub struct LabelArgs {
    #[command(flatten)]
    model: crate::model_cmd::ModelArgs,
    /// Input JSONL: `{prompt, ground_truth (or answer), response or steps (optional)}`.
    #[arg(long)]
    data: PathBuf,
    /// Output JSONL (written to a temporary file, then renamed).
    #[arg(long)]
    out: PathBuf,
    /// The verifier judging completed solutions (a registry spec: `math`, `code`, JSON…).
    #[arg(long, default_value = "math")]
    verifier: String,
    /// Completions sampled per step prefix.
    #[arg(long, default_value_t = 8)]
    rollouts: usize,
    /// Soft labels: the fraction of completions that reach the answer.
    #[arg(long)]
    soft: bool,
    /// Solutions sampled for a line that has none.
    #[arg(long, default_value_t = 4)]
    solutions: usize,
    /// Step separator (the PRM's).
    #[arg(long, default_value = "\n")]
    separator: String,
    /// Send `prompt` text as a user message through the chat template (written out as
    /// messages, so the PRM sees the same prompt).
    #[arg(long)]
    chat: bool,
    /// Sampling temperature of solutions and completions.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Tokens per completion.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop strings of the policy's completions.
    #[arg(long)]
    stop: Vec<String>,
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
    /// Compute device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: rlvr_model::DeviceSpec,
}

pub fn run(cmd: RmCommand) -> Result<()> {
    match cmd {
        RmCommand::Label(a) => label(a),
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
                device: a.device,
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

/// The `--separator` value with `\n` and `\t` escapes read.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

fn label(a: LabelArgs) -> Result<()> {
    use rlvr_rm::shepherd::{label_steps, ShepherdConfig};
    use rlvr_rollout::{Prompt, RolloutEngine, SamplingParams};
    use serde_json::{json, Value};
    use std::io::Write;

    let md = a.model.load()?;
    let verifier = rlvr_verify::registry::from_spec(
        &serde_json::from_str::<Value>(&a.verifier).unwrap_or(Value::String(a.verifier.clone())),
    )
    .with_context(|| format!("--verifier {}", a.verifier))?;
    let separator = unescape(&a.separator);
    if separator.is_empty() {
        anyhow::bail!("--separator: must not be empty");
    }
    let engine = RolloutEngine::from_model_dir(&md);
    let params = |n: usize, seed: u64| SamplingParams {
        temperature: a.temperature,
        max_new_tokens: a.max_new_tokens,
        stop: a.stop.clone(),
        n,
        seed,
        ..SamplingParams::default()
    };
    let prompt_ids = |p: &Value| -> Result<Vec<u32>> {
        Ok(match p {
            Value::String(t) => md.tokenizer.encode(t, true)?,
            Value::Array(m) => md.tokenizer.encode_chat(m, true)?,
            _ => anyhow::bail!("`prompt` must be a string or a list of messages"),
        })
    };
    let name = a.data.display().to_string();
    let text = std::fs::read_to_string(&a.data).with_context(|| format!("reading {name}"))?;
    let tmp = a.out.with_extension("jsonl.tmp");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let cfg = ShepherdConfig {
        rollouts: a.rollouts.max(1),
        soft: a.soft,
    };
    let (mut written, mut steps_total, mut good) = (0usize, 0usize, 0.0f64);
    let mut calls = 0u64;
    for (i, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).with_context(|| format!("{at}: invalid JSON"))?;
        let mut prompt = v
            .get("prompt")
            .cloned()
            .with_context(|| format!("{at}: field `prompt`: missing"))?;
        if a.chat {
            if let Value::String(t) = &prompt {
                prompt = json!([{"role": "user", "content": t}]);
            }
        }
        let gt = v
            .get("ground_truth")
            .or_else(|| v.get("answer"))
            .cloned()
            .with_context(|| format!("{at}: field `ground_truth`: missing"))?;
        let ids = prompt_ids(&prompt).with_context(|| format!("{at}: field `prompt`"))?;
        let solutions: Vec<Vec<String>> = match (v.get("steps"), v.get("response")) {
            (Some(Value::Array(st)), _) => vec![st
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    s.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("{at}: field `steps[{k}]`: expected a string"))
                })
                .collect::<Result<_>>()?],
            (Some(_), _) => anyhow::bail!("{at}: field `steps`: expected a list of strings"),
            (None, Some(Value::String(r))) => vec![rlvr_rm::model::split_steps(r, &separator)],
            (None, Some(_)) => anyhow::bail!("{at}: field `response`: expected a string"),
            (None, None) => {
                calls += 1;
                let out = engine.generate_keyed(
                    &[Prompt {
                        ids: ids.clone(),
                        key: i as u64,
                    }],
                    &params(a.solutions.max(1), a.seed ^ calls),
                )?;
                out.completions
                    .iter()
                    .map(|c| {
                        rlvr_rm::model::split_steps(&rlvr_eval::jobs::response_text(c), &separator)
                    })
                    .collect()
            }
        };
        for steps in solutions {
            let record = label_steps(
                &prompt,
                &steps,
                &separator,
                &gt,
                verifier.as_ref(),
                &cfg,
                |_, prefix, n| {
                    calls += 1;
                    let mut full = ids.clone();
                    full.extend(md.tokenizer.encode(prefix, false)?);
                    let out = engine
                        .generate_keyed(
                            &[Prompt {
                                ids: full,
                                key: i as u64,
                            }],
                            &params(n, a.seed ^ calls),
                        )
                        .map_err(|e| rlvr_rm::RmError::Input(e.to_string()))?;
                    Ok(out
                        .completions
                        .iter()
                        .map(rlvr_eval::jobs::response_text)
                        .collect())
                },
            )
            .with_context(|| format!("{at}: labelling"))?;
            let rlvr_rm::Record::Steps { steps, labels, .. } = &record else {
                unreachable!("label_steps returns step records")
            };
            steps_total += steps.len();
            good += labels.iter().flatten().map(|l| *l as f64).sum::<f64>();
            let labels: Vec<Value> = labels
                .iter()
                .map(|l| match l {
                    Some(x) if a.soft => json!(x),
                    Some(x) if *x >= 0.5 => json!("+"),
                    Some(_) => json!("-"),
                    None => json!("neutral"),
                })
                .collect();
            serde_json::to_writer(
                &mut w,
                &json!({"prompt": prompt, "steps": steps, "labels": labels, "ground_truth": gt}),
            )?;
            w.write_all(b"\n")?;
            written += 1;
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), a.out.display()))?;
    println!(
        "labelled {written} solutions ({steps_total} steps, {:.1}% good) in {}",
        100.0 * good / steps_total.max(1) as f64,
        a.out.display()
    );
    Ok(())
}
