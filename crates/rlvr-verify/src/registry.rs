//! Verifiers by name (`math`, `format`) or from a JSON spec, with composition:
//!
//! ```json
//! {"type": "gated", "gate": {"type": "format"}, "inner": {"type": "math", "rel_tol": 1e-6}}
//! {"type": "weighted_sum", "parts": [{"weight": 0.9, "verifier": "math"},
//!                                    {"weight": 0.1, "verifier": {"type": "format"}}]}
//! ```
//! Any spec may carry `"deadline_ms": N` to bound its wall-clock time per call.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::compose::{Deadline, Gated, Normalize, Part, WeightedSum};
use crate::error::{Result, VerifyError};
use crate::format::{FormatConfig, FormatVerifier};
use crate::math::{MathConfig, MathVerifier};
use crate::{RewardMapping, Verifier};

/// Names of the built-in verifiers.
pub const BUILTIN: &[&str] = &["math", "format"];

/// Spec types that compose other verifiers (not registrable names).
pub const COMPOSITIONS: &[&str] = &["weighted_sum", "gated"];

/// Builds a registered verifier from the settings of its spec (the spec object without
/// `type` and `deadline_ms`; empty when the verifier is named by a plain string).
pub type Factory = fn(&Map<String, Value>) -> Result<Arc<dyn Verifier>>;

fn plugins() -> &'static RwLock<BTreeMap<String, Factory>> {
    static PLUGINS: OnceLock<RwLock<BTreeMap<String, Factory>>> = OnceLock::new();
    PLUGINS.get_or_init(|| RwLock::new(BTreeMap::new()))
}

/// Registers a verifier type implemented outside this crate under `name`, so that specs
/// (`"name"` or `{"type": "name", ...settings}`) build it everywhere — `rlvr verify`,
/// training and evaluation configs. A built-in or composition name is refused; registering
/// the same name twice with the same factory is allowed (idempotent), with another one refused.
pub fn register(name: &str, factory: Factory) -> Result<()> {
    if name.is_empty() || BUILTIN.contains(&name) || COMPOSITIONS.contains(&name) {
        return Err(cfg_err(
            "type",
            format!("`{name}` is built in or empty and cannot be registered"),
        ));
    }
    let mut map = plugins().write().unwrap_or_else(|e| e.into_inner());
    match map.get(name) {
        Some(f) if !std::ptr::fn_addr_eq(*f, factory) => Err(cfg_err(
            "type",
            format!("another verifier is already registered as `{name}`"),
        )),
        _ => {
            map.insert(name.to_string(), factory);
            Ok(())
        }
    }
}

/// Names of every verifier: the built-in ones, then the registered ones (sorted).
pub fn names() -> Vec<String> {
    let map = plugins().read().unwrap_or_else(|e| e.into_inner());
    BUILTIN
        .iter()
        .map(|s| s.to_string())
        .chain(map.keys().cloned())
        .collect()
}

fn registered(name: &str) -> Option<Factory> {
    plugins()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .copied()
}

/// A registered verifier by name, or by `prefix:target` (e.g. `python:reward.py:fn`), whose
/// factory then receives `{"target": target}` merged into the settings.
fn lookup(name: &str, settings: &Map<String, Value>) -> Option<Result<Arc<dyn Verifier>>> {
    if let Some(f) = registered(name) {
        return Some(f(settings));
    }
    let (prefix, target) = name.split_once(':')?;
    let f = registered(prefix)?;
    let mut m = settings.clone();
    m.insert("target".into(), Value::String(target.to_string()));
    Some(f(&m))
}

/// Whether `name` names a verifier: built in, registered, or `prefix:target` with a
/// registered prefix.
pub fn is_known(name: &str) -> bool {
    BUILTIN.contains(&name)
        || registered(name).is_some()
        || name
            .split_once(':')
            .is_some_and(|(p, _)| registered(p).is_some())
}

/// A verifier by name with its default configuration (built in or registered).
pub fn build(name: &str) -> Result<Arc<dyn Verifier>> {
    match name {
        "math" => Ok(Arc::new(MathVerifier::default())),
        "format" => Ok(Arc::new(FormatVerifier::default())),
        other => match lookup(other, &Map::new()) {
            Some(v) => v,
            None => Err(VerifyError::UnknownVerifier(other.to_string())),
        },
    }
}

fn cfg_err(field: &str, msg: impl Into<String>) -> VerifyError {
    VerifyError::Config {
        field: field.to_string(),
        msg: msg.into(),
    }
}

/// Deserializes a verifier's settings from its spec object (ignoring `type` and
/// `deadline_ms`); an error names the field at fault as `what.field`. For plugin factories.
pub fn settings<T: serde::de::DeserializeOwned>(m: &Map<String, Value>, what: &str) -> Result<T> {
    let mut m = m.clone();
    m.remove("type");
    m.remove("deadline_ms");
    serde_json::from_value(Value::Object(m.clone())).map_err(|e| {
        // name the field at fault: the first key that fails on its own
        let field = m
            .iter()
            .find(|(k, v)| {
                let one = Map::from_iter([((*k).clone(), (*v).clone())]);
                serde_json::from_value::<T>(Value::Object(one)).is_err()
            })
            .map(|(k, _)| format!("{what}.{k}"))
            .unwrap_or_else(|| what.to_string());
        cfg_err(&field, e.to_string())
    })
}

/// A `weighted_sum` part's normalisation: `"normalize"` absent or `"none"`, `"running"` (with
/// an optional `"clip"`), or `{"min": a, "max": b}`.
fn normalize_of(part: &Value, k: usize) -> Result<Normalize> {
    let field = format!("parts[{k}].normalize");
    let clip = match part.get("clip") {
        None => None,
        Some(c) => Some(
            c.as_f64()
                .filter(|c| *c > 0.0)
                .ok_or_else(|| cfg_err(&format!("parts[{k}].clip"), "expected a positive number"))?
                as f32,
        ),
    };
    let n = match part.get("normalize") {
        None => Normalize::None,
        Some(Value::String(s)) if s == "none" => Normalize::None,
        Some(Value::String(s)) if s == "running" => Normalize::running(clip),
        Some(Value::Object(m)) => {
            let num = |key: &str| {
                m.get(key)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| cfg_err(&format!("{field}.{key}"), "expected a number"))
            };
            let (min, max) = (num("min")?, num("max")?);
            if let Some(extra) = m.keys().find(|key| *key != "min" && *key != "max") {
                return Err(cfg_err(
                    &format!("{field}.{extra}"),
                    "unknown field (min, max)",
                ));
            }
            if max <= min {
                return Err(cfg_err(
                    &field,
                    format!("max ({max}) must exceed min ({min})"),
                ));
            }
            Normalize::Range {
                min: min as f32,
                max: max as f32,
            }
        }
        Some(other) => {
            return Err(cfg_err(
                &field,
                format!(
                    "expected \"none\", \"running\" or {{\"min\": a, \"max\": b}}, got {other}"
                ),
            ))
        }
    };
    if clip.is_some() && !matches!(n, Normalize::Running { .. }) {
        return Err(cfg_err(
            &format!("parts[{k}].clip"),
            "only applies to \"normalize\": \"running\"",
        ));
    }
    Ok(n)
}

/// A verifier from a spec: a name string, or an object with `type` (`math`, `format`,
/// `weighted_sum`, `gated`) and that type's settings.
pub fn from_spec(spec: &Value) -> Result<Arc<dyn Verifier>> {
    let m = match spec {
        Value::String(s) => return build(s),
        Value::Object(m) => m,
        other => {
            return Err(cfg_err(
                "verifier",
                format!("expected a name or an object, got {other}"),
            ))
        }
    };
    let ty = m
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| cfg_err("type", "missing (math, format, weighted_sum, gated)"))?;
    let v: Arc<dyn Verifier> = match ty {
        "math" => Arc::new(MathVerifier::new(settings::<MathConfig>(m, "math")?)),
        "format" => Arc::new(FormatVerifier::new(settings::<FormatConfig>(m, "format")?)?),
        "weighted_sum" => {
            let parts = m
                .get("parts")
                .and_then(Value::as_array)
                .ok_or_else(|| cfg_err("parts", "weighted_sum needs a `parts` list"))?;
            let mut out = Vec::new();
            for (k, p) in parts.iter().enumerate() {
                let w = p
                    .get("weight")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| cfg_err(&format!("parts[{k}].weight"), "missing number"))?;
                let inner = p
                    .get("verifier")
                    .ok_or_else(|| cfg_err(&format!("parts[{k}].verifier"), "missing"))?;
                if let Some(extra) = p.as_object().and_then(|o| {
                    o.keys().find(|key| {
                        !["weight", "verifier", "normalize", "clip"].contains(&key.as_str())
                    })
                }) {
                    return Err(cfg_err(
                        &format!("parts[{k}].{extra}"),
                        "unknown field (weight, verifier, normalize, clip)",
                    ));
                }
                let normalize = normalize_of(p, k)?;
                out.push(Part {
                    weight: w as f32,
                    verifier: from_spec(inner)?,
                    normalize,
                });
            }
            Arc::new(WeightedSum { parts: out })
        }
        "gated" => {
            let gate = from_spec(m.get("gate").ok_or_else(|| cfg_err("gate", "missing"))?)?;
            let inner = from_spec(m.get("inner").ok_or_else(|| cfg_err("inner", "missing"))?)?;
            let gate_failed = match m.get("gate_failed") {
                None => 0.0,
                Some(x) => x
                    .as_f64()
                    .ok_or_else(|| cfg_err("gate_failed", "expected a number"))?
                    as f32,
            };
            Arc::new(Gated {
                gate,
                inner,
                gate_failed,
            })
        }
        other => {
            let mut settings = m.clone();
            settings.remove("type");
            settings.remove("deadline_ms");
            match lookup(other, &settings) {
                Some(v) => v?,
                None => return Err(VerifyError::UnknownVerifier(other.to_string())),
            }
        }
    };
    match m.get("deadline_ms") {
        None => Ok(v),
        Some(d) => {
            let ms = d
                .as_u64()
                .filter(|ms| *ms > 0)
                .ok_or_else(|| cfg_err("deadline_ms", "expected a positive integer"))?;
            Ok(Arc::new(Deadline {
                inner: v,
                limit: Duration::from_millis(ms),
                mapping: RewardMapping::default(),
            }))
        }
    }
}
