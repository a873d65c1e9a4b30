//! The PPO critic: a [`ScalarHeadModel`] — a copy of the policy's architecture and starting
//! weights with the scalar head `score.weight` (`[1, hidden]`, zero at the start, so the first
//! values are 0) — read at the positions that predict each response token — verl's alignment
//! (`values[:, -R-1:-1]`), the same as the policy's logits. It has its own AdamW
//! (`algorithm.critic.optim`).
//!
//! Saved in a checkpoint's `critic/` directory in the scalar-head format the reward model
//! shares (an HF `*ForSequenceClassification` directory: `config.json`, `model.safetensors`
//! with the backbone and `score.weight`, the tokenizer files), plus the optimiser's state file
//! `optimizer.safetensors` ([`AdamW::save_state`], names as the model's, `score.weight`
//! last) — so a PPO run resumes exactly. Critic directories of the earlier format (a causal LM
//! plus `value_head.safetensors`) still load.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rlvr_model::scalar_head::LEGACY_HEAD;
use rlvr_model::{HeadInit, HeadSource, Mode, ModelDir, ScalarHeadModel};
use rlvr_train::optim::{AdamW, OptimConfig};
use serde_json::Map;

use crate::batch::Packed;
use crate::error::Result;

/// The optimiser's state file in a critic directory.
pub const OPTIM: &str = "optimizer.safetensors";

/// The value model and its optimiser.
pub struct Critic {
    /// The backbone (its LM head is unused) and the value head.
    pub model: ScalarHeadModel,
    /// The critic's optimiser over [`vars`](Self::vars).
    pub opt: AdamW,
}

impl Critic {
    /// A critic from a model directory (the RL start: the policy's base weights), with a zero
    /// value head and a fresh optimiser.
    pub fn new(model: ModelDir, optim: OptimConfig) -> Result<Self> {
        let model = ScalarHeadModel::from_backbone(model.model, HeadInit::Zeros, Some(&model.dir))?;
        Self::with_model(model, optim)
    }

    fn with_model(model: ScalarHeadModel, optim: OptimConfig) -> Result<Self> {
        let opt = AdamW::new(model.vars(), optim)?;
        Ok(Critic { model, opt })
    }

    /// The value head, `[1, hidden]`.
    pub fn head(&self) -> &Var {
        self.model.head()
    }

    /// The variables the optimiser updates (backbone without an untied LM head, then head).
    pub fn vars(&self) -> Vec<Var> {
        self.model.vars()
    }

    /// `(B, R)` values of a packed batch: the head applied to the hidden states of the
    /// positions that predict each response token. `Mode::Train` keeps the graph.
    pub fn values(&self, packed: &Packed, mode: Mode) -> Result<Tensor> {
        let hidden = self
            .model
            .backbone()
            .hidden_states(&packed.batch, None, mode)?;
        let h = hidden.narrow(1, packed.prompt_len - 1, packed.response_len)?;
        Ok(self.model.head_of(&h, mode)?)
    }

    /// Writes the critic into `dir` (created): the model, then the optimiser state.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(dir, &Map::new())?;
        self.opt
            .save_state(&dir.join(OPTIM), &self.model.var_names())?;
        Ok(())
    }

    /// Reads a critic written by [`save`](Self::save) (or in the earlier format).
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: Option<DType>,
        optim: OptimConfig,
    ) -> Result<Self> {
        let model = ScalarHeadModel::load(dir, device, dtype, HeadInit::Zeros)?;
        let legacy = model.head_source() == HeadSource::Legacy;
        let mut critic = Self::with_model(model, optim)?;
        let path = dir.join(OPTIM);
        let mut names = critic.model.var_names();
        if !legacy {
            critic.opt.load_state(&path, &names)?;
            return Ok(critic);
        }
        // The earlier format named the head `value_head.weight`, `[hidden, 1]`.
        *names.last_mut().expect("the head is a variable") = LEGACY_HEAD.into();
        let mut state = AdamW::read_state(&path, &names)?;
        let (m, v) = state.moments.pop().expect("one moment pair per name");
        state
            .moments
            .push((m.t()?.contiguous()?, v.t()?.contiguous()?));
        critic.opt.set_state(state)?;
        Ok(critic)
    }
}
