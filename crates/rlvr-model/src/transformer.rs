//! The decoder: Qwen2/Qwen2.5, Qwen3 (dense) and Llama 2/3/3.1/3.2 in one implementation,
//! with Hugging Face parameter names.
//!
//! Two modes share the same weights. [`Mode::Train`] reads the trainable [`Var`]s and uses
//! only ops that candle can differentiate (RMSNorm, RoPE and softmax written with basic ops);
//! [`Mode::Infer`] reads detached views of the same storage (no autograd graph is kept, and
//! optimizer updates are seen) and uses candle's fused kernels.

use candle_core::{DType, Device, Tensor, Var, D};

use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::logprob::logprobs_of;
use crate::rope;

/// Which forward path to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Differentiable: gradients reach every parameter.
    Train,
    /// No autograd graph; fused kernels.
    Infer,
}

/// One forward call's tokens: ids `(B, T)`, their RoPE positions and which are real tokens.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids, `(B, T)`, u32.
    pub ids: Tensor,
    /// RoPE position of every token, row-major `B × T`.
    pub positions: Vec<u32>,
    /// 1 for a real token, 0 for padding, row-major `B × T`. Padding is never attended to.
    pub mask: Vec<u8>,
    pub batch: usize,
    pub seq: usize,
}

impl Batch {
    /// A batch from a rectangular id matrix and attention mask; positions `0..T` in every row
    /// (transformers' default for a forward call, right for right-padded batches).
    pub fn from_padded(
        ids: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        device: &Device,
    ) -> Result<Self> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 {
            return Err(ModelError::Input("empty batch".into()));
        }
        if attention_mask.len() != b {
            return Err(ModelError::Input(format!(
                "attention mask has {} rows for {b} sequences",
                attention_mask.len()
            )));
        }
        let mut flat = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for (i, (row, m)) in ids.iter().zip(attention_mask).enumerate() {
            if row.len() != t || m.len() != t {
                return Err(ModelError::Input(format!("row {i} is not of length {t}")));
            }
            flat.extend_from_slice(row);
            mask.extend(m.iter().map(|&x| u8::from(x != 0)));
        }
        let positions = (0..b).flat_map(|_| 0..t as u32).collect();
        Ok(Batch {
            ids: Tensor::from_vec(flat, (b, t), device)?,
            positions,
            mask,
            batch: b,
            seq: t,
        })
    }

    /// Sequences of different lengths padded on the right with `pad_id`.
    pub fn right_padded(seqs: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Self> {
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let ids: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| {
                let mut r = s.clone();
                r.resize(t, pad_id);
                r
            })
            .collect();
        let mask: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| (0..t).map(|j| u32::from(j < s.len())).collect())
            .collect();
        Self::from_padded(&ids, &mask, device)
    }

    /// Sequences padded on the left with `pad_id` (for batched decoding: every row's last
    /// token is at the same index). Real tokens get positions `0..len`.
    pub fn left_padded(seqs: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Self> {
        let b = seqs.len();
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || t == 0 {
            return Err(ModelError::Input("empty batch".into()));
        }
        let mut flat = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut positions = Vec::with_capacity(b * t);
        for s in seqs {
            let pad = t - s.len();
            flat.extend(std::iter::repeat_n(pad_id, pad));
            flat.extend_from_slice(s);
            mask.extend(std::iter::repeat_n(0u8, pad));
            mask.extend(std::iter::repeat_n(1u8, s.len()));
            positions.extend(std::iter::repeat_n(0u32, pad));
            positions.extend(0..s.len() as u32);
        }
        Ok(Batch {
            ids: Tensor::from_vec(flat, (b, t), device)?,
            positions,
            mask,
            batch: b,
            seq: t,
        })
    }

    /// One new token per row (a decoding step) at the given positions.
    pub fn step(tokens: &[u32], positions: &[u32], device: &Device) -> Result<Self> {
        if tokens.len() != positions.len() || tokens.is_empty() {
            return Err(ModelError::Input(
                "one token and one position per row".into(),
            ));
        }
        let b = tokens.len();
        Ok(Batch {
            ids: Tensor::from_vec(tokens.to_vec(), (b, 1), device)?,
            positions: positions.to_vec(),
            mask: vec![1; b],
            batch: b,
            seq: 1,
        })
    }
}

/// Positions whose vocabulary projection is computed at once by inference-mode `token_logprobs`.
const INFER_LOGPROB_CHUNK: usize = 512;

/// Up to this many rows, `Linear` multiplies as (W · xᵀ)ᵀ.
const SMALL_M: usize = 128;

#[derive(Clone)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let last = dims[dims.len() - 1];
        let lead: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((lead, last))?;
        // For few rows (decoding) gemm is up to 2x faster on (W · xᵀ)ᵀ than on x · Wᵀ: the
        // strided Wᵀ operand is repacked on every call (measured on 2-core AMD EPYC, f32).
        let mut y = if lead <= SMALL_M {
            self.weight.matmul(&x2.t()?)?.t()?.contiguous()?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out = dims.to_vec();
        *out.last_mut().expect("non-empty dims") = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
    }
}

#[derive(Clone)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    gate: Linear,
    up: Linear,
    down: Linear,
    input_norm: Tensor,
    post_norm: Tensor,
}

#[derive(Clone)]
struct Weights {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
}

/// Names and shapes of every parameter, in the order transformers' `state_dict` lists them
/// (`lm_head.weight` only when embeddings are untied).
pub fn parameter_specs(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let mut specs = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
    )];
    for l in 0..cfg.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        let mut linear = |name: &str, out: usize, inp: usize, bias: bool| {
            specs.push((p(&format!("{name}.weight")), vec![out, inp]));
            if bias {
                specs.push((p(&format!("{name}.bias")), vec![out]));
            }
        };
        linear("self_attn.q_proj", nq * d, h, cfg.qkv_bias);
        linear("self_attn.k_proj", nkv * d, h, cfg.qkv_bias);
        linear("self_attn.v_proj", nkv * d, h, cfg.qkv_bias);
        linear("self_attn.o_proj", h, nq * d, cfg.o_bias);
        if cfg.qk_norm {
            specs.push((p("self_attn.q_norm.weight"), vec![d]));
            specs.push((p("self_attn.k_norm.weight"), vec![d]));
        }
        let mut linear = |name: &str, out: usize, inp: usize, bias: bool| {
            specs.push((p(&format!("{name}.weight")), vec![out, inp]));
            if bias {
                specs.push((p(&format!("{name}.bias")), vec![out]));
            }
        };
        linear("mlp.gate_proj", i, h, cfg.mlp_bias);
        linear("mlp.up_proj", i, h, cfg.mlp_bias);
        linear("mlp.down_proj", h, i, cfg.mlp_bias);
        specs.push((p("input_layernorm.weight"), vec![h]));
        specs.push((p("post_attention_layernorm.weight"), vec![h]));
    }
    specs.push(("model.norm.weight".to_string(), vec![h]));
    if !cfg.tie_word_embeddings {
        specs.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, h]));
    }
    specs
}

impl Weights {
    fn build(cfg: &ModelConfig, get: &dyn Fn(&str) -> Tensor) -> Weights {
        let linear = |name: String, bias: bool| Linear {
            weight: get(&format!("{name}.weight")),
            bias: bias.then(|| get(&format!("{name}.bias"))),
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let p = format!("model.layers.{l}");
                Layer {
                    q: linear(format!("{p}.self_attn.q_proj"), cfg.qkv_bias),
                    k: linear(format!("{p}.self_attn.k_proj"), cfg.qkv_bias),
                    v: linear(format!("{p}.self_attn.v_proj"), cfg.qkv_bias),
                    o: linear(format!("{p}.self_attn.o_proj"), cfg.o_bias),
                    q_norm: cfg
                        .qk_norm
                        .then(|| get(&format!("{p}.self_attn.q_norm.weight"))),
                    k_norm: cfg
                        .qk_norm
                        .then(|| get(&format!("{p}.self_attn.k_norm.weight"))),
                    gate: linear(format!("{p}.mlp.gate_proj"), cfg.mlp_bias),
                    up: linear(format!("{p}.mlp.up_proj"), cfg.mlp_bias),
                    down: linear(format!("{p}.mlp.down_proj"), cfg.mlp_bias),
                    input_norm: get(&format!("{p}.input_layernorm.weight")),
                    post_norm: get(&format!("{p}.post_attention_layernorm.weight")),
                }
            })
            .collect();
        let embed = get("model.embed_tokens.weight");
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            get("lm_head.weight")
        };
        Weights {
            embed,
            layers,
            norm: get("model.norm.weight"),
            lm_head,
        }
    }
}

/// A causal language model: trainable parameters plus the forward passes over them.
pub struct CausalLm {
    cfg: ModelConfig,
    device: Device,
    dtype: DType,
    params: Vec<(String, Var)>,
    train: Weights,
    infer: Weights,
}

impl CausalLm {
    /// Builds the model from a tensor source called once per parameter (name, shape).
    pub fn from_tensors(
        cfg: ModelConfig,
        device: &Device,
        dtype: DType,
        mut load: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        let mut params = Vec::new();
        for (name, shape) in parameter_specs(&cfg) {
            let t = load(&name, &shape)?;
            if t.dims() != shape.as_slice() {
                return Err(ModelError::Input(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(dtype)?.to_device(device)?;
            params.push((name, Var::from_tensor(&t)?));
        }
        let lookup = |detach: bool| {
            let params = &params;
            move |name: &str| -> Tensor {
                let var = &params
                    .iter()
                    .find(|(n, _)| n == name)
                    .expect("parameter_specs lists every tensor Weights::build asks for")
                    .1;
                if detach {
                    var.as_tensor().detach()
                } else {
                    var.as_tensor().clone()
                }
            }
        };
        let train = Weights::build(&cfg, &lookup(false));
        let infer = Weights::build(&cfg, &lookup(true));
        Ok(CausalLm {
            cfg,
            device: device.clone(),
            dtype,
            params,
            train,
            infer,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Every trainable parameter with its Hugging Face name, in `state_dict` order.
    pub fn named_vars(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The trainable parameters (for an optimizer).
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Total number of parameter values.
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Final hidden states `(B, T, hidden)` (after the last norm). With a cache, the batch's
    /// tokens follow the cached ones and their keys/values are appended to it (inference only).
    pub fn hidden_states(
        &self,
        batch: &Batch,
        cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let (b, t) = (batch.batch, batch.seq);
        if batch.ids.dims() != [b, t] || batch.positions.len() != b * t || batch.mask.len() != b * t
        {
            return Err(ModelError::Input(
                "batch ids, positions and mask disagree in shape".into(),
            ));
        }
        if mode == Mode::Train && cache.is_some() {
            return Err(ModelError::Input(
                "the KV cache is for inference; train-mode forwards take whole sequences".into(),
            ));
        }
        let w = match mode {
            Mode::Train => &self.train,
            Mode::Infer => &self.infer,
        };
        let cfg = &self.cfg;
        let max_id = batch.ids.max_all()?.to_scalar::<u32>()?;
        if max_id as usize >= cfg.vocab_size {
            return Err(ModelError::Input(format!(
                "token id {max_id} is outside the vocabulary (size {})",
                cfg.vocab_size
            )));
        }

        let mut cache = cache;
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_ref() {
            if past > 0 && c.batch_size() != b {
                return Err(ModelError::Input(format!(
                    "cache holds {} rows, batch has {b}",
                    c.batch_size()
                )));
            }
        }
        let max_pos = batch.positions.iter().copied().max().unwrap_or(0) as usize;
        let freqs = rope::frequencies(
            &cfg.rope_scaling,
            cfg.rope_theta,
            cfg.head_dim,
            cfg.max_position_embeddings,
            max_pos,
        )
        .rounded_to(cfg.rope_dtype);
        let (cos, sin) = rope::cos_sin_half(&freqs, &batch.positions, b, t, &self.device)?;

        // Key validity: cached keys, then this batch's tokens.
        let mut key_mask: Vec<u8> = Vec::with_capacity(b * (past + t));
        for row in 0..b {
            if let Some(c) = cache.as_ref() {
                if past > 0 {
                    key_mask.extend_from_slice(c.mask_row(row));
                }
            }
            key_mask.extend_from_slice(&batch.mask[row * t..(row + 1) * t]);
        }
        let mask = attention_bias(&key_mask, b, t, past, &self.device)?;

        let h = cfg.hidden_size;
        let mut x = w
            .embed
            .index_select(&batch.ids.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        for (l, layer) in w.layers.iter().enumerate() {
            let hs = rms_norm(&x, &layer.input_norm, cfg.rms_norm_eps, mode)?;
            let layer_cache = cache.as_mut().map(|c| c.layer_mut(l));
            let attn = self.attention(layer, &hs, &cos, &sin, mask.as_ref(), layer_cache, mode)?;
            x = (x + attn)?;
            let hs = rms_norm(&x, &layer.post_norm, cfg.rms_norm_eps, mode)?;
            let gate = layer.gate.forward(&hs)?;
            let up = layer.up.forward(&hs)?;
            let act = if mode == Mode::Train && crate::fused::eligible(&gate) {
                crate::fused::swiglu(&gate, &up)?
            } else {
                (gate.silu()? * up)?
            };
            let mlp = layer.down.forward(&act)?;
            x = (x + mlp)?;
        }
        if let Some(c) = cache.as_mut() {
            c.push_mask(&batch.mask, b, t);
        }
        rms_norm(&x, &w.norm, cfg.rms_norm_eps, mode)
    }

    /// Logits from final hidden states `(B, T, hidden)` → `(B, T, vocab)`.
    pub fn lm_head(&self, hidden: &Tensor, mode: Mode) -> Result<Tensor> {
        let w = match mode {
            Mode::Train => &self.train.lm_head,
            Mode::Infer => &self.infer.lm_head,
        };
        Linear {
            weight: w.clone(),
            bias: None,
        }
        .forward(hidden)
    }

    /// Logits `(B, T, vocab)` for every position. With a cache, the batch's tokens follow the
    /// cached ones and their keys/values are appended to it (inference only).
    pub fn forward(
        &self,
        batch: &Batch,
        cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let hidden = self.hidden_states(batch, cache, mode)?;
        self.lm_head(&hidden, mode)
    }

    /// Logits of the last position of every row only, `(B, vocab)`: what decoding needs
    /// (skips the vocabulary projection of the other positions).
    pub fn forward_last(
        &self,
        batch: &Batch,
        cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let hidden = self.hidden_states(batch, cache, mode)?;
        let t = hidden.dim(1)?;
        Ok(self
            .lm_head(&hidden.narrow(1, t - 1, 1)?, mode)?
            .squeeze(1)?)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut candle_nn::kv_cache::KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (nq, nkv, d) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let mut q = layer.q.forward(x)?.reshape((b, t, nq, d))?;
        let mut k = layer.k.forward(x)?.reshape((b, t, nkv, d))?;
        let v = layer.v.forward(x)?.reshape((b, t, nkv, d))?;
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = rms_norm(&q, qn, cfg.rms_norm_eps, mode)?;
            k = rms_norm(&k, kn, cfg.rms_norm_eps, mode)?;
        }
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (q, k) = match mode {
            Mode::Train => (
                rope::apply_differentiable(&q, cos, sin)?,
                rope::apply_differentiable(&k, cos, sin)?,
            ),
            Mode::Infer => (
                rope::apply_fused(&q, cos, sin)?,
                rope::apply_fused(&k, cos, sin)?,
            ),
        };
        // Cached keys/values are narrow views of the cache buffers: matmul takes them as they
        // are (no copy of the whole cache per step).
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?,
            None => (k, v),
        };
        // Grouped-query attention without repeating k/v: the n_rep query heads that share a kv
        // head are stacked along the sequence axis, (B, nq, T, D) → (B, nkv, n_rep·T, D).
        let n_rep = cfg.kv_groups();
        let s = k.dim(2)?;
        let scale = 1.0 / (d as f64).sqrt();
        let qg = q.reshape((b, nkv, n_rep * t, d))?;
        let scores = (qg.matmul(&k.t()?)? * scale)?
            .to_dtype(DType::F32)?
            .reshape((b, nq, t, s))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = match mode {
            Mode::Train if crate::fused::eligible(&scores) => {
                crate::fused::softmax_last_dim(&scores)?
            }
            Mode::Train => candle_nn::ops::softmax(&scores, D::Minus1)?,
            Mode::Infer => candle_nn::ops::softmax_last_dim(&scores)?,
        };
        let out = probs
            .to_dtype(q.dtype())?
            .reshape((b, nkv, n_rep * t, s))?
            .matmul(&v)?
            .reshape((b, nq, t, d))?;
        let out = out.transpose(1, 2)?.reshape((b, t, nq * d))?;
        layer.o.forward(&out)
    }

    /// `log p(ids[t+1] | ids[..=t])` for `t < T − 1`: shape `(B, T − 1)`, f32. Positions whose
    /// target is padding hold meaningless values; mask them with `batch.mask[.., 1..]`.
    pub fn token_logprobs(&self, batch: &Batch, mode: Mode) -> Result<Tensor> {
        if batch.seq < 2 {
            return Err(ModelError::Input(
                "log-probs need sequences of at least 2 tokens".into(),
            ));
        }
        // Project only the positions that have a target (saves a (B, T, V) slice and its backward).
        let (b, t) = (batch.batch, batch.seq);
        let hidden = self.hidden_states(batch, None, mode)?.narrow(1, 0, t - 1)?;
        let targets = batch.ids.narrow(1, 1, t - 1)?;
        if mode == Mode::Train || b * (t - 1) <= INFER_LOGPROB_CHUNK {
            let logits = self.lm_head(&hidden, mode)?;
            return logprobs_of(&logits, &targets);
        }
        // Inference: bound memory by projecting a chunk of positions at a time (a (B, T, V)
        // logits tensor of a 150k vocabulary is gigabytes).
        let h = hidden.dim(2)?;
        let hidden = hidden.reshape((b * (t - 1), 1, h))?;
        let targets = targets.reshape((b * (t - 1), 1))?;
        let mut parts = Vec::new();
        let n = b * (t - 1);
        let mut start = 0;
        while start < n {
            let len = INFER_LOGPROB_CHUNK.min(n - start);
            let logits = self.lm_head(&hidden.narrow(0, start, len)?, mode)?;
            parts.push(logprobs_of(&logits, &targets.narrow(0, start, len)?)?);
            start += len;
        }
        Ok(Tensor::cat(&parts, 0)?.reshape((b, t - 1))?)
    }
}

/// RMSNorm in f32, cast back, times the weight (transformers' order of operations).
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer if x.dtype() == DType::F32 => Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            weight,
            eps as f32,
        )?),
        Mode::Train if crate::fused::eligible(x) => crate::fused::rms_norm(x, weight, eps),
        _ => {
            let dtype = x.dtype();
            let xf = x.to_dtype(DType::F32)?;
            let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = xf.broadcast_div(&(var + eps)?.sqrt()?)?;
            Ok(normed.to_dtype(dtype)?.broadcast_mul(weight)?)
        }
    }
}

/// Additive attention bias `(B, 1, T, past + T)` in f32: 0 where query `i` may see key `j`
/// (`j ≤ past + i` and key `j` is a real token), the most negative f32 elsewhere (finite, so a
/// fully masked padding row stays NaN-free). `None` when nothing is masked.
fn attention_bias(
    key_mask: &[u8],
    b: usize,
    t: usize,
    past: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    let s = past + t;
    if t == 1 && key_mask.iter().all(|&m| m == 1) {
        return Ok(None);
    }
    let mut bias = vec![0f32; b * t * s];
    for row in 0..b {
        let keys = &key_mask[row * s..(row + 1) * s];
        for i in 0..t {
            let out = &mut bias[(row * t + i) * s..(row * t + i + 1) * s];
            for (j, o) in out.iter_mut().enumerate() {
                if j > past + i || keys[j] == 0 {
                    *o = f32::MIN;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(bias, (b, 1, t, s), device)?))
}
