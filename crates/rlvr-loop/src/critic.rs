//! The PPO critic: a copy of the policy's architecture and starting weights with a scalar
//! value head (`value_head.weight`, `(hidden, 1)`, zero at the start, so the first values are
//! 0) read at the positions that predict each response token — verl's alignment
//! (`values[:, -R-1:-1]`), the same as the policy's logits. It has its own AdamW
//! (`algorithm.critic.optim`).
//!
//! Saved in a checkpoint's `critic/` directory: the backbone as a Hugging Face directory, the
//! head in `value_head.safetensors`, the optimiser moments in `optimizer.safetensors` (names as
//! the policy's, plus `value_head.weight`) — so a PPO run resumes exactly.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rlvr_model::{CausalLm, Mode, ModelDir};
use rlvr_train::optim::{AdamW, OptimConfig};

use crate::batch::Packed;
use crate::checkpoint;
use crate::error::{LoopError, Result};

const HEAD: &str = "value_head.weight";
const HEAD_FILE: &str = "value_head.safetensors";
const OPTIM: &str = "optimizer.safetensors";

/// The value model and its optimiser.
pub struct Critic {
    /// The backbone (its LM head is unused).
    pub model: ModelDir,
    /// `(hidden, 1)` value head.
    pub head: Var,
    /// The critic's optimiser over the backbone's variables and the head.
    pub opt: AdamW,
}

fn other(path: &Path, e: impl std::fmt::Display) -> LoopError {
    LoopError::Other(format!("{}: {e}", path.display()))
}

impl Critic {
    /// A critic from a model directory (the RL start: the policy's base weights), with a zero
    /// value head and a fresh optimiser.
    pub fn new(model: ModelDir, optim: OptimConfig) -> Result<Self> {
        let h = model.model.config().hidden_size;
        let dtype = model.model.dtype();
        let device = model.model.device().clone();
        let head = Var::from_tensor(&Tensor::zeros((h, 1), dtype, &device)?)?;
        let mut vars = model.model.vars();
        vars.push(head.clone());
        let opt = AdamW::new(vars, optim)?;
        Ok(Critic { model, head, opt })
    }

    /// The names of [`vars`](Self::vars), in order.
    fn var_names(&self) -> Vec<String> {
        let mut names = checkpoint::var_names(&self.model.model);
        names.push(HEAD.into());
        names
    }

    /// The variables the optimiser updates (backbone, then head).
    pub fn vars(&self) -> Vec<Var> {
        let mut v = self.model.model.vars();
        v.push(self.head.clone());
        v
    }

    /// `(B, R)` values of a packed batch: the head applied to the hidden states of the
    /// positions that predict each response token. `Mode::Train` keeps the graph.
    pub fn values(&self, packed: &Packed, mode: Mode) -> Result<Tensor> {
        let m: &CausalLm = &self.model.model;
        let hidden = m.hidden_states(&packed.batch, None, mode)?;
        let h = hidden.narrow(1, packed.prompt_len - 1, packed.response_len)?;
        let head = match mode {
            Mode::Train => self.head.as_tensor().clone(),
            _ => self.head.as_tensor().detach(),
        };
        let (b, r, d) = h.dims3()?;
        let v = h
            .reshape((b * r, d))?
            .matmul(&head.to_dtype(h.dtype())?)?
            .reshape((b, r))?;
        Ok(v)
    }

    /// Writes the critic into `dir` (created).
    pub fn save(&self, dir: &Path) -> Result<()> {
        rlvr_model::save::save_model(&self.model.model, dir, None, Some(&self.model.dir))?;
        let head_path = dir.join(HEAD_FILE);
        let head = self.head.as_tensor().contiguous()?;
        safetensors::serialize_to_file([(HEAD, &head)], None, &head_path)
            .map_err(|e| other(&head_path, e))?;
        checkpoint::save_moments(&dir.join(OPTIM), &self.var_names(), &self.opt)?;
        Ok(())
    }

    /// Reads a critic written by [`save`](Self::save).
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: Option<DType>,
        optim: OptimConfig,
    ) -> Result<Self> {
        let model = ModelDir::load(dir, device, dtype)?;
        let head_path = dir.join(HEAD_FILE);
        let t =
            candle_core::safetensors::load(&head_path, device).map_err(|e| other(&head_path, e))?;
        let head = t
            .get(HEAD)
            .ok_or_else(|| other(&head_path, format!("missing tensor {HEAD}")))?
            .to_dtype(model.model.dtype())?;
        let h = model.model.config().hidden_size;
        if head.dims() != [h, 1] {
            return Err(other(
                &head_path,
                format!("{HEAD} has shape {:?}, expected [{h}, 1]", head.dims()),
            ));
        }
        let mut critic = Critic::new(model, optim)?;
        critic.head.set(&head)?;
        let optim_path = dir.join(OPTIM);
        let steps = checkpoint::saved_steps(&optim_path)?;
        let names = critic.var_names();
        checkpoint::load_moments(&optim_path, &names, &mut critic.opt, steps, device)?;
        Ok(critic)
    }
}
