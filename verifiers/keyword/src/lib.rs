//! An example verifier written in Rust outside rlvr's own crates: it checks that a response
//! contains required keywords (or regular expressions) and none of the forbidden ones.
//!
//! Writing your own takes three steps, all shown here:
//! 1. a settings struct (serde, documented defaults, unknown fields refused);
//! 2. a type implementing [`rlvr_verify::Verifier`];
//! 3. a `register()` that names it in rlvr's registry ([`rlvr_verify::registry::register`]),
//!    called once at startup by the binary that links the crate (the `rlvr` binary calls
//!    this one's). Specs can then use it anywhere a verifier is named:
//!    `rlvr verify --verifier keyword --config '{"required": ["Paris"]}'`,
//!    `{"type": "keyword", "forbidden": ["as an AI"]}` in a weighted sum, or
//!    `verifier = { type = "keyword", required = ["def "] }` in a training config.
//!
//! The ground truth may add required keywords: a string (one keyword), a list of strings,
//! or an object `{"required": [..], "forbidden": [..]}`.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use rlvr_verify::error::{Result, VerifyError};
use rlvr_verify::{Outcome, RewardMapping, Status, Verifier, VerifyInput};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Settings of the keyword verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeywordConfig {
    /// Keywords that must all appear (default none).
    pub required: Vec<String>,
    /// Keywords that must not appear (default none).
    pub forbidden: Vec<String>,
    /// Treat keywords as regular expressions (default false: literal text).
    pub regex: bool,
    /// Match case (default false).
    pub case_sensitive: bool,
    /// Literal keywords match whole words only (default false).
    pub whole_words: bool,
    /// Score the fraction of satisfied rules instead of all-or-nothing (default true).
    pub partial_credit: bool,
    /// Scores per status.
    pub rewards: RewardMapping,
}

impl Default for KeywordConfig {
    fn default() -> Self {
        KeywordConfig {
            required: Vec::new(),
            forbidden: Vec::new(),
            regex: false,
            case_sensitive: false,
            whole_words: false,
            partial_credit: true,
            rewards: RewardMapping::default(),
        }
    }
}

/// The `keyword` verifier.
#[derive(Debug, Clone)]
pub struct KeywordVerifier {
    cfg: KeywordConfig,
    required: Vec<(String, Regex)>,
    forbidden: Vec<(String, Regex)>,
}

impl KeywordVerifier {
    /// Builds the verifier; a keyword that is not a valid pattern is an error naming it.
    pub fn new(cfg: KeywordConfig) -> Result<Self> {
        let required = cfg
            .required
            .iter()
            .map(|k| Ok((k.clone(), pattern(&cfg, k, "keyword.required")?)))
            .collect::<Result<Vec<_>>>()?;
        let forbidden = cfg
            .forbidden
            .iter()
            .map(|k| Ok((k.clone(), pattern(&cfg, k, "keyword.forbidden")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeywordVerifier {
            cfg,
            required,
            forbidden,
        })
    }
}

fn pattern(cfg: &KeywordConfig, keyword: &str, field: &str) -> Result<Regex> {
    let body = if cfg.regex {
        keyword.to_string()
    } else if cfg.whole_words {
        format!(r"\b{}\b", regex::escape(keyword))
    } else {
        regex::escape(keyword)
    };
    RegexBuilder::new(&body)
        .case_insensitive(!cfg.case_sensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| VerifyError::Config {
            field: field.to_string(),
            msg: format!("`{keyword}`: {e}"),
        })
}

/// Keywords the ground truth adds: a string, a list of strings, or `{required, forbidden}`.
fn from_ground_truth(gt: &Value) -> std::result::Result<(Vec<String>, Vec<String>), String> {
    let strings = |v: &Value, what: &str| -> std::result::Result<Vec<String>, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{what}: expected strings, found {x}"))
                })
                .collect(),
            other => Err(format!(
                "{what}: expected a string or a list, found {other}"
            )),
        }
    };
    match gt {
        Value::Object(m) => Ok((
            strings(
                m.get("required").unwrap_or(&Value::Null),
                "ground_truth.required",
            )?,
            strings(
                m.get("forbidden").unwrap_or(&Value::Null),
                "ground_truth.forbidden",
            )?,
        )),
        other => Ok((strings(other, "ground_truth")?, Vec::new())),
    }
}

impl Verifier for KeywordVerifier {
    fn name(&self) -> &str {
        "keyword"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let r = &self.cfg.rewards;
        let (gt_req, gt_forb) = match from_ground_truth(input.ground_truth) {
            Ok(x) => x,
            Err(e) => return Outcome::error(r, e),
        };
        let mut required = self.required.clone();
        let mut forbidden = self.forbidden.clone();
        for (list, extra, field) in [
            (&mut required, gt_req, "ground_truth.required"),
            (&mut forbidden, gt_forb, "ground_truth.forbidden"),
        ] {
            for k in extra {
                match pattern(&self.cfg, &k, field) {
                    Ok(p) => list.push((k, p)),
                    Err(e) => return Outcome::error(r, e.to_string()),
                }
            }
        }
        let rules = required.len() + forbidden.len();
        if rules == 0 {
            return Outcome::with_status(
                Status::Invalid,
                r,
                json!({"reason": "no keywords: configure `required`/`forbidden` or give them in the ground truth"}),
            );
        }
        let missing: Vec<&str> = required
            .iter()
            .filter(|(_, p)| !p.is_match(input.response))
            .map(|(k, _)| k.as_str())
            .collect();
        let present: Vec<&str> = forbidden
            .iter()
            .filter(|(_, p)| p.is_match(input.response))
            .map(|(k, _)| k.as_str())
            .collect();
        let failed = missing.len() + present.len();
        let details = json!({"missing": missing, "forbidden_found": present, "rules": rules});
        if failed == 0 {
            return Outcome::with_status(Status::Correct, r, details);
        }
        let mut o = Outcome::with_status(Status::Incorrect, r, details);
        if self.cfg.partial_credit {
            let frac = (rules - failed) as f32 / rules as f32;
            o.score = r.incorrect + (r.correct - r.incorrect) * frac;
        }
        o
    }
}

fn factory(settings: &Map<String, Value>) -> Result<Arc<dyn Verifier>> {
    let cfg: KeywordConfig = rlvr_verify::registry::settings(settings, "keyword")?;
    Ok(Arc::new(KeywordVerifier::new(cfg)?))
}

/// Registers this verifier as `keyword` (idempotent).
pub fn register() -> Result<()> {
    rlvr_verify::registry::register("keyword", factory)
}
