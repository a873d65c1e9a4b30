//! `config.json` of a Hugging Face model directory, in transformers v4 form (top-level
//! `rope_theta`, `rope_scaling`) and v5 form (`rope_parameters`), for the Qwen2/Qwen2.5,
//! Qwen3 (dense) and Llama 2/3/3.1/3.2 families.
//!
//! Anything rlvr cannot compute faithfully (another architecture, activation, RoPE type or
//! option, sliding-window attention) is an error that names the file and the field.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{read_json, ModelError, Result};

/// The decoder families rlvr implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Qwen2 / Qwen2.5: biases on q, k, v.
    Qwen2,
    /// Qwen3 dense: per-head RMSNorm on q and k, optional attention bias.
    Qwen3,
    /// Llama 2 / 3 / 3.1 / 3.2: optional attention and MLP biases.
    Llama,
}

impl Family {
    /// The `model_type` string of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Llama => "llama",
        }
    }

    /// The `architectures` entry of `config.json`.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Qwen3 => "Qwen3ForCausalLM",
            Family::Llama => "LlamaForCausalLM",
        }
    }

    fn from_model_type(s: &str) -> Option<Family> {
        match s {
            "qwen2" => Some(Family::Qwen2),
            "qwen3" => Some(Family::Qwen3),
            "llama" => Some(Family::Llama),
            _ => None,
        }
    }
}

/// How rotary position embeddings are scaled (`rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Position interpolation: frequencies divided by `factor`.
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows once a sequence outruns `max_position_embeddings`.
    Dynamic { factor: f64 },
    /// Llama 3.1 scaling: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// YaRN: interpolation/extrapolation ramp between `beta_slow` and `beta_fast` rotations,
    /// and an attention factor applied to cos/sin.
    Yarn {
        factor: f64,
        original_max_position_embeddings: f64,
        beta_fast: f64,
        beta_slow: f64,
        attention_factor: f64,
        truncate: bool,
    },
}

impl RopeScaling {
    /// The `rope_type` name.
    pub fn name(&self) -> &'static str {
        match self {
            RopeScaling::Default => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Dynamic { .. } => "dynamic",
            RopeScaling::Llama3 { .. } => "llama3",
            RopeScaling::Yarn { .. } => "yarn",
        }
    }
}

/// Everything the transformer needs from `config.json`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q, k, v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Bias on gate/up/down projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm on q and k (Qwen3).
    pub qk_norm: bool,
    /// `dtype` / `torch_dtype` as written.
    pub dtype: Option<String>,
    /// The dtype RoPE inverse frequencies are rounded through: the checkpoint's `dtype` when
    /// it is bf16/f16, as transformers does when it loads the checkpoint in that dtype (the
    /// `inv_freq` buffer is cast with the model), else f32.
    pub rope_dtype: candle_core::DType,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// The file as read, kept so that saving writes back every field.
    pub raw: Value,
}

/// Keys a `rope_scaling` / `rope_parameters` object may carry.
const ROPE_KEYS: &[&str] = &[
    "rope_type",
    "type",
    "rope_theta",
    "factor",
    "original_max_position_embeddings",
    "low_freq_factor",
    "high_freq_factor",
    "attention_factor",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "truncate",
    "partial_rotary_factor",
];

struct Fields<'a> {
    path: &'a Path,
    obj: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &str, msg: impl Into<String>) -> ModelError {
        ModelError::config(self.path, format!("{}{}", self.prefix, field), msg)
    }

    /// A present, non-null value.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn usize_opt(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
                self.err(field, format!("expected a non-negative integer, found {v}"))
            }),
        }
    }

    fn usize_req(&self, field: &str) -> Result<usize> {
        self.usize_opt(field)?
            .ok_or_else(|| self.err(field, "required field is missing"))
    }

    fn f64_opt(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, found {v}"))),
        }
    }

    fn bool_opt(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected true or false, found {v}"))),
        }
    }

    fn str_opt(&self, field: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a string, found {v}"))),
        }
    }

    /// An id field that may be an integer or a list of integers.
    fn ids(&self, field: &str) -> Result<Vec<u32>> {
        match self.get(field) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64().map(|x| x as u32).ok_or_else(|| {
                        self.err(field, format!("expected integer token ids, found {v}"))
                    })
                })
                .collect(),
            Some(v) => v.as_u64().map(|x| vec![x as u32]).ok_or_else(|| {
                self.err(field, format!("expected a token id or a list, found {v}"))
            }),
        }
    }
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw = read_json(path)?;
        Self::from_value(raw, path)
    }

    /// Validates an already parsed `config.json`; `path` is used in error messages.
    pub fn from_value(raw: Value, path: &Path) -> Result<Self> {
        let obj = raw
            .as_object()
            .ok_or_else(|| ModelError::config(path, "<root>", "expected a JSON object"))?;
        let f = Fields {
            path,
            obj,
            prefix: "",
        };

        let model_type = f
            .str_opt("model_type")?
            .ok_or_else(|| f.err("model_type", "required field is missing"))?;
        let family = Family::from_model_type(model_type).ok_or_else(|| {
            f.err(
                "model_type",
                format!("unsupported architecture `{model_type}` (supported: qwen2, qwen3, llama)"),
            )
        })?;
        if let Some(archs) = f.get("architectures") {
            let ok = archs
                .as_array()
                .map(|a| a.iter().all(|x| x.as_str() == Some(family.architecture())))
                .unwrap_or(false);
            if !ok {
                return Err(f.err(
                    "architectures",
                    format!(
                        "unsupported value {archs} for model_type `{model_type}` (expected [\"{}\"])",
                        family.architecture()
                    ),
                ));
            }
        }

        let hidden_size = f.usize_req("hidden_size")?;
        let num_attention_heads = f.usize_req("num_attention_heads")?;
        let num_key_value_heads = f
            .usize_opt("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 {
            return Err(f.err("num_attention_heads", "must be positive"));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(f.err(
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads = {num_attention_heads}"),
            ));
        }
        let head_dim = match f.usize_opt("head_dim")? {
            Some(d) => d,
            // Qwen3Config's default is 128; the others derive it.
            None if family == Family::Qwen3 => 128,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(f.err(
                        "hidden_size",
                        "not divisible by num_attention_heads and no head_dim given",
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(f.err(
                "head_dim",
                format!("{head_dim} is odd; RoPE needs an even head_dim"),
            ));
        }

        let act = f
            .str_opt("hidden_act")?
            .or(f.str_opt("hidden_activation")?)
            .unwrap_or("silu");
        if act != "silu" {
            return Err(f.err(
                "hidden_act",
                format!("unsupported activation `{act}` (supported: silu)"),
            ));
        }
        if let Some(tp) = f.usize_opt("pretraining_tp")? {
            if tp != 1 {
                tracing::debug!(
                    "{}: pretraining_tp = {tp} is ignored (it does not change the math)",
                    path.display()
                );
            }
        }
        if family != Family::Llama && f.bool_opt("use_sliding_window")? == Some(true) {
            return Err(f.err(
                "use_sliding_window",
                "sliding-window attention is not supported",
            ));
        }
        if let Some(layer_types) = f.get("layer_types").and_then(|v| v.as_array()) {
            if let Some(bad) = layer_types
                .iter()
                .find(|t| t.as_str() != Some("full_attention"))
            {
                return Err(f.err(
                    "layer_types",
                    format!("unsupported layer type {bad} (supported: full_attention)"),
                ));
            }
        }

        let attention_bias = f.bool_opt("attention_bias")?.unwrap_or(false);
        let (qkv_bias, o_bias) = match family {
            Family::Qwen2 => (true, false),
            Family::Qwen3 | Family::Llama => (attention_bias, attention_bias),
        };
        let mlp_bias = family == Family::Llama && f.bool_opt("mlp_bias")?.unwrap_or(false);

        let max_position_embeddings = f.usize_opt("max_position_embeddings")?.unwrap_or(2048);
        let (rope_theta, rope_scaling) = parse_rope(&f, max_position_embeddings)?;

        let dtype = f
            .str_opt("dtype")?
            .or(f.str_opt("torch_dtype")?)
            .map(str::to_string);

        let rope_dtype = match dtype.as_deref() {
            Some("bfloat16") => candle_core::DType::BF16,
            Some("float16") => candle_core::DType::F16,
            _ => candle_core::DType::F32,
        };
        let cfg = ModelConfig {
            family,
            vocab_size: f.usize_req("vocab_size")?,
            hidden_size,
            intermediate_size: f.usize_req("intermediate_size")?,
            num_hidden_layers: f.usize_req("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            tie_word_embeddings: f.bool_opt("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias,
            qk_norm: family == Family::Qwen3,
            dtype,
            rope_dtype,
            bos_token_id: f.ids("bos_token_id")?.first().copied(),
            eos_token_ids: f.ids("eos_token_id")?,
            pad_token_id: f.ids("pad_token_id")?.first().copied(),
            raw: raw.clone(),
        };
        Ok(cfg)
    }

    /// Number of query heads per key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Total number of parameters (tied embeddings counted once).
    pub fn num_parameters(&self) -> usize {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (nq, nkv) = (self.num_attention_heads, self.num_key_value_heads);
        let mut attn = h * nq * d + 2 * h * nkv * d + nq * d * h;
        if self.qkv_bias {
            attn += nq * d + 2 * nkv * d;
        }
        if self.o_bias {
            attn += h;
        }
        if self.qk_norm {
            attn += 2 * d;
        }
        let mut mlp = 3 * h * i;
        if self.mlp_bias {
            mlp += 2 * i + h;
        }
        let layer = attn + mlp + 2 * h;
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + self.num_hidden_layers * layer + h + head
    }
}

fn parse_rope(f: &Fields, max_pos: usize) -> Result<(f64, RopeScaling)> {
    // v5: `rope_parameters` holds everything; v4: `rope_theta` + optional `rope_scaling`.
    let (obj, prefix) = if let Some(v) = f.get("rope_parameters") {
        let o = v
            .as_object()
            .ok_or_else(|| f.err("rope_parameters", "expected an object"))?;
        (Some(o), "rope_parameters.")
    } else if let Some(v) = f.get("rope_scaling") {
        let o = v
            .as_object()
            .ok_or_else(|| f.err("rope_scaling", "expected an object or null"))?;
        (Some(o), "rope_scaling.")
    } else {
        (None, "")
    };
    let top_theta = f.f64_opt("rope_theta")?;
    let Some(obj) = obj else {
        return Ok((top_theta.unwrap_or(10000.0), RopeScaling::Default));
    };
    let r = Fields {
        path: f.path,
        obj,
        prefix,
    };
    for key in obj.keys() {
        if !ROPE_KEYS.contains(&key.as_str()) {
            // Per-layer-type parameter sets (`{"full_attention": {...}}`) land here too.
            return Err(r.err(key, "unsupported RoPE option"));
        }
    }
    let theta = r.f64_opt("rope_theta")?.or(top_theta).unwrap_or(10000.0);
    if let Some(p) = r
        .f64_opt("partial_rotary_factor")?
        .or(f.f64_opt("partial_rotary_factor")?)
    {
        if p != 1.0 {
            return Err(r.err(
                "partial_rotary_factor",
                format!("{p} is not supported (only 1.0)"),
            ));
        }
    }
    let rope_type = r
        .str_opt("rope_type")?
        .or(r.str_opt("type")?)
        .unwrap_or("default");
    let factor = || -> Result<f64> {
        let x = r
            .f64_opt("factor")?
            .ok_or_else(|| r.err("factor", format!("required for rope_type `{rope_type}`")))?;
        if x < 1.0 {
            return Err(r.err("factor", format!("{x} must be >= 1")));
        }
        Ok(x)
    };
    let scaling = match rope_type {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear { factor: factor()? },
        "dynamic" => RopeScaling::Dynamic { factor: factor()? },
        "llama3" => {
            let low = r.f64_opt("low_freq_factor")?.ok_or_else(|| r.err("low_freq_factor", "required for llama3"))?;
            let high = r.f64_opt("high_freq_factor")?.ok_or_else(|| r.err("high_freq_factor", "required for llama3"))?;
            if high <= low {
                return Err(r.err("high_freq_factor", "must be greater than low_freq_factor"));
            }
            RopeScaling::Llama3 {
                factor: factor()?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: r
                    .f64_opt("original_max_position_embeddings")?
                    .ok_or_else(|| r.err("original_max_position_embeddings", "required for llama3"))?,
            }
        }
        "yarn" => {
            // The configured factor scales the frequencies (as in the YaRN paper and vLLM; Qwen2.5
            // ships `factor: 4` with `original_max_position_embeddings` equal to
            // `max_position_embeddings`, so the ratio of the two would wrongly give 1). The
            // original context defaults to `max_position_embeddings`.
            let factor = factor()?;
            let original = r
                .f64_opt("original_max_position_embeddings")?
                .unwrap_or(max_pos as f64);
            let get_mscale = |scale: f64, mscale: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * mscale * scale.ln() + 1.0
                }
            };
            let attention_factor = match r.f64_opt("attention_factor")? {
                Some(a) => a,
                None => match (r.f64_opt("mscale")?, r.f64_opt("mscale_all_dim")?) {
                    (Some(m), Some(ma)) if m != 0.0 && ma != 0.0 => {
                        get_mscale(factor, m) / get_mscale(factor, ma)
                    }
                    _ => get_mscale(factor, 1.0),
                },
            };
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                beta_fast: r.f64_opt("beta_fast")?.unwrap_or(32.0),
                beta_slow: r.f64_opt("beta_slow")?.unwrap_or(1.0),
                attention_factor,
                truncate: r.bool_opt("truncate")?.unwrap_or(true),
            }
        }
        other => {
            return Err(r.err(
                "rope_type",
                format!("unsupported RoPE type `{other}` (supported: default, linear, dynamic, llama3, yarn)"),
            ))
        }
    };
    Ok((theta, scaling))
}

/// `generation_config.json`: the fields sampling needs.
#[derive(Debug, Clone, Default)]
pub struct GenerationConfig {
    /// Stop ids (an int or a list in the file; Qwen2.5 instruct models list two).
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    /// The file as read (empty object when absent).
    pub raw: Value,
}

impl GenerationConfig {
    /// Reads `generation_config.json`; a missing file gives the empty config.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(GenerationConfig {
                raw: Value::Object(Map::new()),
                ..Default::default()
            });
        }
        let raw = read_json(path)?;
        let obj = raw
            .as_object()
            .ok_or_else(|| ModelError::config(path, "<root>", "expected a JSON object"))?;
        let f = Fields {
            path,
            obj,
            prefix: "",
        };
        Ok(GenerationConfig {
            eos_token_ids: f.ids("eos_token_id")?,
            bos_token_id: f.ids("bos_token_id")?.first().copied(),
            pad_token_id: f.ids("pad_token_id")?.first().copied(),
            temperature: f.f64_opt("temperature")?,
            top_p: f.f64_opt("top_p")?,
            top_k: f.usize_opt("top_k")?,
            raw: raw.clone(),
        })
    }
}
