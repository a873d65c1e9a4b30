//! The algorithm registry: serde configs with documented defaults and the named presets
//! `grpo`, `dr_grpo`, `dapo`, `rloo`, `reinforce_plus_plus`, `reinforce_plus_plus_baseline`,
//! `remax`, `ppo`. Every field can be overridden ([`AlgorithmConfig::with_overrides`]).

use serde::{Deserialize, Serialize};

use crate::advantages::{AdvantageEstimator, AdvantageParams, GrpoConfig};
use crate::agg::LossAggMode;
use crate::dapo::{DynamicSamplingConfig, OverlongConfig};
use crate::error::{Result, TrainError};
use crate::estimators::EstimatorConfig;
use crate::kl::KlEstimator;
use crate::losses::{ActorLossConfig, PolicyLossParams};
use crate::optim::OptimConfig;
use crate::policy::ClipConfig;
use crate::rollout_correction::RolloutCorrectionConfig;

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
/// the loop asks this instead of matching estimator variants (the estimator's part comes
/// from its row in [`crate::estimators::ESTIMATORS`]).
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
    /// `Σ_v π_v²` per token from the old log-prob pass (the optimal token baselines).
    pub sum_pi_squared: bool,
}

/// Everything that defines an RL algorithm's update (not the rollout or the data).
/// Defaults are those of the `grpo` preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmConfig {
    /// Preset this config started from (informational).
    pub preset: String,
    /// Advantage estimator, a name from [`crate::estimators::ESTIMATORS`] (default `grpo`).
    pub adv_estimator: AdvantageEstimator,
    /// Settings of the estimators ported from verl 1dda039, under verl's names
    /// (`norm_adv_by_std_in_grpo`, `gdpo_reward_keys`/`gdpo_reward_weights` — by default the
    /// parts of a `weighted_sum` verifier with their weights —, `f_norm`, `epsilon`,
    /// `handle_zero_tail`).
    pub estimator: EstimatorConfig,
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
    /// The policy loss, as verl's `actor.policy_loss` (`loss_mode` from the registry
    /// [`crate::losses::POLICY_LOSSES`] and its parameters; default `vanilla`: PPO clip with
    /// `clip`).
    pub policy_loss: PolicyLossParams,
    /// SAPO's temperature for `A > 0` (verl's `tau_pos`; default 1.0).
    pub tau_pos: f64,
    /// SAPO's temperature for `A ≤ 0` (verl's `tau_neg`; default 1.05).
    pub tau_neg: f64,
    /// Correction for sampler/trainer log-prob mismatch (verl's
    /// `algorithm.rollout_correction`: truncated or masked IS at token or sequence level,
    /// rejection sampling, IcePop; `None` = off).
    pub rollout_correction: Option<RolloutCorrectionConfig>,
}

impl AlgorithmConfig {
    /// Whether the update runs the registry's policy loss rather than the built-in PPO clip
    /// loss (any `loss_mode` but `vanilla`, or a rollout correction).
    pub fn uses_loss_registry(&self) -> bool {
        self.policy_loss.loss_mode != "vanilla" || self.rollout_correction.is_some()
    }

    /// The registry's loss settings (verl's `ActorConfig` fields) from this config.
    pub fn actor_loss(&self) -> ActorLossConfig {
        ActorLossConfig {
            clip_ratio: self.clip.clip_ratio_low,
            clip_ratio_low: Some(self.clip.clip_ratio_low),
            clip_ratio_high: Some(self.clip.clip_ratio_high),
            clip_ratio_c: self.clip.clip_ratio_c,
            tau_pos: self.tau_pos,
            tau_neg: self.tau_neg,
            loss_agg_mode: self.loss_agg_mode,
            loss_scale_factor: self.loss_scale_factor,
            policy_loss: self.policy_loss.clone(),
        }
    }

    /// What this algorithm needs per batch when the policy takes `updates_per_batch`
    /// optimiser steps on it (epochs × mini-batches; 1 is on-policy).
    pub fn needs(&self, updates_per_batch: usize) -> Needs {
        let est = self.adv_estimator.needs();
        Needs {
            critic: est.critic,
            reference: self.kl.use_kl_loss || self.kl.use_kl_in_reward,
            greedy_baseline: est.greedy_baseline,
            old_logprobs: updates_per_batch > 1 || self.kl.use_kl_in_reward || est.old_logprobs,
            rollout_logprobs: true,
            sum_pi_squared: est.sum_pi_squared,
        }
    }

    /// The estimator's hyper-parameters from this config.
    pub fn advantage_params(&self) -> AdvantageParams {
        AdvantageParams {
            gamma: self.gamma,
            lam: self.lam,
            grpo: self.grpo,
            extra: self.estimator.clone(),
        }
    }
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        AlgorithmConfig {
            preset: "grpo".into(),
            adv_estimator: AdvantageEstimator::Grpo,
            estimator: EstimatorConfig::default(),
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
            policy_loss: PolicyLossParams::default(),
            tau_pos: 1.0,
            tau_neg: 1.05,
            rollout_correction: None,
        }
    }
}

/// Names of the presets.
pub const PRESETS: [&str; 22] = [
    "grpo",
    "dr_grpo",
    "dapo",
    "rloo",
    "reinforce_plus_plus",
    "reinforce_plus_plus_baseline",
    "remax",
    "ppo",
    "gspo",
    "cispo",
    "sapo",
    "gpg",
    "gmpo",
    "clip_cov",
    "kl_cov",
    "dppo_tv",
    "dppo_kl",
    "grpo_tis",
    "grpo_icepop",
    "grpo_bypass",
    "gdpo",
    "opo",
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
    /// - `gdpo`: GRPO's loss with GDPO advantages (each part of a `weighted_sum` verifier
    ///   normalised in its group on its own, then summed with its weight and whitened).
    /// - `opo`: GRPO's loss with OPO's length-weighted baseline, no KL (as its paper).
    /// - the policy-loss presets (`gspo`, `cispo`, `sapo`, `gpg`, `gmpo`, `clip_cov`, `kl_cov`,
    ///   `dppo_tv`, `dppo_kl`) and rollout-correction presets (`grpo_tis`, `grpo_icepop`, `grpo_bypass`).
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
            "gdpo" => AlgorithmConfig {
                adv_estimator: AdvantageEstimator::Gdpo,
                ..base
            },
            "opo" => AlgorithmConfig {
                adv_estimator: AdvantageEstimator::Opo,
                kl: no_kl,
                ..base
            },
            "gspo" | "cispo" | "sapo" | "gpg" | "gmpo" | "clip_cov" | "kl_cov" | "dppo_tv"
            | "dppo_kl" => Self::loss_preset(name, base)?,
            "grpo_tis" | "grpo_icepop" | "grpo_bypass" => Self::correction_preset(name, base)?,
            _ => return Err(TrainError::unknown("algorithm preset", name, &PRESETS)),
        };
        Ok(cfg)
    }

    /// The presets of the newer policy losses: GRPO advantages, the registry's loss with the
    /// clip ranges of its paper or verl's example script, no KL unless the recipe has it.
    fn loss_preset(name: &str, base: AlgorithmConfig) -> Result<Self> {
        let clip = |lo: f64, hi: f64| ClipConfig {
            clip_ratio_low: lo,
            clip_ratio_high: hi,
            ..ClipConfig::default()
        };
        let (mode, clip, agg) = match name {
            "gspo" => ("gspo", clip(3e-4, 4e-4), LossAggMode::SeqMeanTokenMean),
            "cispo" => ("cispo", clip(10.0, 0.2), LossAggMode::TokenMean),
            "sapo" => ("sapo", clip(0.2, 0.2), LossAggMode::SeqMeanTokenMean),
            "gpg" => ("gpg", clip(0.2, 0.2), LossAggMode::TokenMean),
            "gmpo" => ("geo_mean", clip(0.4, 0.4), LossAggMode::SeqMeanTokenMean),
            "clip_cov" => ("clip_cov", clip(0.2, 0.2), LossAggMode::TokenMean),
            "kl_cov" => ("kl_cov", clip(0.2, 0.2), LossAggMode::TokenMean),
            "dppo_tv" => ("dppo_tv", clip(0.15, 0.15), LossAggMode::TokenMean),
            "dppo_kl" => ("dppo_kl", clip(0.05, 0.05), LossAggMode::TokenMean),
            _ => return Err(TrainError::unknown("loss preset", name, &PRESETS)),
        };
        Ok(AlgorithmConfig {
            policy_loss: PolicyLossParams {
                loss_mode: mode.into(),
                ..PolicyLossParams::default()
            },
            clip,
            loss_agg_mode: agg,
            kl: KlConfig::default(),
            ..base
        })
    }

    /// GRPO with a rollout correction (verl's presets): token-level truncated IS
    /// (`decoupled_token_is`), IcePop (`decoupled_token_icepop`), or the 2-policy bypass mode
    /// with PPO clip against the sampler's log-probs (`bypass_ppo_clip`).
    fn correction_preset(name: &str, base: AlgorithmConfig) -> Result<Self> {
        let preset = match name {
            "grpo_tis" => "decoupled_token_is",
            "grpo_icepop" => "decoupled_token_icepop",
            _ => "bypass_ppo_clip",
        };
        let rc = RolloutCorrectionConfig::preset(preset)?;
        let mut cfg = AlgorithmConfig {
            rollout_correction: Some(rc.clone()),
            ..base
        };
        if rc.bypass_mode {
            cfg.policy_loss.loss_mode = "bypass_mode".into();
            cfg.policy_loss.rollout_correction = Some(rc);
            cfg.rollout_correction = None;
        }
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
        if self.policy_loss.loss_mode == "cispo" {
            // CISPO truncates a detached ratio: a lower range of 1 or more means no lower clip
            ClipConfig {
                clip_ratio_low: 0.0,
                ..self.clip
            }
            .validate()?;
        } else {
            self.clip.validate()?;
        }
        crate::losses::policy_loss_fn(&self.policy_loss.loss_mode)?;
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.lam) {
            return Err(TrainError::Input(format!(
                "gamma and lam must lie in [0, 1] (got {}, {})",
                self.gamma, self.lam
            )));
        }
        if self.grpo.eps < 0.0 {
            return Err(TrainError::Input("grpo.eps must be >= 0".into()));
        }
        if self.adv_estimator.needs().critic && self.critic.is_none() {
            return Err(TrainError::Input(format!(
                "the {} estimator needs a critic (set [algorithm.critic])",
                self.adv_estimator.name()
            )));
        }
        if let Some(w) = &self.estimator.gdpo_reward_weights {
            let keys = self
                .estimator
                .gdpo_reward_keys
                .as_ref()
                .map_or(w.len(), Vec::len);
            if keys != w.len() {
                return Err(TrainError::Input(format!(
                    "estimator.gdpo_reward_weights has {} weights for {keys} reward keys",
                    w.len()
                )));
            }
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
