//! rlvr's trainer algorithms as pure functions over candle tensors (f32 and f64) and slices,
//! reproducing verl's `trainer/ppo/core_algos.py` to 1e-9 in f64.
//!
//! One module per family, named as configs name them:
//! - [`advantages`]: `grpo`, `grpo_no_std` (Dr.GRPO), `rloo`, `reinforce_plus_plus`,
//!   `reinforce_plus_plus_baseline`, `remax`, `gae`;
//! - [`policy`]: PPO clip loss with clip-higher and dual clip, and its metrics;
//! - [`value`]: clipped value loss; [`entropy`]: entropy from logits;
//! - [`agg`]: loss aggregation modes with a global-batch normaliser;
//! - [`kl`]: KL estimators k1/abs/k2/k3 (loss term or reward penalty);
//! - [`dapo`]: dynamic sampling, soft overlong punishment, overlong filtering;
//! - [`metrics`]: pass@k, maj@k, mean@k;
//! - [`preference`]: DPO, IPO, KTO, ORPO, SimPO, RRHF;
//! - [`optim`]: AdamW with global-norm clipping, LR schedules, gradient accumulation;
//! - [`config`]: the algorithm registry and presets;
//! - [`catalogue`]: the registries as one JSON document (`rlvr algorithms`);
//! - [`golden`]: recomputation of a verl golden file (`rlvr selftest algorithms`);
//! - [`losses`]: verl 1dda039's policy losses behind one registry, [`losses::POLICY_LOSSES`]
//!   (`actor.policy_loss.loss_mode`): `vanilla`, `dppo_tv`, `dppo_kl`, `gspo`, `geo_mean`
//!   (GMPO), `cispo`, `sapo`, `gpg`, `dro`, `clip_cov`, `kl_cov`, `bypass_mode`; configured by
//!   [`losses::ActorLossConfig`] (verl's `ActorConfig` names and defaults);
//! - [`estimators`]: the one table of advantage estimators, [`estimators::ESTIMATORS`] (name,
//!   function, needs, description): the seven of [`advantages`] and verl 1dda039's `gdpo`,
//!   `opo`, `gpg`, `grpo_passk`, `rloo_vectorized`, `grpo_vectorized`,
//!   `optimal_token_baseline`, `tir_optimal_token_baseline`;
//! - [`rollout_correction`]: token/sequence TIS, IcePop, rejection sampling (k1/k2/k3, token
//!   and sequence level), batch normalisation, verl's presets and mismatch metrics;
//! - [`golden_losses`]: recomputation of `../shared/golden/losses.json` (`rlvr selftest losses`).
//!
//! Formulas: `../shared/notes/algorithms.md` (verl b178a3c) and `../shared/notes/losses.md`
//! (verl 1dda039). One difference between the two verl versions: `seq-mean-token-sum-norm`
//! is `Σ m·ℓ / C` in [`agg`] (b178a3c) and `Σ m·ℓ / (S·C)` in the [`losses`] registry (1dda039).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use rlvr_train::advantages::{grpo, GrpoConfig};
//! # fn main() -> Result<(), rlvr_train::TrainError> {
//! let rewards = Tensor::new(&[[0.0, 1.0], [0.0, 0.0]], &Device::Cpu)?; // outcome on the last token
//! let mask = Tensor::new(&[[1.0, 1.0], [1.0, 1.0]], &Device::Cpu)?;
//! let (adv, _) = grpo(&rewards, &mask, &["p0", "p0"], &GrpoConfig::default())?;
//! let a = adv.to_vec2::<f64>()?;
//! assert!(a[0][0] > 0.0 && a[1][0] < 0.0);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod advantages;
pub mod agg;
pub mod catalogue;
pub mod config;
pub mod dapo;
pub mod entropy;
pub mod error;
pub mod estimators;
pub mod golden;
pub mod golden_losses;
pub mod host;
pub mod kl;
pub mod losses;
pub mod metrics;
pub mod optim;
pub mod policy;
pub mod preference;
pub mod rollout_correction;
pub mod value;

pub use advantages::{
    compute_advantages, AdvantageEstimator, AdvantageParams, GrpoConfig, StdKind,
};
pub use agg::{agg_loss, agg_loss_local, LossAggMode, Normaliser};
pub use config::{AlgorithmConfig, Needs, PRESETS};
pub use error::{Result, TrainError};
pub use estimators::{EstimatorConfig, EstimatorInputs, EstimatorNeeds, ESTIMATORS};
pub use kl::KlEstimator;
pub use policy::{ppo_clip_loss, ClipConfig, PolicyLoss};
