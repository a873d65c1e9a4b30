//! An estimate of the device memory a training config needs (`rlvr train --print-memory`):
//! what is resident for the whole run (weights, gradients, AdamW moments, the reference model,
//! the critic) plus the larger of the two transient peaks, rollout (the KV cache of a step's
//! sequences) and update (one micro-batch's saved activations and logits).
//!
//! The formulas, with `P` parameters, `b` bytes per element of the compute dtype, `L` layers,
//! `h` hidden size, `I` MLP width, `Hq`/`Hkv` heads, `d` head size, `V` vocabulary, `S`
//! sequences per step and `T` = `max_prompt_len + max_new_tokens`:
//! - weights `P·b`, gradients `P·b`, AdamW moments `2·P·b` (kept in the parameters' dtype);
//!   a reference model `P·b` when KL is used; a critic (PPO) `4·P·b`;
//! - KV cache `2·L·Hkv·d·T·S·b`;
//! - activations of a micro-batch of `m` sequences, `N = m·T` tokens: per layer
//!   `(8h + Hq·d + 2·Hkv·d + 4I)·b·N` plus attention scores and probabilities `2·m·Hq·T²·b`;
//!   logits `3·N·V·4` (f32 logits, log-softmax and its gradient: the composed path a GPU runs).
//!
//! It is an estimate, not an allocator trace: the device run (`scripts/device-check.sh`)
//! compares it with the measured peak.

use rlvr_model::{parameter_specs, ModelConfig};
use serde::Serialize;

use crate::config::TrainConfig;

/// One line of the estimate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryItem {
    /// What it is.
    pub what: String,
    /// Bytes.
    pub bytes: u64,
}

/// The estimate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryEstimate {
    /// Parameters of the policy.
    pub parameters: u64,
    /// Resident for the whole run.
    pub resident: Vec<MemoryItem>,
    /// The rollout's peak on top of the resident memory.
    pub rollout: Vec<MemoryItem>,
    /// The update's peak on top of the resident memory.
    pub update: Vec<MemoryItem>,
    /// Resident + the larger peak.
    pub total_bytes: u64,
}

fn sum(items: &[MemoryItem]) -> u64 {
    items.iter().map(|i| i.bytes).sum()
}

fn item(what: &str, bytes: u64) -> MemoryItem {
    MemoryItem {
        what: what.into(),
        bytes,
    }
}

/// Bytes per element of a dtype name (`f32` 4, `bf16`/`f16` 2).
fn dtype_bytes(dtype: &str) -> u64 {
    match rlvr_model::parse_dtype(dtype) {
        Some(candle_core::DType::BF16 | candle_core::DType::F16) => 2,
        _ => 4,
    }
}

/// The estimate of `cfg` training a model of shape `model`.
pub fn estimate(cfg: &TrainConfig, model: &ModelConfig) -> MemoryEstimate {
    let p: u64 = parameter_specs(model)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    let b = dtype_bytes(&cfg.model.dtype);
    let t = &cfg.trainer;
    let needs = cfg.algorithm.needs(t.ppo_epochs * t.mini_batches);
    let mut resident = vec![
        item("policy weights", p * b),
        item("policy gradients", p * b),
        item("AdamW moments (2 per parameter)", 2 * p * b),
    ];
    if needs.reference {
        resident.push(item("reference model (KL)", p * b));
    }
    if needs.critic {
        resident.push(item("critic: weights, gradients, moments", 4 * p * b));
    }
    let r = &cfg.rollout;
    let greedy = if needs.greedy_baseline { 1 } else { 0 };
    let seqs = (r.prompts_per_step * (r.n + greedy)) as u64;
    let tokens = (r.max_prompt_len + r.max_new_tokens) as u64;
    let (l, h, i) = (
        model.num_hidden_layers as u64,
        model.hidden_size as u64,
        model.intermediate_size as u64,
    );
    let (hq, hkv, d) = (
        model.num_attention_heads as u64,
        model.num_key_value_heads as u64,
        model.head_dim as u64,
    );
    let v = model.vocab_size as u64;
    let rollout = vec![item(
        &format!("KV cache: {seqs} sequences x {tokens} tokens"),
        2 * l * hkv * d * tokens * seqs * b,
    )];
    let m = (t.micro_batch_size as u64).min(seqs).max(1);
    let n = m * tokens;
    let update = vec![
        item(
            &format!("activations: micro-batch {m} x {tokens} tokens"),
            l * (8 * h + hq * d + 2 * hkv * d + 4 * i) * b * n,
        ),
        item(
            "attention scores and probabilities",
            l * 2 * m * hq * tokens * tokens * b,
        ),
        item("logits, log-softmax and gradient (f32)", 3 * n * v * 4),
    ];
    let total = sum(&resident) + sum(&rollout).max(sum(&update));
    MemoryEstimate {
        parameters: p,
        resident,
        rollout,
        update,
        total_bytes: total,
    }
}

impl MemoryEstimate {
    /// A table in MiB/GiB.
    pub fn table(&self) -> String {
        let fmt = |x: u64| {
            let g = x as f64 / (1u64 << 30) as f64;
            if g >= 1.0 {
                format!("{g:.2} GiB")
            } else {
                format!("{:.1} MiB", x as f64 / (1u64 << 20) as f64)
            }
        };
        let mut out = format!("parameters: {}\n", self.parameters);
        for (title, items) in [
            ("resident", &self.resident),
            ("rollout peak", &self.rollout),
            ("update peak", &self.update),
        ] {
            out += &format!("{title}: {}\n", fmt(sum(items)));
            for i in items {
                out += &format!("  {:<48} {:>12}\n", i.what, fmt(i.bytes));
            }
        }
        out += &format!(
            "total (resident + larger peak): {}\n",
            fmt(self.total_bytes)
        );
        out
    }
}

/// The estimate of `cfg` with its model's shape: `model.path`'s `config.json`, else the
/// built-in policy's.
pub fn estimate_for(cfg: &TrainConfig) -> crate::error::Result<MemoryEstimate> {
    let model = match &cfg.model.path {
        Some(dir) => ModelConfig::from_file(&dir.join("config.json"))?,
        None => ModelConfig::from_value(
            crate::builtin::config_json(&cfg.model.builtin),
            std::path::Path::new("<built-in policy>/config.json"),
        )?,
    };
    Ok(estimate(cfg, &model))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen2.5-0.5B's config.json (shape only).
    fn qwen05b() -> ModelConfig {
        let raw = serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
            "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "tie_word_embeddings": true, "torch_dtype": "bfloat16"
        });
        ModelConfig::from_value(raw, std::path::Path::new("config.json")).unwrap()
    }

    #[test]
    fn qwen_half_b_in_bf16() {
        let mut cfg = TrainConfig::default();
        cfg.model.dtype = "bf16".into();
        cfg.rollout.max_prompt_len = 256;
        cfg.rollout.max_new_tokens = 768;
        cfg.trainer.micro_batch_size = 4;
        let e = estimate(&cfg, &qwen05b());
        // Qwen2.5-0.5B's published parameter count (tied embeddings)
        assert_eq!(e.parameters, 494_032_768);
        // weights + gradients + 2 moments + the reference (GRPO's KL loss): 5 × 2 bytes × P
        let resident: u64 = e.resident.iter().map(|i| i.bytes).sum();
        assert_eq!(resident, 5 * 2 * 494_032_768);
        // 4 × 1024 tokens of logits over 151,936 entries, three f32 copies
        assert_eq!(e.update[2].bytes, 3 * 4096 * 151_936 * 4);
        // the KV cache of 16 × 8 sequences: 2 · 24 layers · 2 heads · 64 · 1024 tokens · 2 bytes
        assert_eq!(e.rollout[0].bytes, 2 * 24 * 2 * 64 * 1024 * 128 * 2);
        let table = e.table();
        assert!(table.contains("total"), "{table}");
        // f32 doubles the resident part; a larger micro-batch grows the update peak only
        cfg.model.dtype = "f32".into();
        let f = estimate(&cfg, &qwen05b());
        assert_eq!(
            f.resident.iter().map(|i| i.bytes).sum::<u64>(),
            2 * resident
        );
        cfg.trainer.micro_batch_size = 8;
        let g = estimate(&cfg, &qwen05b());
        assert_eq!(g.update[0].bytes, 2 * f.update[0].bytes);
        assert_eq!(g.rollout, f.rollout);
    }
}
