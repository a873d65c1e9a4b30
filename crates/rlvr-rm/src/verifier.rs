//! Reward models as verifiers: `orm:DIR` and `prm:DIR` (or `{"type": "orm", "target": DIR,
//! ...}`), usable wherever a verifier is named — `rlvr verify`, training configs (alone, in a
//! `weighted_sum` with verifiable rewards, behind a `gated` format check).
//!
//! The score is a probability in `[0, 1]` (`σ` of the ORM's head; the aggregated step
//! probabilities of a PRM); the status is `correct` when it reaches the threshold, else
//! `incorrect`; details carry the logit, a PRM's step probabilities, the step the PRM blames
//! first, and the byte offset in the response where each step ends (where token-level step
//! rewards go). The prompt is the item's `prompt` metadata (a string or chat messages), else
//! — for the built-in arithmetic task, whose metadata carries only `extra_info` — the
//! question rebuilt from `extra_info.{a, op, b}`, else none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use candle_core::Device;
use rlvr_verify::error::{Result as VResult, VerifyError};
use rlvr_verify::{Outcome, RewardMapping, Status, Verifier, VerifyInput};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::aggregate::{first_below, Aggregation};
use crate::error::Result;
use crate::model::{RewardModel, RmKind, RmScore, RmSettings, ScoreInput};

/// Settings of the `orm` / `prm` verifiers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmVerifierConfig {
    /// The reward model directory (`orm:DIR` puts DIR here).
    pub target: Option<PathBuf>,
    /// Correct when the score is at least this (default: the model's, 0.5).
    pub threshold: Option<f32>,
    /// PRM aggregation (default: the model's, `min`).
    pub aggregation: Option<Aggregation>,
    /// PRM step separator (default: the model's, `"\n"`).
    pub step_separator: Option<String>,
    /// Responses per forward pass in `verify_batch` (default: the model's, 16).
    pub batch_size: Option<usize>,
}

/// A reward model judging responses.
pub struct RmVerifier {
    name: String,
    model: Arc<RewardModel>,
    settings: RmSettings,
}

type ModelCache = Mutex<HashMap<(PathBuf, Option<SystemTime>), Arc<RewardModel>>>;

fn models() -> &'static ModelCache {
    static CACHE: OnceLock<ModelCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads a reward model once per process (keyed by its directory and the weights' mtime),
/// on the CPU.
pub fn load_shared(dir: &Path) -> Result<Arc<RewardModel>> {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mtime = std::fs::metadata(canon.join(rlvr_model::weights::SINGLE_FILE))
        .and_then(|m| m.modified())
        .ok();
    let key = (canon.clone(), mtime);
    if let Some(m) = models().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(m.clone());
    }
    let m = Arc::new(RewardModel::load(&canon, &Device::Cpu)?);
    models()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, m.clone());
    Ok(m)
}

impl RmVerifier {
    /// A verifier of `kind` over a loaded model, with the model's settings overridden by
    /// `cfg`'s.
    pub fn new(kind: RmKind, model: Arc<RewardModel>, cfg: &RmVerifierConfig) -> Self {
        if model.settings.kind != kind {
            tracing::warn!(
                dir = %model.source_dir().display(),
                "the model was saved as a {} reward model and is used as a {}",
                model.settings.kind.name(),
                kind.name()
            );
        }
        let mut settings = model.settings.clone();
        settings.kind = kind;
        if let Some(t) = cfg.threshold {
            settings.threshold = t;
        }
        if let Some(a) = cfg.aggregation {
            settings.aggregation = a;
        }
        if let Some(s) = &cfg.step_separator {
            settings.step_separator = s.clone();
        }
        if let Some(b) = cfg.batch_size {
            settings.batch_size = b.max(1);
        }
        RmVerifier {
            name: kind.name().to_string(),
            model,
            settings,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RmSettings {
        &self.settings
    }

    /// The model.
    pub fn model(&self) -> &Arc<RewardModel> {
        &self.model
    }

    /// Judges many responses with batched forward passes (same order as `inputs`). A batch
    /// that fails is retried item by item, so one bad item only errs itself.
    pub fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        let prompts: Vec<Value> = inputs.iter().map(|i| prompt_of(i.metadata)).collect();
        let items: Vec<ScoreInput<'_>> = inputs
            .iter()
            .zip(&prompts)
            .map(|(i, p)| ScoreInput {
                prompt: p,
                response: i.response,
            })
            .collect();
        match self.model.score_with(&self.settings, &items) {
            Ok(scores) => scores
                .iter()
                .zip(inputs)
                .map(|(s, i)| self.outcome(s, i.response))
                .collect(),
            Err(_) if items.len() > 1 => inputs.iter().map(|i| self.verify(i)).collect(),
            Err(e) => vec![Outcome::error(&RewardMapping::default(), e.to_string())],
        }
    }

    fn outcome(&self, s: &RmScore, response: &str) -> Outcome {
        let status = if s.score >= self.settings.threshold {
            Status::Correct
        } else {
            Status::Incorrect
        };
        let mut details = json!({
            "reward_model": self.model.source_dir().display().to_string(),
            "kind": self.settings.kind.name(),
            "probability": s.score,
            "logit": s.logit,
            "threshold": self.settings.threshold,
        });
        if self.settings.kind == RmKind::Prm {
            let ends: Vec<usize> =
                crate::model::step_spans(response, &self.settings.step_separator)
                    .into_iter()
                    .map(|(_, end)| end)
                    .collect();
            details["steps"] = json!(s.steps);
            details["step_end_bytes"] = json!(ends);
            details["aggregation"] = json!(self.settings.aggregation.name());
            details["first_wrong_step"] = json!(first_below(&s.steps, self.settings.threshold));
        }
        Outcome {
            score: s.score,
            status,
            details,
        }
    }
}

/// The prompt of an item: `metadata.prompt`, else the arithmetic question rebuilt from
/// `metadata.extra_info.{a, op, b}` as one user message, else `null`.
pub fn prompt_of(metadata: &Value) -> Value {
    if let Some(p @ (Value::String(_) | Value::Array(_))) = metadata.get("prompt") {
        return p.clone();
    }
    let info = metadata.get("extra_info");
    let field = |k: &str| info.and_then(|i| i.get(k));
    if let (Some(a), Some(b), Some(op)) = (
        field("a").and_then(Value::as_u64),
        field("b").and_then(Value::as_u64),
        field("op").and_then(Value::as_str),
    ) {
        let sym = match op {
            "add" => Some('+'),
            "sub" => Some('-'),
            "mul" => Some('*'),
            _ => None,
        };
        if let Some(sym) = sym {
            return json!([{"role": "user", "content": format!("{a}{sym}{b}")}]);
        }
    }
    Value::Null
}

impl Verifier for RmVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let prompt = prompt_of(input.metadata);
        let item = ScoreInput {
            prompt: &prompt,
            response: input.response,
        };
        match self.model.score_with(&self.settings, &[item]) {
            Ok(s) => self.outcome(&s[0], input.response),
            Err(e) => Outcome::error(&RewardMapping::default(), e.to_string()),
        }
    }

    /// Batched forward passes (the inherent [`RmVerifier::verify_batch`]), also through
    /// `dyn Verifier` — a `weighted_sum` part or an `rlvr eval --rerank` reranker.
    fn verify_batch(&self, inputs: &[VerifyInput<'_>]) -> Vec<Outcome> {
        RmVerifier::verify_batch(self, inputs)
    }

    /// One forward pass holds `batch_size` responses.
    fn batch_hint(&self) -> usize {
        self.settings.batch_size.max(1)
    }
}

fn build(kind: RmKind, m: &Map<String, Value>) -> VResult<Arc<dyn Verifier>> {
    let cfg: RmVerifierConfig = rlvr_verify::registry::settings(m, kind.name())?;
    let dir = cfg.target.clone().ok_or_else(|| VerifyError::Config {
        field: format!("{}.target", kind.name()),
        msg: format!(
            "the reward model directory is missing (`{}:DIR`)",
            kind.name()
        ),
    })?;
    let model = load_shared(&dir).map_err(|e| VerifyError::Config {
        field: format!("{}.target", kind.name()),
        msg: e.to_string(),
    })?;
    Ok(Arc::new(RmVerifier::new(kind, model, &cfg)))
}

fn orm_factory(m: &Map<String, Value>) -> VResult<Arc<dyn Verifier>> {
    build(RmKind::Orm, m)
}

fn prm_factory(m: &Map<String, Value>) -> VResult<Arc<dyn Verifier>> {
    build(RmKind::Prm, m)
}

/// Registers `orm` and `prm` (so `orm:DIR` / `prm:DIR` and `{"type": "orm", "target": DIR}`
/// build everywhere). Idempotent.
pub fn register() -> VResult<()> {
    rlvr_verify::registry::register("orm", orm_factory)?;
    rlvr_verify::registry::register("prm", prm_factory)
}
