//! [`RewardModel`]: the policy architecture (a [`CausalLm`] backbone) with a scalar head
//! `score.weight` of shape `[1, hidden]` — Hugging Face's `*ForSequenceClassification`
//! convention with `num_labels = 1`, no bias. An outcome model (ORM) reads the head at the last
//! token of `prompt + response`; a process model (PRM) reads it at the last token of the step
//! separator that follows every step but the last, and at the last step's own last token
//! (`separator_after_last` puts a separator there too).
//!
//! Directories are ordinary HF model directories: `config.json` (the backbone's fields,
//! `architectures: ["Qwen2ForSequenceClassification"]`, `num_labels: 1`, and rlvr's own
//! settings under `rlvr_reward_model`), `model.safetensors` (backbone + `score.weight`,
//! without `lm_head.weight`, which sequence classifiers do not have) and the tokenizer files:
//! the one scalar-head format of [`rlvr_model::ScalarHeadModel`], which the PPO critic shares.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rlvr_model::{Batch, CausalLm, HeadInit, HeadSource, Mode, ScalarHeadModel, Tokenizer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::aggregate::Aggregation;
use crate::error::{Result, RmError};

/// Key of rlvr's reward-model settings in `config.json`.
pub const SETTINGS_KEY: &str = "rlvr_reward_model";
/// Name of the scalar head, as in transformers' sequence classifiers.
pub const HEAD: &str = rlvr_model::scalar_head::HEAD;
/// Seed of the head's initial weights when a checkpoint has none.
pub const HEAD_INIT_SEED: u64 = 0x5c0e_5eed;

/// Outcome or process reward model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RmKind {
    /// One score per response, read at its last token.
    #[default]
    Orm,
    /// One score per step, read at the step separators.
    Prm,
}

impl RmKind {
    /// `orm` or `prm`.
    pub fn name(self) -> &'static str {
        match self {
            RmKind::Orm => "orm",
            RmKind::Prm => "prm",
        }
    }

    /// Parses `orm` / `prm`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "orm" => Some(RmKind::Orm),
            "prm" => Some(RmKind::Prm),
            _ => None,
        }
    }
}

/// Settings saved with a reward model (`config.json` → `rlvr_reward_model`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmSettings {
    /// `orm` or `prm` (default `orm`).
    pub kind: RmKind,
    /// PRM: the text that ends every step — responses are split on it, and the head is read
    /// at its last token after each step (default `"\n"`). A single special token (e.g.
    /// `"ки"` or `"<step>"`) works the same way.
    pub step_separator: String,
    /// PRM: also put a separator after the last step and read its score there (Math-Shepherd
    /// checkpoints tag every step); by default (false) the last step — which no separator
    /// ends in the response — is read at its own last token, where the whole solution,
    /// final answer included, is in view (as an ORM reads it).
    pub separator_after_last: bool,
    /// PRM: how step probabilities become the response score (default `min`).
    pub aggregation: Aggregation,
    /// A response (or step) is judged correct when its probability is at least this
    /// (default 0.5).
    pub threshold: f32,
    /// Sequences scored per forward pass at inference (default 16).
    pub batch_size: usize,
}

impl Default for RmSettings {
    fn default() -> Self {
        RmSettings {
            kind: RmKind::Orm,
            step_separator: "\n".into(),
            separator_after_last: false,
            aggregation: Aggregation::Min,
            threshold: 0.5,
            batch_size: 16,
        }
    }
}

/// The score of one response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RmScore {
    /// Probability that the response is right: `σ(logit)` (ORM) or the aggregated step
    /// probabilities (PRM).
    pub score: f32,
    /// ORM: the head's raw output; PRM: the logit of `score` (`ln(p/(1-p))`, clamped).
    pub logit: f32,
    /// PRM: the probability of each step (empty for an ORM).
    pub steps: Vec<f32>,
}

/// One item to score: a prompt (a string, or chat messages rendered with the model's
/// template) and a response.
#[derive(Clone, Copy, Debug)]
pub struct ScoreInput<'a> {
    pub prompt: &'a Value,
    pub response: &'a str,
}

/// A reward model: a [`ScalarHeadModel`] (backbone + `score.weight`), tokenizer, settings.
pub struct RewardModel {
    model: ScalarHeadModel,
    tokenizer: Tokenizer,
    /// Kind, separator, aggregation, threshold.
    pub settings: RmSettings,
    pad_id: u32,
    source_dir: PathBuf,
}

fn normal_init(n: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut rng = rlvr_data::rng::SplitMix64::new(seed);
    let mut uniform = move || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            (std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

impl RewardModel {
    /// Loads a model directory: a reward model saved by rlvr, a `*ForSequenceClassification`
    /// checkpoint (`score.weight` of shape `[1, hidden]`), or a causal LM, whose head is then
    /// initialised ~ N(0, initializer_range²) from a fixed seed (logged, and reported by
    /// [`head_was_initialised`](Self::head_was_initialised)). Settings come from
    /// `config.json`'s `rlvr_reward_model`, else the defaults. Compute is f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let init = |hidden: usize, std: f64| normal_init(hidden, std, HEAD_INIT_SEED);
        let model = ScalarHeadModel::load(dir, device, Some(DType::F32), HeadInit::With(&init))?;
        let config_path = dir.join("config.json");
        let settings = match model.backbone().config().raw.get(SETTINGS_KEY) {
            None | Some(Value::Null) => RmSettings::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                RmError::config(
                    format!("{}: {SETTINGS_KEY}", config_path.display()),
                    e.to_string(),
                )
            })?,
        };
        if model.head_source() == HeadSource::Initialised {
            let init_std = model
                .backbone()
                .config()
                .raw
                .get("initializer_range")
                .and_then(Value::as_f64)
                .unwrap_or(0.02);
            tracing::warn!(
                dir = %dir.display(),
                "no `{HEAD}` in the checkpoint: the reward head is initialised at random (N(0, {init_std}²), seed {HEAD_INIT_SEED:#x}) and must be trained"
            );
        }
        let tokenizer = Tokenizer::from_dir(dir)?;
        let pad_id = model
            .backbone()
            .config()
            .pad_token_id
            .or(tokenizer.pad_token_id())
            .or(tokenizer.eos_token_id())
            .unwrap_or(0);
        Ok(RewardModel {
            model,
            tokenizer,
            settings,
            pad_id,
            source_dir: dir.to_path_buf(),
        })
    }

    /// The backbone and head.
    pub fn model(&self) -> &ScalarHeadModel {
        &self.model
    }

    /// The transformer under the head.
    pub fn backbone(&self) -> &CausalLm {
        self.model.backbone()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The head `score.weight`, `[1, hidden]`.
    pub fn head(&self) -> &Var {
        self.model.head()
    }

    /// Whether the head was initialised here because the checkpoint had none.
    pub fn head_was_initialised(&self) -> bool {
        self.model.head_source() == HeadSource::Initialised
    }

    /// The directory the model was loaded from.
    pub fn source_dir(&self) -> &Path {
        &self.source_dir
    }

    /// The padding id used for batching.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Every trainable parameter (backbone, then head) for an optimiser. An untied
    /// `lm_head.weight` is left out: the reward model never uses it.
    pub fn vars(&self) -> Vec<Var> {
        self.model.vars()
    }

    /// The names of [`vars`](Self::vars), in order.
    pub fn var_names(&self) -> Vec<String> {
        self.model.var_names()
    }

    /// Every saved tensor with its HF name: the backbone without `lm_head.weight`, then
    /// `score.weight`.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.model.named_tensors()
    }

    /// The `config.json` entries a reward model adds to the scalar-head layout: the padding
    /// id when the backbone has none, rlvr's settings.
    fn extra_config(&self) -> Map<String, Value> {
        let mut extra = Map::new();
        let raw = &self.backbone().config().raw;
        if raw.get("pad_token_id").is_none_or(Value::is_null) {
            extra.insert("pad_token_id".into(), json!(self.pad_id));
        }
        extra.insert(
            SETTINGS_KEY.into(),
            serde_json::to_value(&self.settings).expect("settings serialize"),
        );
        extra
    }

    /// The `config.json` this model saves: the backbone's fields, the sequence-classification
    /// architecture, one label, rlvr's settings.
    pub fn config_json(&self) -> Value {
        self.model.config_json(&self.extra_config())
    }

    /// Saves the model as an HF directory at `out` (the [`ScalarHeadModel`] layout),
    /// atomically: everything is written to a temporary sibling directory that is then
    /// renamed into place (an existing `out` is replaced only once the new one is complete).
    pub fn save(&self, out: &Path) -> Result<()> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| RmError::io(&parent, e))?;
        let name = out
            .file_name()
            .ok_or_else(|| RmError::Input(format!("{}: not a directory name", out.display())))?
            .to_string_lossy()
            .into_owned();
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = self
            .model
            .save(&tmp, &self.extra_config())
            .map_err(RmError::from)
            .and_then(|_| replace_dir(&tmp, out, &name));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Token ids of a prompt: a string is tokenized as it is (with the tokenizer's own
    /// special tokens, e.g. a BOS); chat messages are rendered with the chat template and a
    /// generation prompt; `null` is the empty prompt.
    pub fn encode_prompt(&self, prompt: &Value) -> Result<Vec<u32>> {
        match prompt {
            Value::Null => Ok(Vec::new()),
            Value::String(s) => Ok(self.tokenizer.encode(s, true)?),
            Value::Array(msgs) => Ok(self.tokenizer.encode_chat(msgs, true)?),
            other => Err(RmError::Input(format!(
                "a prompt is a string or a list of chat messages, got {other}"
            ))),
        }
    }

    /// ORM input: prompt ids followed by the response's ids; the head reads the last token.
    pub fn encode_response(&self, prompt_ids: &[u32], response: &str) -> Result<Vec<u32>> {
        let mut ids = prompt_ids.to_vec();
        ids.extend(self.tokenizer.encode(response, false)?);
        Ok(ids)
    }

    /// PRM input: prompt ids, then every step's ids followed by the separator's (the last
    /// step's only with `separator_after_last`); returns the ids and the read position of each
    /// step: the separator's last token after it, or the last step's own last token.
    pub fn encode_steps(
        &self,
        prompt_ids: &[u32],
        steps: &[String],
    ) -> Result<(Vec<u32>, Vec<usize>)> {
        self.encode_steps_with(prompt_ids, steps, &self.settings.step_separator)
    }

    /// [`encode_steps`](Self::encode_steps) with another separator.
    pub fn encode_steps_with(
        &self,
        prompt_ids: &[u32],
        steps: &[String],
        separator: &str,
    ) -> Result<(Vec<u32>, Vec<usize>)> {
        let sep = self.tokenizer.encode(separator, false)?;
        if sep.is_empty() {
            return Err(RmError::config(
                "step_separator",
                "the separator encodes to no token",
            ));
        }
        let mut ids = prompt_ids.to_vec();
        let mut reads = Vec::with_capacity(steps.len());
        for (k, s) in steps.iter().enumerate() {
            let before = ids.len();
            ids.extend(self.tokenizer.encode(s, false)?);
            let last = k + 1 == steps.len();
            // The last step is read at its own last token unless configured otherwise (an
            // empty last step has none: it gets the separator).
            if !last || self.settings.separator_after_last || ids.len() == before {
                ids.extend(&sep);
            }
            reads.push(ids.len() - 1);
        }
        Ok((ids, reads))
    }

    /// A response's steps: the pieces between separators, empty pieces dropped; a response
    /// without any text is one empty step.
    pub fn split_steps(&self, response: &str) -> Vec<String> {
        split_steps(response, &self.settings.step_separator)
    }

    /// The head's logits at the given positions of right-padded sequences: `reads[i]` lists
    /// positions of `seqs[i]`; the result is `(N,)` with the positions of all rows in order.
    /// `Mode::Train` keeps the graph for a backward pass through backbone and head.
    pub fn logits_at(&self, seqs: &[Vec<u32>], reads: &[Vec<usize>], mode: Mode) -> Result<Tensor> {
        Ok(self.hidden_and_logits(seqs, reads, mode)?.1)
    }

    /// The backbone's final hidden states `(B, T, hidden)` of the right-padded batch and the
    /// head's logits at the read positions `(N,)` (see [`logits_at`](Self::logits_at)).
    pub fn hidden_and_logits(
        &self,
        seqs: &[Vec<u32>],
        reads: &[Vec<usize>],
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        if seqs.len() != reads.len() || seqs.is_empty() {
            return Err(RmError::Input(format!(
                "{} sequences and {} read lists",
                seqs.len(),
                reads.len()
            )));
        }
        let max_len = self.backbone().config().max_position_embeddings;
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if t > max_len {
            return Err(RmError::Input(format!(
                "a sequence of {t} tokens is longer than the model's {max_len}"
            )));
        }
        for (s, r) in seqs.iter().zip(reads) {
            if let Some(&p) = r.iter().find(|&&p| p >= s.len()) {
                return Err(RmError::Input(format!(
                    "read position {p} outside a sequence of {} tokens",
                    s.len()
                )));
            }
        }
        let batch = Batch::right_padded(seqs, self.pad_id, self.backbone().device())?;
        Ok(self.model.scores_at(&batch, reads, mode)?)
    }

    /// ORM logits of encoded sequences (read at each one's last token), `(B,)`.
    pub fn last_token_logits(&self, seqs: &[Vec<u32>], mode: Mode) -> Result<Tensor> {
        let reads: Vec<Vec<usize>> = seqs
            .iter()
            .map(|s| {
                if s.is_empty() {
                    Err(RmError::Input("an empty sequence".into()))
                } else {
                    Ok(vec![s.len() - 1])
                }
            })
            .collect::<Result<_>>()?;
        self.logits_at(seqs, &reads, mode)
    }

    /// Scores responses with the model's own settings (batched, `settings.batch_size` per
    /// forward pass, no autograd).
    pub fn score(&self, items: &[ScoreInput<'_>]) -> Result<Vec<RmScore>> {
        self.score_with(&self.settings, items)
    }

    /// Scores responses with the given settings (kind, separator, aggregation, batch size).
    pub fn score_with(
        &self,
        settings: &RmSettings,
        items: &[ScoreInput<'_>],
    ) -> Result<Vec<RmScore>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(settings.batch_size.max(1)) {
            let mut seqs = Vec::with_capacity(chunk.len());
            let mut reads = Vec::with_capacity(chunk.len());
            for it in chunk {
                let p = self.encode_prompt(it.prompt)?;
                match settings.kind {
                    RmKind::Orm => {
                        let ids = self.encode_response(&p, it.response)?;
                        if ids.is_empty() {
                            return Err(RmError::Input("an empty prompt and response".into()));
                        }
                        reads.push(vec![ids.len() - 1]);
                        seqs.push(ids);
                    }
                    RmKind::Prm => {
                        let steps = split_steps(it.response, &settings.step_separator);
                        let (ids, r) =
                            self.encode_steps_with(&p, &steps, &settings.step_separator)?;
                        seqs.push(ids);
                        reads.push(r);
                    }
                }
            }
            let logits: Vec<f32> = self.logits_at(&seqs, &reads, Mode::Infer)?.to_vec1()?;
            let mut at = 0;
            for r in &reads {
                let l = &logits[at..at + r.len()];
                at += r.len();
                out.push(match settings.kind {
                    RmKind::Orm => RmScore {
                        score: sigmoid(l[0]),
                        logit: l[0],
                        steps: Vec::new(),
                    },
                    RmKind::Prm => {
                        let steps: Vec<f32> = l.iter().map(|&x| sigmoid(x)).collect();
                        let score = settings.aggregation.apply(&steps).unwrap_or(0.0);
                        RmScore {
                            score,
                            logit: logit(score),
                            steps,
                        }
                    }
                });
            }
        }
        Ok(out)
    }
}

/// The pieces of `response` between separators, empty pieces dropped; a response without
/// any text is one empty step.
pub fn split_steps(response: &str, separator: &str) -> Vec<String> {
    step_spans(response, separator)
        .into_iter()
        .map(|(a, b)| response[a..b].to_string())
        .collect()
}

/// The byte ranges of [`split_steps`]'s pieces in `response` (a response without any text:
/// one empty step at its end).
pub fn step_spans(response: &str, separator: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if separator.is_empty() {
        spans.push((0, response.len()));
    } else {
        let mut at = 0usize;
        for piece in response.split(separator) {
            if !piece.is_empty() {
                spans.push((at, at + piece.len()));
            }
            at += piece.len() + separator.len();
        }
    }
    if spans.iter().all(|(a, b)| a == b) {
        vec![(response.len(), response.len())]
    } else {
        spans
    }
}

/// `1 / (1 + e^{-x})`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(p / (1 − p))`, with `p` clamped to `[1e-6, 1 − 1e-6]`.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Moves `tmp` to `out`; an existing `out` is moved aside first and removed after.
fn replace_dir(tmp: &Path, out: &Path, name: &str) -> Result<()> {
    if out.exists() {
        let old = out.with_file_name(format!(".{name}.old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(out, &old).map_err(|e| RmError::io(out, e))?;
        if let Err(e) = std::fs::rename(tmp, out) {
            let _ = std::fs::rename(&old, out);
            return Err(RmError::io(out, e));
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    } else {
        std::fs::rename(tmp, out).map_err(|e| RmError::io(out, e))
    }
}
