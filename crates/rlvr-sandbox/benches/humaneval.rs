//! HumanEval canonical solutions per second, side by side in one run: the WASM sandbox, the
//! Docker sandbox, and a native `python3` subprocess per program (no isolation: the baseline).
//!
//! `cargo bench -p rlvr-sandbox --bench humaneval [-- --concurrency N --rounds R --only native,wasm,docker,docker-run]`
//! (`docker-run`: one hardened `docker run --rm` per program, the naive baseline for Docker).
//! Prints throughput, p50/p99 latency and the ratio to native. Needs ../shared (HumanEval),
//! the WASM interpreter and, for the Docker column, a running engine with the sandbox image.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use rlvr_sandbox::docker::{DockerConfig, DockerSandbox};
use rlvr_sandbox::wasm::{WasmConfig, WasmSandbox};
use rlvr_sandbox::{Limits, Program, Sandbox, Status};
use tokio::io::AsyncWriteExt;

fn shared() -> PathBuf {
    std::env::var_os("RLVR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn programs() -> Vec<String> {
    let path = shared().join("datasets/humaneval/test.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set RLVR_SHARED)", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            format!(
                "{}{}\n{}\ncheck({})\n",
                s("prompt"),
                s("canonical_solution"),
                s("test"),
                s("entry_point")
            )
        })
        .collect()
}

/// The native interpreter: `$RLVR_BENCH_PYTHON`, else Debian's `/usr/bin/python3` (the one
/// the Docker image is built from; a pyenv shim would add ~50 ms per start), else `python3`.
fn python() -> String {
    std::env::var("RLVR_BENCH_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

/// One native run: `python3 -B -` with the program on stdin, killed at the timeout.
async fn native(src: String, limits: Limits) -> (Status, f64) {
    let t = Instant::now();
    let mut child = match tokio::process::Command::new(python())
        .args(["-B", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return (Status::SandboxError, 0.0),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(src.as_bytes()).await;
    }
    let out = tokio::time::timeout(limits.timeout(), child.wait_with_output()).await;
    let st = match out {
        Ok(Ok(o)) if o.status.success() => Status::Ok,
        Ok(Ok(_)) => Status::NonzeroExit,
        Ok(Err(_)) => Status::SandboxError,
        Err(_) => Status::Timeout,
    };
    (st, t.elapsed().as_secs_f64() * 1e3)
}

/// One `docker run --rm` per program with the same hardening as the Docker sandbox (the
/// naive way to isolate with Docker; the reference point).
async fn docker_run(src: String, limits: Limits) -> (Status, f64) {
    let t = Instant::now();
    let image = DockerConfig::default().image;
    let mem = format!("{}m", limits.memory_mb);
    let mut child = match tokio::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--read-only",
            "--tmpfs",
        ])
        .arg("/tmp:size=64m")
        .args([
            "--memory",
            &mem,
            "--memory-swap",
            &mem,
            "--pids-limit",
            "64",
        ])
        .args([
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--init",
        ])
        .args([
            "--user",
            "65534:65534",
            "--log-driver",
            "none",
            &image,
            "python3",
            "-B",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return (Status::SandboxError, 0.0),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(src.as_bytes()).await;
    }
    let out = tokio::time::timeout(limits.timeout() * 3, child.wait_with_output()).await;
    let st = match out {
        Ok(Ok(o)) if o.status.success() => Status::Ok,
        Ok(Ok(_)) => Status::NonzeroExit,
        Ok(Err(_)) => Status::SandboxError,
        Err(_) => Status::Timeout,
    };
    (st, t.elapsed().as_secs_f64() * 1e3)
}

#[derive(Clone)]
enum Runner {
    Native,
    DockerRun,
    Sb(Arc<dyn Sandbox>),
}

async fn bench(name: &str, runner: Runner, progs: &[String], conc: usize, rounds: usize) -> f64 {
    let limits = Limits::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(conc));
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for _ in 0..rounds {
        for p in progs {
            let (sem, runner, p) = (sem.clone(), runner.clone(), p.clone());
            hs.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.unwrap();
                match runner {
                    Runner::Native => native(p, limits).await,
                    Runner::DockerRun => docker_run(p, limits).await,
                    Runner::Sb(sb) => {
                        let r = sb.run(Program::python(p), limits).await;
                        (r.status, r.wall_ms)
                    }
                }
            }));
        }
    }
    let mut lat = Vec::new();
    let mut ok = 0;
    for h in hs {
        let (st, ms) = h.await.unwrap();
        ok += (st == Status::Ok) as usize;
        lat.push(ms);
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f).round() as usize];
    let n = lat.len();
    let rate = n as f64 / secs;
    println!(
        "| {name} | {ok}/{n} | {secs:.1} | {rate:.1} | {:.0} | {:.0} |",
        q(0.5),
        q(0.99)
    );
    rate
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let conc: usize = arg("--concurrency")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
    let rounds: usize = arg("--rounds").and_then(|v| v.parse().ok()).unwrap_or(1);
    let only = arg("--only").unwrap_or_else(|| "native,wasm,docker,docker-run".into());
    let progs = programs();
    println!(
        "HumanEval canonical solutions ({} programs × {rounds}), concurrency {conc}\n",
        progs.len()
    );
    println!("| runner | ok | seconds | programs/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut native_rate = None;
    let mut rates = Vec::new();
    if only.contains("native") {
        let name = format!("native {}", python());
        native_rate = Some(bench(&name, Runner::Native, &progs, conc, rounds).await);
    }
    if only.contains("wasm") {
        let t = Instant::now();
        let cfg = WasmConfig {
            concurrency: conc,
            ..WasmConfig::default()
        };
        match WasmSandbox::new(&cfg) {
            Ok(sb) => {
                eprintln!(
                    "(wasm: interpreter loaded in {:.0} ms)",
                    t.elapsed().as_secs_f64() * 1e3
                );
                let r = bench("wasm", Runner::Sb(Arc::new(sb)), &progs, conc, rounds).await;
                rates.push(("wasm", r));
            }
            Err(e) => println!("| wasm | unavailable: {e} |"),
        }
    }
    if only.split(',').any(|o| o == "docker") {
        let cfg = DockerConfig {
            concurrency: conc.max(4),
            ..DockerConfig::default()
        };
        match DockerSandbox::connect(cfg).await {
            Ok(sb) => {
                let sb = Arc::new(sb);
                // let the warm pool fill before timing
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                let r = bench(
                    "docker",
                    Runner::Sb(sb.clone()),
                    &progs,
                    conc.max(4),
                    rounds,
                )
                .await;
                rates.push(("docker", r));
                sb.shutdown().await;
            }
            Err(e) => println!("| docker | unavailable: {e} |"),
        }
    }
    if only.contains("docker-run") {
        let r = bench(
            "docker run --rm",
            Runner::DockerRun,
            &progs,
            conc.max(4),
            rounds,
        )
        .await;
        rates.push(("docker run --rm", r));
    }
    if let Some(nr) = native_rate {
        println!();
        for (name, r) in rates {
            println!("{name} / native throughput: {:.2}×", r / nr);
        }
    }
}
