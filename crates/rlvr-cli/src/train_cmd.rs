//! `rlvr train`: load the config (TOML + `--set`), run or resume, print the summary.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rlvr_loop::{RunOptions, TrainConfig};

#[derive(Args)]
pub struct TrainArgs {
    /// TOML config (default: the built-in defaults, the same as `configs/default.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value: `--set rollout.n=16 --set algorithm.preset=dapo`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Train this Hugging Face model directory instead of the built-in policy (no warm-up).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training data: `arithmetic`, a built-in dataset name (gsm8k, math500, …) or a
    /// JSONL/JSON/Parquet file. Without --config, data other than `arithmetic` is scored by
    /// the `math` verifier alone (the default math + `<think>/<answer>` format reward is the
    /// built-in task's) unless `--set verifier=...` says otherwise.
    #[arg(long)]
    data: Option<String>,
    /// Compute device: cpu, cuda or cuda:N (sets `model.device`; CUDA needs a build with
    /// `--features cuda`).
    #[arg(long)]
    device: Option<rlvr_model::DeviceSpec>,
    /// Run directory (default `runs/<YYYYmmdd-HHMMSS>-<name>`).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long, conflicts_with_all = ["config", "sets", "model", "data", "run_dir", "device"])]
    resume: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Print the estimated device memory of this config (weights, gradients, optimiser,
    /// reference, critic, KV cache, activations) and exit.
    #[arg(long)]
    print_memory: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut sets = args.sets.clone();
    if let Some(m) = &args.model {
        sets.push(format!(
            "model.path={}",
            toml_string(&m.display().to_string())
        ));
        sets.push("warmup.enabled=false".into());
    }
    if let Some(d) = args.device {
        sets.push(format!("model.device=\"{d}\""));
    }
    if let Some(d) = &args.data {
        sets.push(format!("data.train={}", toml_string(d)));
        let verifier_set = args
            .sets
            .iter()
            .any(|s| s.trim_start().starts_with("verifier"));
        if d != "arithmetic" && args.config.is_none() && !verifier_set {
            sets.insert(0, "verifier=\"math\"".to_string());
        }
    }
    let config = if args.resume.is_some() {
        TrainConfig::default()
    } else {
        TrainConfig::load(args.config.as_deref(), &sets)?
    };
    if args.print_memory {
        print!("{}", rlvr_loop::memory::estimate_for(&config)?.table());
        return Ok(());
    }
    let summary = rlvr_loop::train(RunOptions {
        config,
        run_dir: args.run_dir,
        resume: args.resume,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        command: std::env::args().collect(),
    })
    .context("training failed")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}
