//! The algorithm registry: serde configs with documented defaults and the named presets
//! `grpo`, `dr_grpo`, `dapo`, `rloo`, `reinforce_plus_plus`, `reinforce_plus_plus_baseline`,
//! `remax`, `ppo`. Every field can be overridden ([`AlgorithmConfig::with_overrides`]).

use serde::{Deserialize, Serialize};

use crate::advantages::{AdvantageEstimator, GrpoConfig};
use crate::agg::LossAggMode;
use crate::dapo::{DynamicSamplingConfig, OverlongConfig};
use crate::error::{Result, TrainError};
use crate::kl::KlEstimator;
use crate::optim::OptimConfig;
use crate::policy::ClipConfig;

/// KL regularisation towards the reference policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KlConfig {
    /// Add `coef × agg(KL)` to the policy loss (GRPO style; default false).
    pub use_kl_loss: bool,
    /// Coefficient of the KL loss (default 0.001).
    pub kl_loss_coef: f64,
    /// Estimator of the KL loss (default k3).
    pub kl_loss_type: KlEstimator,
    /// Subtract `coef × KL` from the token rewards (PPO/RLHF style; default false).
    pub use_kl_in_reward: bool,
    /// Coefficient β of the reward penalty (default 0.001).
    pub kl_reward_coef: f64,
    /// Estimator of the reward penalty (default k1).
    pub kl_penalty: KlEstimator,
}

impl Default for KlConfig {
    fn default() -> Self {
        KlConfig {
            use_kl_loss: false,
            kl_loss_coef: 0.001,
            kl_loss_type: KlEstimator::K3,
            use_kl_in_reward: false,
            kl_reward_coef: 0.001,
            kl_penalty: KlEstimator::K1,
        }
    }
}

/// The PPO critic (used when the estimator is `gae`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriticConfig {
    /// Value clip range c_v (default 0.5).
    pub cliprange_value: f64,
    /// Weight of the value loss (which already includes verl's factor 0.5; default 1.0).
    pub vf_coef: f64,
    /// The critic's optimiser (default: [`OptimConfig`] defaults with lr 1e-5).
    pub optim: OptimConfig,
}

impl Default for CriticConfig {
    fn default() -> Self {
        CriticConfig {
            cliprange_value: 0.5,
            vf_coef: 1.0,
            optim: OptimConfig {
                lr: 1e-5,
                ..OptimConfig::default()
            },
        }
    }
}

/// What an algorithm needs computed for each batch besides the samples and their rewards:
/// the loop asks this instead of matching estimator variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A value model (PPO's critic: the `gae` estimator).
    pub critic: bool,
    /// The frozen reference policy's log-probs (KL as a loss or in the reward).
    pub reference: bool,
    /// One greedy completion per prompt whose reward is the baseline (`remax`).
    pub greedy_baseline: bool,
    /// A separate pass for the log-probs of the policy that sampled (off-policy updates:
    /// several epochs or mini-batches, or KL in the reward, which reads them before the
    /// update). On-policy, the update's own log-probs, detached, stand in for them.
    pub old_logprobs: bool,
    /// The sampler's per-token log-probs (rollout-correction weights and mismatch metrics).
    pub rollout_logprobs: bool,
}

impl AdvantageEstimator {
    /// Whether the estimator reads a critic's values.
    pub fn needs_critic(self) -> bool {
        matches!(self, AdvantageEstimator::Gae)
    }

    /// Whether the estimator reads a greedy completion's reward per prompt.
    pub fn needs_greedy_baseline(self) -> bool {
        matches!(self, AdvantageEstimator::Remax)
    }
}

/// Everything that defines an RL algorithm's update (not the rollout or the data).
/// Defaults are those of the `grpo` preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmConfig {
    /// Preset this config started from (informational).
    pub preset: String,
    /// Advantage estimator (default `grpo`).
    pub adv_estimator: AdvantageEstimator,
    /// Discount γ for REINFORCE++ and GAE (default 1.0).
    pub gamma: f64,
    /// GAE λ (default 1.0).
    pub lam: f64,
    /// GRPO ε / std settings (default ε 1e-6, unbiased std).
    pub grpo: GrpoConfig,
    /// PPO clip settings (default 0.2/0.2, dual clip c = 3).
    pub clip: ClipConfig,
    /// Loss aggregation (default `seq-mean-token-mean` for `grpo`).
    pub loss_agg_mode: LossAggMode,
    /// Constant C of `seq-mean-token-sum-norm` (default None = padded length T; set it to
    /// the maximum response length for Dr.GRPO).
    pub loss_scale_factor: Option<f64>,
    /// Entropy bonus coefficient (default 0).
    pub entropy_coeff: f64,
    /// KL regularisation.
    pub kl: KlConfig,
    /// Critic settings (PPO).
    pub critic: Option<CriticConfig>,
    /// DAPO dynamic sampling (None = off).
    pub dynamic_sampling: Option<DynamicSamplingConfig>,
    /// DAPO soft overlong punishment (None = off).
    pub overlong: Option<OverlongConfig>,
    /// Mask truncated completions out of the loss (default false).
    pub overlong_filter: bool,
    /// Policy optimiser.
    pub optim: OptimConfig,
}

impl AlgorithmConfig {
    /// What this algorithm needs per batch when the policy takes `updates_per_batch`
    /// optimiser steps on it (epochs × mini-batches; 1 is on-policy).
    pub fn needs(&self, updates_per_batch: usize) -> Needs {
        Needs {
            critic: self.adv_estimator.needs_critic(),
            reference: self.kl.use_kl_loss || self.kl.use_kl_in_reward,
            greedy_baseline: self.adv_estimator.needs_greedy_baseline(),
            old_logprobs: updates_per_batch > 1 || self.kl.use_kl_in_reward,
            rollout_logprobs: true,
        }
    }
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        AlgorithmConfig {
            preset: "grpo".into(),
            adv_estimator: AdvantageEstimator::Grpo,
            gamma: 1.0,
            lam: 1.0,
            grpo: GrpoConfig::default(),
            clip: ClipConfig::default(),
            loss_agg_mode: LossAggMode::SeqMeanTokenMean,
            loss_scale_factor: None,
            entropy_coeff: 0.0,
            kl: KlConfig {
                use_kl_loss: true,
                ..KlConfig::default()
            },
            critic: None,
            dynamic_sampling: None,
            overlong: None,
            overlong_filter: false,
            optim: OptimConfig::default(),
        }
    }
}

/// Names of the presets.
pub const PRESETS: [&str; 8] = [
    "grpo",
    "dr_grpo",
    "dapo",
    "rloo",
    "reinforce_plus_plus",
    "reinforce_plus_plus_baseline",
    "remax",
    "ppo",
];

impl AlgorithmConfig {
    /// A named preset:
    /// - `grpo`: GRPO advantages (ε 1e-6, unbiased std), clip 0.2, `seq-mean-token-mean`,
    ///   k3 KL loss with β = 0.001.
    /// - `dr_grpo`: `R − mean` advantages, `seq-mean-token-sum-norm`, no KL.
    /// - `dapo`: GRPO advantages, clip-higher 0.2/0.28 with dual clip 10, `token-mean`,
    ///   dynamic sampling, soft overlong punishment, no KL.
    /// - `rloo`: leave-one-out advantages, `token-mean`, k1 KL in the reward (β 0.001).
    /// - `reinforce_plus_plus` / `reinforce_plus_plus_baseline`: γ = 1, `token-mean`,
    ///   k2 KL loss (β 0.001).
    /// - `remax`: greedy baseline, `token-mean`, k1 KL in the reward (β 0.001).
    /// - `ppo`: GAE (γ 1, λ 1) with a critic (value clip 0.5), clip 0.2, `token-mean`.
    pub fn preset(name: &str) -> Result<Self> {
        let base = AlgorithmConfig {
            preset: name.to_string(),
            ..AlgorithmConfig::default()
        };
        let no_kl = KlConfig::default();
        let kl_reward = KlConfig {
            use_kl_in_reward: true,
            ..KlConfig::default()
        };
        let cfg = match name {
            "grpo" => base,
            "dr_grpo" => AlgorithmConfig {
                adv_estimator: AdvantageEstimator::GrpoNoStd,
                grpo: GrpoConfig {
                    norm_by_std: false,
                    ..GrpoConfig::default()
                },
                loss_agg_mode: LossAggMode::SeqMeanTokenSumNorm,
                kl: no_kl,
                ..base
            },
            "dapo" => AlgorithmConfig {
                clip: ClipConfig {
                    clip_ratio_low: 0.2,
                    clip_ratio_high: 0.28,
                    clip_ratio_c: 10.0,
                },
                loss_agg_mode: LossAggMode::TokenMean,
                kl: no_kl,
                dynamic_sampling: Some(DynamicSamplingConfig::default()),
                overlong: Some(OverlongConfig::default()),
                ..base
            },
            "rloo" => AlgorithmConfig {
                adv_estimator: AdvantageEstimator::Rloo,
                loss_agg_mode: LossAggMode::TokenMean,
                kl: kl_reward,
                ..base
            },
            "reinforce_plus_plus" | "reinforce_plus_plus_baseline" => AlgorithmConfig {
                adv_estimator: if name == "reinforce_plus_plus" {
                    AdvantageEstimator::ReinforcePlusPlus
                } else {
                    AdvantageEstimator::ReinforcePlusPlusBaseline
                },
                loss_agg_mode: LossAggMode::TokenMean,
                kl: KlConfig {
                    use_kl_loss: true,
                    kl_loss_type: KlEstimator::K2,
                    ..KlConfig::default()
                },
                ..base
            },
            "remax" => AlgorithmConfig {
                adv_estimator: AdvantageEstimator::Remax,
                loss_agg_mode: LossAggMode::TokenMean,
                kl: kl_reward,
                ..base
            },
            "ppo" => AlgorithmConfig {
                adv_estimator: AdvantageEstimator::Gae,
                loss_agg_mode: LossAggMode::TokenMean,
                kl: no_kl,
                critic: Some(CriticConfig::default()),
                ..base
            },
            _ => return Err(TrainError::unknown("algorithm preset", name, &PRESETS)),
        };
        Ok(cfg)
    }

    /// This config with `overrides` (a JSON object, e.g. parsed from TOML or `key=value`
    /// flags) merged in recursively; unknown fields are errors.
    pub fn with_overrides(&self, overrides: &serde_json::Value) -> Result<Self> {
        let mut base = serde_json::to_value(self).map_err(|e| TrainError::Config(e.to_string()))?;
        merge(&mut base, overrides);
        let cfg: AlgorithmConfig =
            serde_json::from_value(base).map_err(|e| TrainError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks value ranges (clip ratios, coefficients, γ/λ in [0, 1], critic for `gae`).
    pub fn validate(&self) -> Result<()> {
        self.clip.validate()?;
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.lam) {
            return Err(TrainError::Input(format!(
                "gamma and lam must lie in [0, 1] (got {}, {})",
                self.gamma, self.lam
            )));
        }
        if self.grpo.eps < 0.0 {
            return Err(TrainError::Input("grpo.eps must be >= 0".into()));
        }
        if self.adv_estimator == AdvantageEstimator::Gae && self.critic.is_none() {
            return Err(TrainError::Input("the gae estimator needs a critic".into()));
        }
        if let Some(c) = self.loss_scale_factor {
            if c.is_nan() || c <= 0.0 {
                return Err(TrainError::Input("loss_scale_factor must be > 0".into()));
            }
        }
        Ok(())
    }
}

fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}
