//! `rlvr sandbox run`: run one program in a sandbox and print the result as JSON
//! (`{"status", "exit_code", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
//! "wall_ms", "fuel_used", "backend"}`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rlvr_sandbox::docker::DockerConfig;
use rlvr_sandbox::wasm::WasmConfig;
use rlvr_sandbox::{BackendKind, BlockingRunner, Limits, Program, Status};

#[derive(Subcommand)]
pub enum SandboxCommand {
    /// Run a Python program in a sandbox and print the result as one JSON object. Exits 0
    /// whatever the program did; 2 when the sandbox itself failed (`sandbox_error`).
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The program (Python source file; `-` reads it from stdin).
    file: PathBuf,
    /// Backend: `wasm` (CPython/WASI under wasmtime) or `docker` (hardened containers).
    #[arg(long, default_value = "wasm")]
    backend: String,
    /// File whose content is the program's standard input.
    #[arg(long)]
    stdin: Option<PathBuf>,
    /// Wall-clock limit in milliseconds.
    #[arg(long, default_value_t = Limits::default().timeout_ms)]
    timeout_ms: u64,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = Limits::default().memory_mb)]
    memory_mb: u64,
    /// WASM fuel budget (0 = unlimited).
    #[arg(long, default_value_t = Limits::default().fuel.unwrap_or(0))]
    fuel: u64,
    /// Bytes kept of stdout and of stderr each.
    #[arg(long, default_value_t = Limits::default().output_bytes)]
    output_bytes: usize,
    /// Extra file in the working directory, `NAME=PATH` (repeatable).
    #[arg(long = "file", value_name = "NAME=PATH")]
    files: Vec<String>,
    /// Docker image (default `$RLVR_SANDBOX_IMAGE` or `rlvr-sandbox-python:3.11`).
    #[arg(long)]
    image: Option<String>,
    /// Arguments given to the program (`sys.argv[1:]`), after `--`.
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(cmd: SandboxCommand) -> Result<()> {
    let SandboxCommand::Run(a) = cmd;
    let kind: BackendKind = a.backend.parse().map_err(anyhow::Error::msg)?;
    let source = if a.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the program from stdin")?
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let mut program = Program::python(source);
    if let Some(p) = &a.stdin {
        program.stdin = std::fs::read_to_string(p)
            .with_context(|| format!("--stdin: reading {}", p.display()))?;
    }
    let mut files = BTreeMap::new();
    for f in &a.files {
        let Some((name, path)) = f.split_once('=') else {
            bail!("--file {f}: expected NAME=PATH");
        };
        let content =
            std::fs::read_to_string(path).with_context(|| format!("--file {f}: reading {path}"))?;
        files.insert(name.to_string(), content);
    }
    program.files = files;
    program.argv = a.args.clone();
    program
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let limits = Limits {
        timeout_ms: a.timeout_ms,
        memory_mb: a.memory_mb,
        fuel: (a.fuel > 0).then_some(a.fuel),
        output_bytes: a.output_bytes,
        ..Limits::default()
    };
    let wasm_cfg = WasmConfig {
        concurrency: 1,
        ..WasmConfig::default()
    };
    let mut docker_cfg = DockerConfig {
        concurrency: 1,
        warm_pool: Some(0),
        ..DockerConfig::default()
    };
    if let Some(img) = &a.image {
        docker_cfg.image = img.clone();
    }
    let runner = BlockingRunner::open_with(kind, &wasm_cfg, &docker_cfg)
        .with_context(|| format!("opening the {} sandbox", kind.as_str()))?;
    let result = runner.run(program, limits);
    println!("{}", serde_json::to_string(&result)?);
    if result.status == Status::SandboxError {
        std::process::exit(2);
    }
    Ok(())
}
