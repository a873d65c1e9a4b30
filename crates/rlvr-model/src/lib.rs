//! rlvr's model core: a differentiable Qwen2/Qwen2.5, Qwen3 (dense) and Llama 2/3/3.1/3.2
//! decoder on candle, loaded from and saved to Hugging Face model directories, with the
//! tokenizer, chat templates, an explicit KV cache and greedy decoding.
//!
//! Not here: sampling strategies and batching policy (rollout), losses and optimizers (train).
//!
//! ```no_run
//! use rlvr_model::{ModelDir, Mode, Batch};
//! # fn main() -> Result<(), rlvr_model::ModelError> {
//! let m = ModelDir::load("path/to/hf-model".as_ref(), &candle_core::Device::Cpu, None)?;
//! let ids = m.tokenizer.encode("The answer is 4.", true)?;
//! let batch = Batch::right_padded(&[ids], 0, m.model.device())?;
//! let lp = m.model.token_logprobs(&batch, Mode::Infer)?; // (1, T-1)
//! # Ok(()) }
//! ```

pub mod cache;
pub mod chat;
pub mod config;
pub mod device;
pub mod error;
pub mod fused;
pub mod generate;
pub mod logprob;
pub mod rope;
pub mod save;
pub mod scalar_head;
pub mod tokenizer;
pub mod transformer;
pub mod weights;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

pub use cache::KvCache;
pub use chat::{ChatInput, ChatTemplate};
pub use config::{Family, GenerationConfig, ModelConfig, RopeScaling};
pub use device::DeviceSpec;
pub use error::{ModelError, Result};
pub use logprob::logprobs_of;
pub use scalar_head::{HeadInit, HeadSource, ScalarHeadModel};
pub use tokenizer::Tokenizer;
pub use transformer::{parameter_specs, Batch, CausalLm, Mode};
pub use weights::Checkpoint;

/// A loaded Hugging Face model directory: weights, tokenizer, generation settings.
pub struct ModelDir {
    pub dir: PathBuf,
    pub model: CausalLm,
    pub tokenizer: Tokenizer,
    pub generation: GenerationConfig,
    /// The dtype the checkpoint's tensors are stored in (of the embedding).
    pub stored_dtype: DType,
}

impl ModelDir {
    /// Loads `config.json`, the safetensors checkpoint (single or sharded), the tokenizer and
    /// `generation_config.json`. `dtype` is the compute dtype (default f32: training on CPU
    /// needs it; bf16/f16 weights are converted).
    pub fn load(dir: &Path, device: &Device, dtype: Option<DType>) -> Result<Self> {
        let config_path = dir.join("config.json");
        let cfg = ModelConfig::from_file(&config_path)?;
        let ckpt = Checkpoint::open(dir)?;
        let stored_dtype = ckpt
            .stored_dtype("model.embed_tokens.weight")
            .unwrap_or(DType::F32);
        let dtype = dtype.unwrap_or(DType::F32);
        let model = CausalLm::from_tensors(cfg, device, dtype, |name, shape| {
            ckpt.load(name, shape, dtype, device)
        })?;
        let tokenizer = Tokenizer::from_dir(dir)?;
        let generation = GenerationConfig::from_file(&dir.join("generation_config.json"))?;
        Ok(ModelDir {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            generation,
            stored_dtype,
        })
    }

    /// Every id generation should stop at: `generation_config.json`'s `eos_token_id` (an int or
    /// a list), `config.json`'s, and the tokenizer's EOS token.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.generation.eos_token_ids.clone();
        ids.extend(&self.model.config().eos_token_ids);
        ids.extend(self.tokenizer.eos_token_id());
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Parses `f32`, `bf16`, `f16` (and the torch spellings `float32`, `bfloat16`, `float16`).
pub fn parse_dtype(s: &str) -> Option<DType> {
    match s {
        "f32" | "float32" | "float" => Some(DType::F32),
        "bf16" | "bfloat16" => Some(DType::BF16),
        "f16" | "float16" | "half" => Some(DType::F16),
        _ => None,
    }
}

/// The torch spelling of a dtype, as `config.json` writes it.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float32",
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "unknown",
    }
}
