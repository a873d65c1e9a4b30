//! Checkpoints: `checkpoints/step-NNNNNN/` holds the policy as a Hugging Face directory, the
//! optimiser moments (`optimizer.safetensors`) and `trainer_state.json` (step, data position,
//! optimiser steps, seed). A checkpoint is written into a hidden temporary directory and
//! renamed into place, then `checkpoints/latest` (written atomically) names it: a kill at any
//! moment leaves the previous checkpoint intact and `latest` pointing at a complete one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rlvr_model::ModelDir;
use rlvr_train::optim::{AdamW, AdamWState};
use serde::{Deserialize, Serialize};

use crate::error::{LoopError, Result};

/// What besides weights and moments a resume needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// RL steps completed.
    pub step: usize,
    /// Next position in the prompt stream.
    pub data_pos: u64,
    /// Optimiser steps taken.
    pub optimizer_steps: usize,
    /// The run's seed.
    pub seed: u64,
    /// The model directory RL started from (the reference policy).
    pub base_model: PathBuf,
}

const LATEST: &str = "latest";
const STATE: &str = "trainer_state.json";
const OPTIM: &str = "optimizer.safetensors";

fn step_dir_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// Writes a checkpoint of `policy`/`opt` after `state.step` steps under `root`, keeping the
/// `keep` newest. Returns its directory.
pub fn save(
    root: &Path,
    policy: &ModelDir,
    opt: &AdamW,
    state: &TrainerState,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| LoopError::io(root, e))?;
    let name = step_dir_name(state.step);
    let dir = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    rlvr_model::save::save_model(&policy.model, &tmp, None, Some(&policy.dir))?;
    let st = opt.state();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for ((pname, _), (m, v)) in policy.model.named_vars().iter().zip(&st.moments) {
        tensors.push((format!("{pname}.exp_avg"), m.contiguous()?));
        tensors.push((format!("{pname}.exp_avg_sq"), v.contiguous()?));
    }
    let meta: HashMap<String, String> =
        [("optimizer_steps".to_string(), st.steps.to_string())].into();
    let optim_path = tmp.join(OPTIM);
    safetensors::serialize_to_file(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(meta),
        &optim_path,
    )
    .map_err(|e| LoopError::Other(format!("{}: {e}", optim_path.display())))?;
    let text = serde_json::to_string_pretty(state).expect("state serializes");
    std::fs::write(tmp.join(STATE), text).map_err(|e| LoopError::io(tmp.join(STATE), e))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| LoopError::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| LoopError::io(&dir, e))?;
    rlvr_store::write_atomic(&root.join(LATEST), name.as_bytes())?;
    prune(root, keep, &name)?;
    Ok(dir)
}

fn prune(root: &Path, keep: usize, newest: &str) -> Result<()> {
    let mut dirs: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| LoopError::io(root, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    dirs.sort();
    let keep = keep.max(1);
    if dirs.len() > keep {
        for d in &dirs[..dirs.len() - keep] {
            if d != newest {
                let _ = std::fs::remove_dir_all(root.join(d));
            }
        }
    }
    Ok(())
}

/// The newest complete checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let p = root.join(LATEST);
    if !p.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&p).map_err(|e| LoopError::io(&p, e))?;
    let dir = root.join(name.trim());
    if !dir.join(STATE).exists() {
        return Err(LoopError::Other(format!(
            "{}: names {}, which has no {STATE}",
            p.display(),
            dir.display()
        )));
    }
    Ok(Some(dir))
}

/// Reads a checkpoint's trainer state.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let p = dir.join(STATE);
    let text = std::fs::read_to_string(&p).map_err(|e| LoopError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| LoopError::Other(format!("{}: {e}", p.display())))
}

/// Restores the optimiser moments saved with a checkpoint (names must match the model's).
pub fn load_optimizer(
    dir: &Path,
    policy: &ModelDir,
    opt: &mut AdamW,
    steps: usize,
    device: &Device,
) -> Result<()> {
    let p = dir.join(OPTIM);
    let tensors = candle_core::safetensors::load(&p, device)
        .map_err(|e| LoopError::Other(format!("{}: {e}", p.display())))?;
    let mut moments = Vec::new();
    for (pname, _) in policy.model.named_vars() {
        let get = |suffix: &str| {
            tensors
                .get(&format!("{pname}.{suffix}"))
                .cloned()
                .ok_or_else(|| {
                    LoopError::Other(format!("{}: missing tensor {pname}.{suffix}", p.display()))
                })
        };
        moments.push((get("exp_avg")?, get("exp_avg_sq")?));
    }
    opt.load_state(AdamWState { steps, moments })?;
    Ok(())
}
