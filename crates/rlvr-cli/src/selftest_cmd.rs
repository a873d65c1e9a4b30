//! `rlvr selftest`: check this build against reference numbers. `algorithms` recomputes a
//! golden file produced by verl's `core_algos.py` (format of `../shared/golden/algorithms.json`)
//! and prints the worst error per field, failing above the tolerance. `losses` does the same
//! for `../shared/golden/losses.json` (verl 1dda039's policy losses, extra advantage
//! estimators and rollout correction), with the per-field tolerances of losses.md.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::{Subcommand, ValueEnum};
use rlvr_train::golden::{check_golden, FieldReport, GoldenReport, Tolerance};
use rlvr_train::golden_losses::{check_losses_golden, LossesReport};
use serde_json::json;

/// Compute dtypes the algorithms selftest runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SelftestDtype {
    /// f64 (1e-9 relative, absolute floor 1e-12).
    F64,
    /// f32 (1e-5 relative, absolute floor 1e-6).
    F32,
    /// Both.
    Both,
}

#[derive(Subcommand)]
pub enum SelftestCommand {
    /// Recompute every field of an algorithms golden file (advantages, policy losses and
    /// their gradients, clip fractions, KL, value loss, entropy, pass@k, DAPO overlong) and
    /// print the worst error per field; exits non-zero when a field exceeds the tolerance.
    Algorithms {
        /// Golden file. Default: `$RLVR_SHARED/golden/algorithms.json`, else
        /// `../shared/golden/algorithms.json`.
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Compute dtype(s).
        #[arg(long, value_enum, default_value = "both")]
        dtype: SelftestDtype,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The model core on a device against the CPU and PyTorch, on the fixtures: log-probs and
    /// logits (f32 ≤ 1e-4, bf16 ≤ 1e-2), GRPO and PPO gradients (every parameter non-zero),
    /// one AdamW step, greedy tokens, and one op of every candle kernel module. With
    /// `--device cpu` the CPU runs the composed ops that CUDA runs (rlvr's fused CPU kernels
    /// off) against the fused path. Exits non-zero when a check fails.
    Device {
        /// The device under test: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: rlvr_model::DeviceSpec,
        /// Fixture directories with `reference.json` (default: every `tiny-*` in
        /// `$RLVR_SHARED/fixtures`, else `../shared/fixtures`).
        #[arg(long)]
        fixture: Vec<PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Scale one weight matrix of the device's model by 1 + X (shows the checks fail).
        #[arg(long, default_value_t = 0.0, hide = true)]
        perturb: f64,
    },
    /// Recompute every entry of a losses golden file (policy losses with gradients, token
    /// losses and metrics; extra advantage estimators; rollout-correction weights, masks,
    /// metrics and bypass losses) and print the worst error per field; NaN entries must come
    /// out NaN and refusals must be refused. Exits non-zero when a field exceeds its tolerance.
    Losses {
        /// Golden file. Default: `$RLVR_SHARED/golden/losses.json`, else
        /// `../shared/golden/losses.json`.
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Compute dtype(s).
        #[arg(long, value_enum, default_value = "both")]
        dtype: SelftestDtype,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `$RLVR_SHARED/golden/<file>`, else `../shared/golden/<file>`.
fn default_golden(file: &str) -> PathBuf {
    std::env::var_os("RLVR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
        .join("golden")
        .join(file)
}

pub fn run(cmd: SelftestCommand) -> Result<()> {
    match cmd {
        SelftestCommand::Algorithms {
            golden,
            dtype,
            json,
        } => algorithms(
            golden.unwrap_or_else(|| default_golden("algorithms.json")),
            dtype,
            json,
        ),
        SelftestCommand::Device {
            device,
            fixture,
            json,
            perturb,
        } => device_check(device, fixture, json, perturb),
        SelftestCommand::Losses {
            golden,
            dtype,
            json,
        } => losses(
            golden.unwrap_or_else(|| default_golden("losses.json")),
            dtype,
            json,
        ),
    }
}

fn device_check(
    device: rlvr_model::DeviceSpec,
    fixtures: Vec<PathBuf>,
    as_json: bool,
    perturb: f64,
) -> Result<()> {
    device.open()?; // a device that cannot open is the first thing to say
    let fixtures = if fixtures.is_empty() {
        default_fixtures()?
    } else {
        fixtures
    };
    let check = rlvr_loop::device_check::DeviceCheck {
        device,
        fixtures,
        perturb,
    };
    let started = std::time::Instant::now();
    let rep = rlvr_loop::device_check::run_device_check(&check)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!(
            "device: {}\ncandidate: {}\nreference: {}\n",
            rep.device, rep.candidate, rep.reference
        );
        println!(
            "{:<28} {:<32} {:>11} {:>9}",
            "fixture", "check", "error", "tol"
        );
        for r in &rep.rows {
            let mark = if r.ok { "ok" } else { "FAIL" };
            println!(
                "{:<28} {:<32} {:>11.3e} {:>9.0e}  {mark}",
                r.fixture, r.check, r.error, r.tolerance
            );
        }
        println!("({:.1} s)", started.elapsed().as_secs_f64());
    }
    let failed: Vec<String> = rep
        .rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} {}", r.fixture, r.check))
        .collect();
    if !failed.is_empty() {
        bail!("{} check(s) failed: {}", failed.len(), failed.join(", "));
    }
    if !as_json {
        println!("OK: every check within tolerance");
    }
    Ok(())
}

/// Every `tiny-*` fixture directory with a `reference.json`.
fn default_fixtures() -> Result<Vec<PathBuf>> {
    let root = std::env::var_os("RLVR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
        .join("fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    out.sort();
    if out.is_empty() {
        bail!("{}: no fixture with a reference.json", root.display());
    }
    Ok(out)
}

fn read_golden(path: &PathBuf) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading golden file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))
}

fn dtypes_of(dtype: SelftestDtype) -> &'static [DType] {
    match dtype {
        SelftestDtype::F64 => &[DType::F64],
        SelftestDtype::F32 => &[DType::F32],
        SelftestDtype::Both => &[DType::F64, DType::F32],
    }
}

fn losses(path: PathBuf, dtype: SelftestDtype, as_json: bool) -> Result<()> {
    let golden = read_golden(&path)?;
    let mut reports: Vec<LossesReport> = Vec::new();
    for &d in dtypes_of(dtype) {
        reports
            .push(check_losses_golden(&golden, d).with_context(|| format!("{}", path.display()))?);
    }
    if as_json {
        let out: Vec<_> = reports
            .iter()
            .map(|r| {
                let fields: serde_json::Map<String, serde_json::Value> = r
                    .fields
                    .iter()
                    .map(|(n, (tol, f))| (n.clone(), field_json(f, Some(tol))))
                    .collect();
                json!({"dtype": dtype_name(r.dtype), "passed": r.passed(), "count": r.count(),
                       "fields": fields})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"golden": path, "reports": out}))?
        );
    } else {
        println!("golden file: {}", path.display());
        for rep in &reports {
            let tol = match rep.dtype {
                DType::F64 => "1e-9 relative, 1e-12 floor; 1e-6 where verl computes in float32",
                _ => "1e-5 relative, 1e-6 floor",
            };
            println!(
                "\n{} (tolerance {tol}; column tol per field): {} values",
                dtype_name(rep.dtype),
                rep.count()
            );
            print_rows(
                rep.fields
                    .iter()
                    .map(|(n, (t, f))| (n.as_str(), Some(*t), f)),
            );
        }
    }
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.fields
                .iter()
                .filter(|(_, (_, f))| f.worst_ratio > 1.0)
                .map(move |(n, (_, f))| format!("{} {n} (at {})", dtype_name(r.dtype), f.worst_at))
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} field(s) above tolerance: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    if reports.iter().any(|r| !r.passed()) {
        bail!("nothing was compared: is this a losses golden file?");
    }
    if !as_json {
        println!("OK: every field within tolerance");
    }
    Ok(())
}

fn algorithms(path: PathBuf, dtype: SelftestDtype, as_json: bool) -> Result<()> {
    let golden = read_golden(&path)?;
    let mut reports = Vec::new();
    for &d in dtypes_of(dtype) {
        let rep = check_golden(&golden, d).with_context(|| format!("{}", path.display()))?;
        reports.push(rep);
    }
    if as_json {
        let out: Vec<_> = reports.iter().map(report_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"golden": path, "reports": out}))?
        );
    } else {
        println!("golden file: {}", path.display());
        for rep in &reports {
            print_report(rep);
        }
    }
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.fields
                .iter()
                .filter(|(_, f)| f.worst_ratio > 1.0)
                .map(move |(n, f)| format!("{} {n} (at {})", dtype_name(r.dtype), f.worst_at))
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} field(s) above tolerance: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    if reports.iter().any(|r| !r.passed()) {
        bail!("nothing was compared: is this an algorithms golden file?");
    }
    if !as_json {
        println!("OK: every field within tolerance");
    }
    Ok(())
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F64 => "f64",
        DType::F32 => "f32",
        _ => "?",
    }
}

fn print_report(rep: &GoldenReport) {
    println!(
        "\n{} (tolerance {:.0e} relative, {:.0e} absolute floor): {} values",
        dtype_name(rep.dtype),
        rep.tol.rel,
        rep.tol.abs,
        rep.count()
    );
    print_rows(rep.fields.iter().map(|(n, f)| (n.as_str(), None, f)));
}

fn print_rows<'a>(rows: impl Iterator<Item = (&'a str, Option<Tolerance>, &'a FieldReport)>) {
    println!(
        "{:<64} {:>6} {:>11} {:>11} {:>8} {:>11}  status",
        "field", "n", "max abs", "max rel", "tol", "err/tol"
    );
    for (name, tol, f) in rows {
        println!(
            "{:<64} {:>6} {:>11.3e} {:>11.3e} {:>8} {:>11.3e}  {}",
            name,
            f.count,
            f.max_abs,
            f.max_rel,
            tol.map_or(String::new(), |t| format!("{:.0e}", t.rel)),
            f.worst_ratio,
            if f.worst_ratio <= 1.0 {
                "ok".to_string()
            } else {
                format!("FAIL at {}", f.worst_at)
            }
        );
    }
}

fn field_json(f: &FieldReport, tol: Option<&Tolerance>) -> serde_json::Value {
    let mut v = json!({"count": f.count, "max_abs": f.max_abs, "max_rel": f.max_rel,
                       "worst_ratio": f.worst_ratio, "worst_at": f.worst_at,
                       "ok": f.worst_ratio <= 1.0});
    if let Some(t) = tol {
        v["rel_tol"] = json!(t.rel);
        v["abs_tol"] = json!(t.abs);
    }
    v
}

fn report_json(rep: &GoldenReport) -> serde_json::Value {
    let fields: serde_json::Map<String, serde_json::Value> = rep
        .fields
        .iter()
        .map(|(n, f)| (n.clone(), field_json(f, None)))
        .collect();
    json!({"dtype": dtype_name(rep.dtype), "rel_tol": rep.tol.rel, "abs_tol": rep.tol.abs,
           "passed": rep.passed(), "fields": fields})
}
