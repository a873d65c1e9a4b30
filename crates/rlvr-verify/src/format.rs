//! The `format` verifier: structure checks with partial credit, e.g. R1-style
//! `<think>…</think><answer>…</answer>`.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Result, VerifyError};
use crate::{Outcome, RewardMapping, Status, Verifier, VerifyInput};

/// Settings of the format verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatConfig {
    /// Tags that must each appear exactly once as `<tag>…</tag>`.
    pub tags: Vec<String>,
    /// The tag blocks must appear in the order of `tags`.
    pub require_order: bool,
    /// Only whitespace may appear outside the tag blocks.
    pub nothing_outside: bool,
    /// The response must match this regex (searched; anchor it with `^…$` as needed).
    pub regex: Option<String>,
    /// Score = fraction of satisfied rules (else 1 only when every rule holds).
    pub partial_credit: bool,
    /// Scores per status (`correct` = every rule holds). With partial credit, an incorrect
    /// outcome scores `incorrect + (correct - incorrect) × fraction satisfied`.
    pub rewards: RewardMapping,
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig {
            tags: vec!["think".into(), "answer".into()],
            require_order: true,
            nothing_outside: true,
            regex: None,
            partial_credit: true,
            rewards: RewardMapping::default(),
        }
    }
}

/// The format verifier (`format`).
#[derive(Debug, Clone)]
pub struct FormatVerifier {
    cfg: FormatConfig,
    regex: Option<Regex>,
}

impl Default for FormatVerifier {
    fn default() -> Self {
        FormatVerifier::new(FormatConfig::default()).expect("default format config is valid")
    }
}

impl FormatVerifier {
    /// Builds the verifier; fails on a bad regex or an empty tag name.
    pub fn new(cfg: FormatConfig) -> Result<Self> {
        if let Some(t) = cfg
            .tags
            .iter()
            .find(|t| t.is_empty() || t.contains(['<', '>']))
        {
            return Err(VerifyError::Config {
                field: "tags".into(),
                msg: format!("bad tag name {t:?}"),
            });
        }
        let regex = match &cfg.regex {
            Some(r) => Some(
                regex::RegexBuilder::new(r)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| VerifyError::Regex {
                        rule: "regex".into(),
                        msg: e.to_string(),
                    })?,
            ),
            None => None,
        };
        Ok(FormatVerifier { cfg, regex })
    }

    /// The configuration.
    pub fn config(&self) -> &FormatConfig {
        &self.cfg
    }
}

impl Verifier for FormatVerifier {
    fn name(&self) -> &str {
        "format"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let text = input.response;
        let mut rules: Vec<(String, bool, String)> = Vec::new();
        // (start of open tag, end of close tag) per tag found exactly once
        let mut spans: Vec<Option<(usize, usize)>> = Vec::new();
        for t in &self.cfg.tags {
            let (open, close) = (format!("<{t}>"), format!("</{t}>"));
            let n_open = text.matches(&open).count();
            let n_close = text.matches(&close).count();
            let span = match (text.find(&open), text.find(&close)) {
                (Some(a), Some(z)) if n_open == 1 && n_close == 1 && a < z => {
                    Some((a, z + close.len()))
                }
                _ => None,
            };
            let why = if span.is_some() {
                String::new()
            } else {
                format!("expected one {open}…{close}, found {n_open} open and {n_close} close")
            };
            rules.push((format!("tag:{t}"), span.is_some(), why));
            spans.push(span);
        }
        let all_found = spans.iter().all(Option::is_some);
        let found: Vec<(usize, usize)> = spans.iter().flatten().copied().collect();
        if self.cfg.require_order && self.cfg.tags.len() > 1 {
            let ordered = all_found && found.windows(2).all(|w| w[0].1 <= w[1].0);
            let why = if ordered {
                String::new()
            } else if !all_found {
                "not every tag is present".into()
            } else {
                format!(
                    "blocks not in the order {:?} (or overlapping)",
                    self.cfg.tags
                )
            };
            rules.push(("order".into(), ordered, why));
        }
        if self.cfg.nothing_outside {
            let mut sorted = found.clone();
            sorted.sort();
            let mut pos = 0;
            let mut outside = String::new();
            for (a, z) in &sorted {
                if *a >= pos {
                    outside.push_str(&text[pos..*a]);
                }
                pos = pos.max(*z);
            }
            outside.push_str(&text[pos.min(text.len())..]);
            let ok = all_found && outside.trim().is_empty();
            let why = if ok {
                String::new()
            } else if !all_found {
                "not every tag is present".into()
            } else {
                format!(
                    "text outside the tags: {:?}",
                    outside.trim().chars().take(60).collect::<String>()
                )
            };
            rules.push(("nothing_outside".into(), ok, why));
        }
        if let Some(r) = &self.regex {
            let ok = r.is_match(text);
            rules.push((
                "regex".into(),
                ok,
                if ok {
                    String::new()
                } else {
                    format!("does not match {}", r.as_str())
                },
            ));
        }
        let total = rules.len().max(1);
        let passed = rules.iter().filter(|r| r.1).count();
        let map = &self.cfg.rewards;
        let (status, score) = if passed == rules.len() {
            (Status::Correct, map.correct)
        } else if self.cfg.partial_credit {
            let frac = passed as f32 / total as f32;
            (
                Status::Incorrect,
                map.incorrect + (map.correct - map.incorrect) * frac,
            )
        } else {
            (Status::Incorrect, map.incorrect)
        };
        let failed: Vec<_> = rules
            .iter()
            .filter(|r| !r.1)
            .map(|r| json!({"rule": r.0, "why": r.2}))
            .collect();
        let satisfied: Vec<_> = rules.iter().filter(|r| r.1).map(|r| r.0.clone()).collect();
        Outcome {
            score,
            status,
            details: json!({"passed": passed, "rules": total, "satisfied": satisfied, "failed": failed}),
        }
    }
}
