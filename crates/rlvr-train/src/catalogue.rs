//! The registries as one JSON document (`rlvr algorithms`): the presets with what each sets,
//! the advantage estimators with what each needs, the policy losses and the
//! rollout-correction presets. Built from the tables themselves, so it cannot drift.

use serde_json::{json, Value};

use crate::config::{AlgorithmConfig, PRESETS};
use crate::error::Result;
use crate::estimators::{EstimatorNeeds, ESTIMATORS};
use crate::losses::POLICY_LOSSES;
use crate::rollout_correction::ROLLOUT_CORRECTION_PRESETS;

impl EstimatorNeeds {
    /// The names of what is needed beyond rewards and mask (`prompt ids`, `critic`,
    /// `greedy baseline`, `old log-probs`, `sum_pi_squared`, `reward components`).
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.index, "prompt ids"),
            (self.critic, "critic"),
            (self.greedy_baseline, "greedy baseline"),
            (self.old_logprobs, "old log-probs"),
            (self.sum_pi_squared, "sum_pi_squared"),
            (self.reward_components, "reward components"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// `{"presets", "adv_estimators", "policy_losses", "rollout_correction_presets"}`.
pub fn catalogue() -> Result<Value> {
    let presets = PRESETS
        .iter()
        .map(|name| {
            let c = AlgorithmConfig::preset(name)?;
            Ok(json!({
                "name": name,
                "adv_estimator": c.adv_estimator.name(),
                "loss_mode": c.policy_loss.loss_mode,
                "loss_agg_mode": c.loss_agg_mode,
                "kl_loss": c.kl.use_kl_loss,
                "kl_in_reward": c.kl.use_kl_in_reward,
                "rollout_correction": c.rollout_correction.is_some(),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let estimators: Vec<Value> = ESTIMATORS
        .iter()
        .map(|e| json!({"name": e.name, "needs": e.needs.names(), "about": e.about}))
        .collect();
    let losses: Vec<Value> = POLICY_LOSSES
        .iter()
        .map(|(name, _, about)| json!({"name": name, "about": about}))
        .collect();
    Ok(json!({
        "presets": presets,
        "adv_estimators": estimators,
        "policy_losses": losses,
        "rollout_correction_presets": ROLLOUT_CORRECTION_PRESETS,
    }))
}
