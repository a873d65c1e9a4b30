//! `rlvr algorithms`: the registries as a user reads them — the presets (what each sets), the
//! advantage estimators (what each needs), the policy losses and the rollout-correction
//! presets, printed from `rlvr_train::catalogue` (built from the tables themselves).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct AlgorithmsArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AlgorithmsArgs) -> Result<()> {
    let r = rlvr_train::catalogue::catalogue()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    println!("presets (--config configs/NAME.toml, or algorithm.preset = NAME):");
    for p in r["presets"].as_array().into_iter().flatten() {
        let kl = match (p["kl_loss"].as_bool(), p["kl_in_reward"].as_bool()) {
            (Some(true), _) => "KL loss",
            (_, Some(true)) => "KL in reward",
            _ => "no KL",
        };
        let rc = if p["rollout_correction"] == true {
            ", rollout correction"
        } else {
            ""
        };
        println!(
            "  {:<30} adv_estimator={}, loss_mode={}, {}, {kl}{rc}",
            s(&p["name"]),
            s(&p["adv_estimator"]),
            s(&p["loss_mode"]),
            s(&p["loss_agg_mode"]),
        );
    }
    println!("\nadvantage estimators (algorithm.adv_estimator):");
    for e in r["adv_estimators"].as_array().into_iter().flatten() {
        let needs: Vec<String> = e["needs"].as_array().into_iter().flatten().map(s).collect();
        let needs = if needs.is_empty() {
            "-".to_string()
        } else {
            needs.join(", ")
        };
        println!(
            "  {:<30} {}  [needs: {needs}]",
            s(&e["name"]),
            s(&e["about"])
        );
    }
    println!("\npolicy losses (algorithm.policy_loss.loss_mode):");
    for l in r["policy_losses"].as_array().into_iter().flatten() {
        println!("  {:<30} {}", s(&l["name"]), s(&l["about"]));
    }
    println!("\nrollout-correction presets (algorithm.rollout_correction):");
    for p in r["rollout_correction_presets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  {}", s(p));
    }
    Ok(())
}
