//! `rlvr`: the one binary. Subcommands map onto the crates (`model` → rlvr-model, ...); the
//! work lives in the libraries, this file only parses arguments and prints.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod algorithms_cmd;
mod alloc;
mod eval_cmd;
mod model_cmd;
mod rm_cmd;
mod sample_cmd;
mod sandbox_cmd;
mod selftest_cmd;
mod serve_cmd;
mod train_cmd;
mod verify_cmd;

#[derive(Parser)]
#[command(
    name = "rlvr",
    version,
    about = "Reinforcement learning from verifiable rewards for language models"
)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `rlvr_model=debug`); `RUST_LOG` also works.
    #[arg(long, global = true, default_value = "info", env = "RLVR_LOG")]
    log: String,
    /// CPU compute threads (sets `RAYON_NUM_THREADS`; default: that variable, else all cores).
    /// On a 2-core machine 1 is faster: a second candle thread mostly spins.
    #[arg(long, global = true, env = "RLVR_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load, inspect and run Hugging Face model directories.
    Model {
        #[command(subcommand)]
        command: model_cmd::ModelCommand,
    },
    /// Train a policy with RL from verifiable rewards (the main job; defaults: built-in
    /// policy, warm-up, GRPO on the arithmetic task).
    Train(train_cmd::TrainArgs),
    /// Sample G completions per prompt with the rollout engine (JSONL in, JSONL out).
    Sample(sample_cmd::SampleArgs),
    /// Evaluate a model on a dataset: pass@k, maj@k, mean@k, statuses, per-subset tables.
    Eval(eval_cmd::EvalArgs),
    /// Score completions with a verifier: JSONL lines in, one JSONL result per line out.
    Verify(verify_cmd::VerifyArgs),
    /// Serve a model over an OpenAI-compatible HTTP API (completions, chat completions;
    /// loopback by default).
    Serve(serve_cmd::ServeArgs),
    /// Reward models: train an outcome (ORM) or process (PRM) reward model.
    Rm {
        #[command(subcommand)]
        command: rm_cmd::RmCommand,
    },
    /// Run programs in the code sandboxes (WASM, Docker).
    Sandbox {
        #[command(subcommand)]
        command: sandbox_cmd::SandboxCommand,
    },
    /// List the algorithm presets, advantage estimators, policy losses and rollout-correction
    /// presets, from their registries.
    Algorithms(algorithms_cmd::AlgorithmsArgs),
    /// Check this build against reference numbers (e.g. golden files produced by verl).
    Selftest {
        #[command(subcommand)]
        command: selftest_cmd::SelftestCommand,
    },
}

/// `$RLVR_SHARED/fixtures/tiny-qwen2`, else `../shared/fixtures/tiny-qwen2`: the built-in
/// default model (a tiny random Qwen2 kept outside the repository).
pub fn default_model_dir() -> PathBuf {
    let shared = std::env::var_os("RLVR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"));
    shared.join("fixtures/tiny-qwen2")
}

fn main() {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // Before any compute: candle reads the variable when it sizes its thread pool.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Verifiers implemented in other crates, by name (verifiers/keyword is the example).
    for (name, registered) in [
        ("keyword", rlvr_verifier_keyword::register()),
        ("python", rlvr_verifier_python::register()),
        ("wasm", rlvr_verifier_wasm::register()),
        ("code", rlvr_code::register()),
        ("orm/prm", rlvr_rm::register()),
    ] {
        if let Err(e) = registered {
            eprintln!("error: registering the {name} verifier: {e}");
            std::process::exit(1);
        }
    }
    let result: Result<()> = match cli.command {
        Command::Model { command } => model_cmd::run(command),
        Command::Train(args) => train_cmd::run(args),
        Command::Sample(args) => sample_cmd::run(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Rm { command } => rm_cmd::run(command),
        Command::Sandbox { command } => sandbox_cmd::run(command),
        Command::Selftest { command } => selftest_cmd::run(command),
        Command::Algorithms(args) => algorithms_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {}", describe(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already carries (library errors often print their source inline: `FILE: os error`).
fn describe(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}
