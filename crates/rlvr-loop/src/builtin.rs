//! The built-in policy: a small Qwen2-architecture model with a byte-level tokenizer (every
//! byte one token, no merges) plus ChatML specials and single tokens for the reasoning tags,
//! written as an ordinary Hugging Face directory — so everything downstream (loading,
//! sampling, saving, `--model DIR`) treats it like any checkpoint.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rlvr_model::{CausalLm, ModelConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{LoopError, Result};

/// Special and added tokens of the built-in tokenizer, after the 256 byte tokens.
pub const ADDED_TOKENS: [(&str, bool); 7] = [
    ("<|endoftext|>", true),
    ("<|im_start|>", true),
    ("<|im_end|>", true),
    ("<think>", false),
    ("</think>", false),
    ("<answer>", false),
    ("</answer>", false),
];

/// ChatML, as Qwen2 instruct models render it (without a default system message).
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Shape of the built-in policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinModelConfig {
    /// Hidden size (default 128).
    pub hidden_size: usize,
    /// Decoder layers (default 4).
    pub num_hidden_layers: usize,
    /// Attention heads (default 4).
    pub num_attention_heads: usize,
    /// Key/value heads (default 2).
    pub num_key_value_heads: usize,
    /// MLP width (default 384).
    pub intermediate_size: usize,
    /// Longest sequence (default 512).
    pub max_position_embeddings: usize,
    /// Standard deviation of the initial weights (default 0.02, as transformers).
    pub initializer_range: f64,
}

impl Default for BuiltinModelConfig {
    fn default() -> Self {
        BuiltinModelConfig {
            hidden_size: 128,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            intermediate_size: 384,
            max_position_embeddings: 512,
            initializer_range: 0.02,
        }
    }
}

/// GPT-2's byte → printable character map (byte-level BPE's alphabet).
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        out[b as usize] = char::from_u32(c).expect("valid code point");
    }
    out
}

/// Vocabulary size of the built-in tokenizer.
pub fn vocab_size() -> usize {
    256 + ADDED_TOKENS.len()
}

/// `tokenizer.json` of the built-in tokenizer.
pub fn tokenizer_json() -> serde_json::Value {
    let chars = bytes_to_unicode();
    let mut vocab = serde_json::Map::new();
    for (id, c) in chars.iter().enumerate() {
        vocab.insert(c.to_string(), json!(id));
    }
    let added: Vec<_> = ADDED_TOKENS
        .iter()
        .enumerate()
        .map(|(i, (t, special))| {
            vocab.insert(t.to_string(), json!(256 + i));
            json!({"id": 256 + i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": special})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []},
    })
}

fn id_of(token: &str) -> u32 {
    256 + ADDED_TOKENS
        .iter()
        .position(|(t, _)| *t == token)
        .expect("a built-in token") as u32
}

/// `config.json` of the built-in policy.
pub fn config_json(cfg: &BuiltinModelConfig) -> serde_json::Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": null,
        "eos_token_id": id_of("<|im_end|>"),
        "pad_token_id": id_of("<|endoftext|>"),
        "hidden_act": "silu",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "initializer_range": cfg.initializer_range,
        "max_position_embeddings": cfg.max_position_embeddings,
        "num_attention_heads": cfg.num_attention_heads,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_key_value_heads": cfg.num_key_value_heads,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": true,
        "use_sliding_window": false,
        "sliding_window": null,
        "vocab_size": vocab_size(),
        "torch_dtype": "float32",
    })
}

/// Normal samples for the initial weights (SplitMix64 + Box–Muller), so a seed gives the
/// same model on every machine and candle version.
struct Normal(rlvr_data::rng::SplitMix64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self, std: f64) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("JSON serializes") + "\n";
    rlvr_store::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes the built-in tokenizer files into `dir`.
pub fn write_tokenizer(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| LoopError::io(dir, e))?;
    write_json(&dir.join("tokenizer.json"), &tokenizer_json())?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": null,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "unk_token": null,
            "model_max_length": 512,
            "chat_template": CHAT_TEMPLATE,
        }),
    )?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({
            "eos_token_id": [id_of("<|im_end|>"), id_of("<|endoftext|>")],
            "pad_token_id": id_of("<|endoftext|>"),
        }),
    )
}

/// Creates a randomly initialised built-in policy (HF directory) in `dir`: linear and
/// embedding weights ~ N(0, initializer_range²), norms 1, biases 0.
pub fn create(dir: &Path, cfg: &BuiltinModelConfig, seed: u64) -> Result<()> {
    write_tokenizer(dir)?;
    let config_path = dir.join("config.json");
    let raw = config_json(cfg);
    let model_cfg = ModelConfig::from_value(raw.clone(), &config_path)?;
    let mut rng = Normal(rlvr_data::rng::SplitMix64::new(seed ^ 0x005e_ed0f_b017));
    let model = CausalLm::from_tensors(model_cfg, &Device::Cpu, DType::F32, |name, shape| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| rng.sample(cfg.initializer_range)).collect()
        };
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    })?;
    write_json(&config_path, &raw)?;
    rlvr_model::save::save_model(&model, dir, None, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tokenizer_round_trips_and_has_single_token_tags() {
        let dir = tempfile::tempdir().unwrap();
        create(
            dir.path(),
            &BuiltinModelConfig {
                hidden_size: 32,
                intermediate_size: 64,
                ..Default::default()
            },
            1,
        )
        .unwrap();
        let md = rlvr_model::ModelDir::load(dir.path(), &Device::Cpu, None).unwrap();
        let tok = &md.tokenizer;
        let text = "<think>7+9=16\n4+8+1=13</think><answer>936</answer> é ∑";
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        assert_eq!(ids[0], id_of("<think>"));
        assert_eq!(
            tok.encode("<answer>", false).unwrap(),
            vec![id_of("<answer>")]
        );
        let msgs = vec![json!({"role": "user", "content": "1+2"})];
        let prompt = tok.apply_chat_template(&msgs, true, None).unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>user\n1+2<|im_end|>\n<|im_start|>assistant\n"
        );
        let mut stops = md.stop_ids();
        stops.sort();
        assert_eq!(stops, vec![id_of("<|endoftext|>"), id_of("<|im_end|>")]);
        // Deterministic weights.
        let dir2 = tempfile::tempdir().unwrap();
        create(
            dir2.path(),
            &BuiltinModelConfig {
                hidden_size: 32,
                intermediate_size: 64,
                ..Default::default()
            },
            1,
        )
        .unwrap();
        let a = std::fs::read(dir.path().join("model.safetensors")).unwrap();
        let b = std::fs::read(dir2.path().join("model.safetensors")).unwrap();
        assert_eq!(a, b);
    }
}
