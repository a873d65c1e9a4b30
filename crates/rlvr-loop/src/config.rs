//! The training configuration: serde structs with documented defaults, loaded from TOML
//! (`configs/*.toml`), overridable with `--set key.path=value`. The `[algorithm]` table starts
//! from the named `preset` (`grpo`, `dr_grpo`, `dapo`, `rloo`, `reinforce_plus_plus`, …) and
//! overrides its fields. The resolved config (every value, defaults included) is written to
//! the run directory as `config.resolved.toml`, and `--resume` reads it back.

use std::path::{Path, PathBuf};

use rlvr_data::tasks::ArithmeticConfig;
use rlvr_rollout::EngineOptions;
use rlvr_train::AlgorithmConfig;
use serde::{Deserialize, Serialize};

use crate::builtin::BuiltinModelConfig;
use crate::error::{LoopError, Result};
use crate::step_rewards::StepRewardMode;

/// Everything a training run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Name of the run (suffix of the run directory). Default `default`.
    pub name: String,
    /// Seed of everything random: initial weights, data order, sampling. Default 0.
    pub seed: u64,
    /// The policy.
    pub model: ModelSection,
    /// Training and held-out data.
    pub data: DataSection,
    /// Supervised warm-up before RL.
    pub warmup: WarmupSection,
    /// Sampling of the groups.
    pub rollout: RolloutSection,
    /// Reward: a verifier spec (a name like `"math"` or an object, see `rlvr-verify`'s
    /// registry). Default: `math` (weight 1) + `format` (weight 0.1).
    pub verifier: serde_json::Value,
    /// Verifier per `data_source` (e.g. `{ gsm8k = "math", humaneval = "code" }`); sources
    /// not listed use `verifier`. Default: none.
    pub verifier_by_source: std::collections::BTreeMap<String, serde_json::Value>,
    /// The RL algorithm: `preset` (default `grpo`) and any fields overriding it.
    #[serde(deserialize_with = "preset_with_overrides")]
    pub algorithm: AlgorithmConfig,
    /// The update schedule, checkpoints, logging.
    pub trainer: TrainerSection,
    /// Held-out evaluation.
    pub eval: EvalSection,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "default".into(),
            seed: 0,
            model: ModelSection::default(),
            data: DataSection::default(),
            warmup: WarmupSection::default(),
            rollout: RolloutSection::default(),
            verifier: default_verifier(),
            verifier_by_source: Default::default(),
            algorithm: default_algorithm(),
            trainer: TrainerSection::default(),
            eval: EvalSection::default(),
        }
    }
}

/// GRPO (the preset) with the learning rate the built-in policy needs (5e-5; the presets keep
/// verl's 1e-6, meant for billion-parameter models).
pub fn default_algorithm() -> AlgorithmConfig {
    let mut a = AlgorithmConfig::default();
    a.optim.lr = 5e-5;
    a
}

/// `math` (weight 1) plus `format` (`<think>…</think><answer>…</answer>`, weight 0.1).
pub fn default_verifier() -> serde_json::Value {
    serde_json::json!({
        "type": "weighted_sum",
        "parts": [
            {"weight": 1.0, "verifier": "math"},
            {"weight": 0.1, "verifier": "format"},
        ],
    })
}

/// The policy model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face model directory. Empty (default): a small Qwen2-architecture policy is
    /// created from `builtin` with the built-in tokenizer.
    pub path: Option<PathBuf>,
    /// Shape of the built-in policy.
    pub builtin: BuiltinModelConfig,
    /// Compute dtype (default `f32`; CPU training needs it).
    pub dtype: String,
    /// Compute device: `cpu` (default), `cuda` or `cuda:N` (needs a build with the `cuda`
    /// feature). The policy, the reference model and the critic all live there.
    pub device: rlvr_model::DeviceSpec,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            path: None,
            builtin: BuiltinModelConfig::default(),
            dtype: "f32".into(),
            device: rlvr_model::DeviceSpec::Cpu,
        }
    }
}

/// Data: where prompts come from and how they become token ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// `arithmetic` (the built-in generator, default), a built-in dataset name (`gsm8k`,
    /// `math500`, …) or a JSONL/JSON/Parquet file (verl's schema or `{question, answer}`).
    pub train: String,
    /// Held-out set for evaluation: empty (default) = the generator's held-out split, or a
    /// dataset name/file; when it equals `train`, `heldout_size` examples are split off.
    pub heldout: String,
    /// Number of held-out examples evaluated (default 200).
    pub heldout_size: usize,
    /// Settings of the built-in arithmetic generator.
    pub arithmetic: ArithmeticConfig,
    /// Field mapping and prompt template of file datasets.
    pub mapping: rlvr_data::FieldMapping,
    /// Render prompts with the model's chat template (default true; without one, or when
    /// false, the messages' contents are joined with newlines).
    pub chat_template: bool,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            train: "arithmetic".into(),
            heldout: String::new(),
            heldout_size: 200,
            arithmetic: ArithmeticConfig::default(),
            mapping: rlvr_data::FieldMapping::default(),
            chat_template: true,
        }
    }
}

/// Supervised warm-up on worked examples (built-in task only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupSection {
    /// Run the warm-up (default true; only the built-in arithmetic task has worked examples).
    pub enabled: bool,
    /// Optimiser steps (default 1100: about 4 minutes on one core; the worked solutions are
    /// then learnt well, the habit of answering at once too).
    pub steps: usize,
    /// Examples per step (default 32).
    pub batch_size: usize,
    /// Share of warm-up examples that answer at once, without the worked steps (default 0.5),
    /// as SFT corpora mix short answers with worked solutions. The warmed-up policy then
    /// answers directly about half the time, which for multi-digit sums is mostly wrong: RL
    /// has to discover that working the steps pays (and response length grows).
    pub direct_fraction: f64,
    /// Peak learning rate (default 3e-3, cosine to 10% with 20 warmup steps).
    pub lr: f64,
    /// Reuse a cached warm-up with identical settings (default true).
    pub cache: bool,
    /// Cache directory (default `$RLVR_CACHE` or `$XDG_CACHE_HOME/rlvr` or `~/.cache/rlvr`).
    pub cache_dir: Option<PathBuf>,
}

impl Default for WarmupSection {
    fn default() -> Self {
        WarmupSection {
            enabled: true,
            steps: 1100,
            batch_size: 32,
            direct_fraction: 0.5,
            lr: 3e-3,
            cache: true,
            cache_dir: None,
        }
    }
}

/// How groups are sampled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutSection {
    /// Prompts per step (default 16).
    pub prompts_per_step: usize,
    /// Completions per prompt, G (default 8).
    pub n: usize,
    /// Sampling temperature (default 1.0).
    pub temperature: f64,
    /// Nucleus sampling (default 1.0 = off).
    pub top_p: f64,
    /// Top-k (default 0 = off).
    pub top_k: usize,
    /// Maximum new tokens (default 64).
    pub max_new_tokens: usize,
    /// Prompts longer than this are filtered out and counted (default 256).
    pub max_prompt_len: usize,
    /// Stop strings (default none; EOS ids always stop).
    pub stop: Vec<String>,
    /// Engine settings (rows per decode batch, compaction).
    pub engine: EngineOptions,
}

impl Default for RolloutSection {
    fn default() -> Self {
        RolloutSection {
            prompts_per_step: 16,
            n: 8,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 64,
            max_prompt_len: 256,
            stop: Vec::new(),
            engine: EngineOptions {
                max_batch_rows: 128,
                ..EngineOptions::default()
            },
        }
    }
}

/// The update schedule and bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerSection {
    /// RL steps (default 100).
    pub steps: usize,
    /// Passes over each step's batch (default 1).
    pub ppo_epochs: usize,
    /// Optimiser steps per epoch: the batch is split into this many mini-batches (default 1).
    pub mini_batches: usize,
    /// Sequences per forward/backward pass; gradients are accumulated (default 64).
    pub micro_batch_size: usize,
    /// Write a checkpoint every this many steps, and at the end (default 20; 0 = only at the
    /// end).
    pub save_every: usize,
    /// Keep this many latest checkpoints (default 2).
    pub keep_checkpoints: usize,
    /// Verifier calls in flight (default 8).
    pub verify_concurrency: usize,
    /// Per-call verifier timeout in ms; a timeout is an `error` outcome (default 15000: above
    /// the code verifier's own 10 s sandbox limit, so that a slow program is judged by the
    /// sandbox (`incorrect`) rather than cut off here (`error`)).
    pub verify_timeout_ms: u64,
    /// Rollouts kept in the store per step (default all: 0 = all).
    pub store_rollouts: usize,
    /// Where a step-scoring verifier's reward goes (a `prm:DIR`, alone or as a part):
    /// `outcome` (default) its aggregated score on the last token; `sum` every step's score on
    /// the token where the step ends; `mean` the same divided by the number of steps. Use
    /// `sum`/`mean` with `reinforce_plus_plus` (or GAE), whose returns credit each step; group
    /// estimators (GRPO, RLOO) only see the total. See `rlvr-loop`'s `step_rewards`.
    pub step_rewards: StepRewardMode,
}

impl Default for TrainerSection {
    fn default() -> Self {
        TrainerSection {
            steps: 100,
            ppo_epochs: 1,
            mini_batches: 1,
            micro_batch_size: 64,
            save_every: 20,
            keep_checkpoints: 2,
            verify_concurrency: 8,
            verify_timeout_ms: 15_000,
            store_rollouts: 0,
            step_rewards: StepRewardMode::Outcome,
        }
    }
}

/// Held-out evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate before RL (default true).
    pub before: bool,
    /// Evaluate after RL (default true).
    pub after: bool,
    /// Also evaluate every this many steps (default 0 = off).
    pub every: usize,
    /// Sampling temperature of evaluation (default 1.0, the policy's own distribution; 0 =
    /// greedy). `accuracy` is the fraction of correct samples (pass@1 estimated from `n`).
    pub temperature: f64,
    /// Samples per problem (default 4).
    pub n: usize,
    /// Also measure greedy accuracy (`greedy_accuracy`; default true).
    pub greedy: bool,
    /// Maximum new tokens (default: the rollout's).
    pub max_new_tokens: Option<usize>,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            before: true,
            after: true,
            every: 0,
            temperature: 1.0,
            n: 4,
            greedy: true,
            max_new_tokens: None,
        }
    }
}

/// Parses a `--set` value: a TOML literal (`3`, `1e-4`, `true`, `"x"`, `[1, 2]`, `{a = 1}`),
/// else the raw text as a string.
fn parse_set_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Applies `key.path=value` to a TOML table (creating tables on the way).
pub fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| LoopError::config("--set", format!("`{set}`: expected key.path=value")))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(LoopError::config(
            "--set",
            format!("`{set}`: empty key segment"),
        ));
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let slot = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match slot {
            toml::Value::Table(t) => t,
            _ => {
                return Err(LoopError::config(
                    "--set",
                    format!("`{set}`: `{p}` is not a table"),
                ))
            }
        };
    }
    cur.insert(
        parts[parts.len() - 1].to_string(),
        parse_set_value(raw.trim()),
    );
    Ok(())
}

impl TrainConfig {
    /// Loads `path` (or the defaults when `None`) and applies `sets` in order.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self> {
        let (text, source) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| LoopError::io(p, e))?,
                p.display().to_string(),
            ),
            None => (String::new(), "<defaults>".to_string()),
        };
        Self::from_toml(&text, &source, sets)
    }

    /// Parses TOML `text` (named `source` in errors) and applies `sets`.
    pub fn from_toml(text: &str, source: &str, sets: &[String]) -> Result<Self> {
        let parse = |text: &str, what: &str| -> Result<Self> {
            let cfg: TrainConfig = toml::from_str(text).map_err(|e: toml::de::Error| {
                LoopError::config(what, e.message().to_string() + &span_key(&e, text))
            })?;
            cfg.validate(what)?;
            Ok(cfg)
        };
        // The file alone first, so its errors carry its own line numbers.
        let cfg = parse(text, source)?;
        if sets.is_empty() {
            return Ok(cfg);
        }
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| LoopError::config(source, e.to_string()))?;
        for s in sets {
            apply_set(&mut table, s)?;
        }
        let merged =
            toml::to_string(&table).map_err(|e| LoopError::config("--set", e.to_string()))?;
        parse(
            &merged,
            &format!("{source} with --set {}", sets.join(" --set ")),
        )
    }

    /// Range checks that serde cannot express.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad =
            |field: &str, msg: &str| Err(LoopError::config(source, format!("{field}: {msg}")));
        if self.rollout.n == 0 {
            return bad("rollout.n", "must be >= 1");
        }
        if self.rollout.prompts_per_step == 0 {
            return bad("rollout.prompts_per_step", "must be >= 1");
        }
        if self.rollout.max_new_tokens == 0 {
            return bad("rollout.max_new_tokens", "must be >= 1");
        }
        if self.trainer.ppo_epochs == 0 {
            return bad("trainer.ppo_epochs", "must be >= 1");
        }
        if self.trainer.mini_batches == 0 {
            return bad("trainer.mini_batches", "must be >= 1");
        }
        if self.trainer.micro_batch_size == 0 {
            return bad("trainer.micro_batch_size", "must be >= 1");
        }
        if self.trainer.verify_concurrency == 0 {
            return bad("trainer.verify_concurrency", "must be >= 1");
        }
        if self.warmup.enabled && (self.warmup.steps == 0 || self.warmup.batch_size == 0) {
            return bad("warmup", "steps and batch_size must be >= 1 when enabled");
        }
        if rlvr_model::parse_dtype(&self.model.dtype).is_none() {
            return bad("model.dtype", "expected f32, f64, bf16 or f16");
        }
        if !(0.0..=1.0).contains(&self.warmup.direct_fraction) {
            return bad("warmup.direct_fraction", "must lie in [0, 1]");
        }
        if self.eval.n == 0 {
            return bad("eval.n", "must be >= 1");
        }
        if let Some(ol) = &self.algorithm.overlong {
            if ol.buffer_len == 0 || ol.buffer_len > self.rollout.max_new_tokens {
                return bad(
                    "algorithm.overlong.buffer_len",
                    &format!(
                        "must lie in 1..=rollout.max_new_tokens ({}), got {} (DAPO's default 4096 is for 20k-token responses)",
                        self.rollout.max_new_tokens, ol.buffer_len
                    ),
                );
            }
        }
        rlvr_verify::registry::from_spec(&self.verifier)
            .map_err(|e| LoopError::config(source, format!("verifier: {e}")))?;
        for (ds, spec) in &self.verifier_by_source {
            rlvr_verify::registry::from_spec(spec)
                .map_err(|e| LoopError::config(source, format!("verifier_by_source.{ds}: {e}")))?;
        }
        Ok(())
    }

    /// The resolved config as TOML (every value, defaults included).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| LoopError::Other(format!("config to TOML: {e}")))
    }
}

/// Deserializes `[algorithm]`: the named `preset` (default `grpo`) with the other fields
/// merged over it (unknown fields are errors).
fn preset_with_overrides<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<AlgorithmConfig, D::Error> {
    use serde::de::Error;
    let mut v = serde_json::Value::deserialize(d)?;
    let preset = match v.as_object_mut().and_then(|m| m.remove("preset")) {
        None => "grpo".to_string(),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => {
            return Err(D::Error::custom(format!(
                "preset: expected a string, got {other}"
            )))
        }
    };
    let base = AlgorithmConfig::preset(&preset).map_err(D::Error::custom)?;
    base.with_overrides(&v).map_err(D::Error::custom)
}

/// ` (at line L, column C)` for a TOML error with a span.
fn span_key(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (at line {line}, column {col})")
        }
        None => String::new(),
    }
}
