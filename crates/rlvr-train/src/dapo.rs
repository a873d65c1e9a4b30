//! DAPO (Yu et al. 2025) reward shaping and batch construction: soft overlong punishment
//! (eq. 13), overlong filtering, and dynamic sampling as a component the training loop calls.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Soft overlong punishment (DAPO eq. 13), added to the reward of a completion of `length`
/// tokens: 0 if `length ≤ L_max − L_cache`; `((L_max − L_cache) − length) / L_cache` inside
/// the buffer; −1 beyond `L_max`. Times `penalty_factor` (1 in the paper).
pub fn soft_overlong_penalty(
    length: usize,
    max_len: usize,
    cache_len: usize,
    penalty_factor: f64,
) -> Result<f64> {
    if cache_len == 0 || cache_len > max_len {
        return Err(TrainError::Input(format!(
            "overlong buffer must satisfy 0 < L_cache <= L_max (got L_cache={cache_len}, L_max={max_len})"
        )));
    }
    let expected = max_len - cache_len;
    let p = if length <= expected {
        0.0
    } else if length <= max_len {
        (expected as f64 - length as f64) / cache_len as f64
    } else {
        -1.0
    };
    Ok(p * penalty_factor)
}

/// Settings of the soft overlong punishment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlongConfig {
    /// L_cache, the punishment buffer in tokens (DAPO: 4096 of 20480; default 4096).
    pub buffer_len: usize,
    /// Scale of the penalty (default 1.0).
    pub penalty_factor: f64,
}

impl Default for OverlongConfig {
    fn default() -> Self {
        OverlongConfig {
            buffer_len: 4096,
            penalty_factor: 1.0,
        }
    }
}

/// Overlong filtering: zeroes the (B, T) response mask of every truncated completion
/// (`truncated[i]` true when generation hit the length limit without stopping), so they do
/// not contribute to the loss.
pub fn overlong_filter_mask(mask: &Tensor, truncated: &[bool]) -> Result<Tensor> {
    let (b, _) = mask
        .dims2()
        .map_err(|_| TrainError::Shape(format!("mask: expected (B, T), got {:?}", mask.dims())))?;
    if truncated.len() != b {
        return Err(TrainError::Shape(format!(
            "{} truncation flags for {b} completions",
            truncated.len()
        )));
    }
    let keep: Vec<f64> = truncated
        .iter()
        .map(|&t| if t { 0.0 } else { 1.0 })
        .collect();
    let keep = Tensor::from_vec(keep, (b, 1), mask.device())?.to_dtype(mask.dtype())?;
    Ok(mask.broadcast_mul(&keep)?)
}

/// What to do with kept groups beyond the target when a round overfills the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RefillPolicy {
    /// Drop the surplus (verl: `batch[:train_batch_size]`). The default.
    #[default]
    Discard,
    /// Keep the surplus for the next training step's batch.
    CarryOver,
}

/// What happens when the round cap is reached before the batch is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// Fail (verl raises). The default.
    #[default]
    Error,
    /// Train on the partial batch collected so far (if any).
    TrainPartial,
}

/// Settings of DAPO's dynamic sampling.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicSamplingConfig {
    /// Maximum generation rounds per training step (0 = unlimited; default 10).
    pub max_rounds: usize,
    /// Minimum reward std (population) for a group to be kept; groups whose rewards are all
    /// equal are always dropped (default 0.0).
    pub min_std: f64,
    /// Surplus handling.
    pub refill: RefillPolicy,
    /// Behaviour at the round cap.
    pub on_exhausted: OnExhausted,
}

impl Default for DynamicSamplingConfig {
    fn default() -> Self {
        DynamicSamplingConfig {
            max_rounds: 10,
            min_std: 0.0,
            refill: RefillPolicy::Discard,
            on_exhausted: OnExhausted::Error,
        }
    }
}

/// Whether a group with these rewards is kept by dynamic sampling: a single sample always
/// is; otherwise the rewards must not all be equal and their population std must exceed
/// `min_std`.
pub fn keep_group(rewards: &[f64], min_std: f64) -> Result<bool> {
    if rewards.is_empty() {
        return Err(TrainError::Empty("a group with no completions".into()));
    }
    if rewards.len() == 1 {
        return Ok(true);
    }
    let all_equal = rewards.iter().all(|&r| r == rewards[0]);
    if all_equal {
        return Ok(false);
    }
    let n = rewards.len() as f64;
    let mu = rewards.iter().sum::<f64>() / n;
    let sd = (rewards.iter().map(|r| (r - mu) * (r - mu)).sum::<f64>() / n).sqrt();
    Ok(sd > min_std)
}

/// The outcome of offering a generation round to [`DynamicSampler::offer`].
#[derive(Debug)]
pub enum SamplingStatus<G> {
    /// The training batch is full: exactly the target number of groups.
    Ready(Vec<G>),
    /// Generate another round.
    NeedMore {
        /// Groups kept so far.
        kept: usize,
        /// Rounds used so far this step.
        rounds: usize,
    },
    /// The round cap was hit with `on_exhausted = train_partial`: the groups collected.
    Partial(Vec<G>),
}

/// Statistics of the current step (for logging).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SamplingStats {
    /// Rounds generated this step.
    pub rounds: usize,
    /// Groups offered this step.
    pub offered: usize,
    /// Groups dropped by the filter this step.
    pub dropped: usize,
}

/// DAPO dynamic sampling: accumulates groups that pass [`keep_group`] over generation rounds
/// until `target_groups` are collected, within `max_rounds`.
#[derive(Debug)]
pub struct DynamicSampler<G> {
    cfg: DynamicSamplingConfig,
    target: usize,
    kept: Vec<G>,
    stats: SamplingStats,
}

impl<G> DynamicSampler<G> {
    /// A sampler filling batches of `target_groups` groups.
    pub fn new(cfg: DynamicSamplingConfig, target_groups: usize) -> Result<Self> {
        if target_groups == 0 {
            return Err(TrainError::Input("target_groups must be > 0".into()));
        }
        Ok(DynamicSampler {
            cfg,
            target: target_groups,
            kept: Vec::new(),
            stats: SamplingStats::default(),
        })
    }

    /// This step's statistics.
    pub fn stats(&self) -> SamplingStats {
        self.stats
    }

    /// Groups currently held (carried over or collected this step).
    pub fn pending(&self) -> usize {
        self.kept.len()
    }

    /// Offers one generation round: `groups` with, for each, its completions' rewards.
    /// Returns `Ready` with exactly the target once enough groups passed the filter
    /// (surplus dropped or carried over per the refill policy), `NeedMore` while under the
    /// round cap, and at the cap an error or `Partial` per `on_exhausted`.
    pub fn offer(&mut self, groups: Vec<(G, Vec<f64>)>) -> Result<SamplingStatus<G>> {
        self.stats.rounds += 1;
        for (g, rewards) in groups {
            self.stats.offered += 1;
            if keep_group(&rewards, self.cfg.min_std)? {
                self.kept.push(g);
            } else {
                self.stats.dropped += 1;
            }
        }
        if self.kept.len() >= self.target {
            let surplus = self.kept.split_off(self.target);
            let batch = std::mem::replace(&mut self.kept, surplus);
            if self.cfg.refill == RefillPolicy::Discard {
                self.kept.clear();
            }
            self.stats = SamplingStats::default();
            return Ok(SamplingStatus::Ready(batch));
        }
        if self.cfg.max_rounds > 0 && self.stats.rounds >= self.cfg.max_rounds {
            let rounds = self.stats.rounds;
            self.stats = SamplingStats::default();
            return match self.cfg.on_exhausted {
                OnExhausted::Error => {
                    let kept = std::mem::take(&mut self.kept).len();
                    Err(TrainError::Input(format!(
                        "dynamic sampling: {kept} of {} groups after {rounds} rounds (max_rounds); \
                         the data may be too easy or too hard",
                        self.target
                    )))
                }
                OnExhausted::TrainPartial => {
                    Ok(SamplingStatus::Partial(std::mem::take(&mut self.kept)))
                }
            };
        }
        Ok(SamplingStatus::NeedMore {
            kept: self.kept.len(),
            rounds: self.stats.rounds,
        })
    }
}
