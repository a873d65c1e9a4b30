//! Automatic step labels (Math-Shepherd, Wang et al. 2024): a step is good when completions
//! sampled from the solution so far still reach the right answer. For every prefix
//! `steps[..=i]`, `rollouts` completions are drawn and verified; the hard label is 1 when any
//! reaches the answer, the soft label is the fraction that do. The whole solution (the last
//! prefix) is verified as it is.
//!
//! The sampler is a closure, so any policy (the in-process engine, an HTTP server) or a test
//! double can complete the prefixes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use rlvr_verify::{Status, Verifier, VerifyInput};

use crate::data::Record;
use crate::error::Result;

/// Settings of [`label_steps`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShepherdConfig {
    /// Completions per prefix (default 8).
    pub rollouts: usize,
    /// Soft labels (fraction of completions that reach the answer) instead of hard ones
    /// (default false).
    pub soft: bool,
}

impl Default for ShepherdConfig {
    fn default() -> Self {
        ShepherdConfig {
            rollouts: 8,
            soft: false,
        }
    }
}

/// Labels `steps` of a solution to `prompt`. `complete(prompt, prefix, n)` returns `n`
/// continuations of the response prefix `prefix` (the steps so far, each followed by
/// `separator`); `prefix + continuation` is verified against `ground_truth`.
#[allow(clippy::too_many_arguments)]
pub fn label_steps(
    prompt: &Value,
    steps: &[String],
    separator: &str,
    ground_truth: &Value,
    verifier: &dyn Verifier,
    cfg: &ShepherdConfig,
    mut complete: impl FnMut(&Value, &str, usize) -> Result<Vec<String>>,
) -> Result<Record> {
    let metadata = serde_json::json!({ "prompt": prompt });
    let correct = |response: &str| {
        verifier
            .verify(&VerifyInput {
                response,
                ground_truth,
                metadata: &metadata,
            })
            .status
            == Status::Correct
    };
    let mut labels = Vec::with_capacity(steps.len());
    let mut prefix = String::new();
    for (i, s) in steps.iter().enumerate() {
        if i + 1 == steps.len() {
            prefix.push_str(s);
            labels.push(Some(if correct(&prefix) { 1.0 } else { 0.0 }));
            break;
        }
        prefix.push_str(s);
        prefix.push_str(separator);
        let outs = complete(prompt, &prefix, cfg.rollouts.max(1))?;
        let hits = outs
            .iter()
            .filter(|c| correct(&format!("{prefix}{c}")))
            .count();
        let frac = hits as f32 / outs.len().max(1) as f32;
        labels.push(Some(if cfg.soft {
            frac
        } else if hits > 0 {
            1.0
        } else {
            0.0
        }));
    }
    Ok(Record::Steps {
        prompt: prompt.clone(),
        steps: steps.to_vec(),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::{solve_add, Corruption};

    /// A "policy" that finishes an addition correctly from any prefix whose lines are right
    /// (it recomputes the clean solution) and copies the error otherwise.
    fn completer(a: u64, b: u64) -> impl FnMut(&Value, &str, usize) -> Result<Vec<String>> {
        move |_, prefix, n| {
            let clean = solve_add(a, b, None, 0).unwrap().text;
            let out = match clean.strip_prefix(prefix) {
                Some(rest) => rest.to_string(),
                None => "0</think><answer>0</answer>".to_string(),
            };
            // Half the samples are wrong anyway, to exercise the soft labels.
            Ok((0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        out.clone()
                    } else {
                        "</think><answer>1</answer>".into()
                    }
                })
                .collect())
        }
    }

    #[test]
    fn monte_carlo_labels_mark_the_first_wrong_step_and_after() {
        let math = rlvr_verify::registry::build("math").unwrap();
        let gt = serde_json::json!("936");
        let bad = solve_add(347, 589, Some(Corruption::Carry(1)), 0).unwrap();
        let r = label_steps(
            &Value::from("347+589"),
            &bad.steps,
            "\n",
            &gt,
            math.as_ref(),
            &ShepherdConfig::default(),
            completer(347, 589),
        )
        .unwrap();
        assert_eq!(r.first_wrong_step(), Some(1));
        let Record::Steps { labels, .. } = &r else {
            panic!()
        };
        assert_eq!(labels, &vec![Some(1.0), Some(0.0), Some(0.0)]);
        let good = solve_add(347, 589, None, 0).unwrap();
        let r = label_steps(
            &Value::from("347+589"),
            &good.steps,
            "\n",
            &gt,
            math.as_ref(),
            &ShepherdConfig {
                rollouts: 4,
                soft: true,
            },
            completer(347, 589),
        )
        .unwrap();
        let Record::Steps { labels, .. } = &r else {
            panic!()
        };
        assert_eq!(labels, &vec![Some(0.5), Some(0.5), Some(1.0)]);
    }
}
