//! Checkpoints: `checkpoints/step-NNNNNN/` holds the policy as a Hugging Face directory, the
//! optimiser's state file (`optimizer.safetensors`, [`AdamW::save_state`]),
//! `trainer_state.json` (step, data position, optimiser steps, seed) and, for PPO, the critic
//! (`critic/`, see [`Critic::save`]). A checkpoint is written into a hidden temporary directory and
//! renamed into place, then `checkpoints/latest` (written atomically) names it: a kill at any
//! moment leaves the previous checkpoint intact and `latest` pointing at a complete one.

use std::path::{Path, PathBuf};

use candle_core::Device;
use rlvr_model::ModelDir;
use rlvr_train::optim::AdamW;
use serde::{Deserialize, Serialize};

use crate::critic::Critic;
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
/// The PPO critic's subdirectory (see [`Critic::save`]).
pub const CRITIC: &str = "critic";

fn step_dir_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// Writes a checkpoint of `policy`/`opt` after `state.step` steps under `root`, keeping the
/// `keep` newest. Returns its directory.
pub fn save(
    root: &Path,
    policy: &ModelDir,
    opt: &AdamW,
    critic: Option<&Critic>,
    state: &TrainerState,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| LoopError::io(root, e))?;
    let name = step_dir_name(state.step);
    let dir = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    rlvr_model::save::save_model(&policy.model, &tmp, None, Some(&policy.dir))?;
    opt.save_state(&tmp.join(OPTIM), &var_names(&policy.model))?;
    if let Some(c) = critic {
        c.save(&tmp.join(CRITIC))?;
    }
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

/// Restores the optimiser state saved with a checkpoint (names must match the model's);
/// `steps` is the count `trainer_state.json` recorded, which must agree with the state file's.
pub fn load_optimizer(
    dir: &Path,
    policy: &ModelDir,
    opt: &mut AdamW,
    steps: usize,
    _device: &Device,
) -> Result<()> {
    let path = dir.join(OPTIM);
    opt.load_state(&path, &var_names(&policy.model))?;
    if opt.steps() != steps {
        return Err(LoopError::Other(format!(
            "{}: {} optimiser steps, but {STATE} records {steps}",
            path.display(),
            opt.steps()
        )));
    }
    Ok(())
}

/// The names of a model's variables, in the optimiser's order.
pub(crate) fn var_names(model: &rlvr_model::CausalLm) -> Vec<String> {
    model.named_vars().iter().map(|(n, _)| n.clone()).collect()
}
