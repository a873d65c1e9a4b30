//! The update phase of a step: epochs × mini-batches; each mini-batch's policy loss is
//! accumulated over micro-batches (normalised by the mini-batch's global `Normaliser`), then
//! one guarded optimiser step (a non-finite loss or gradient skips it, counted); PPO then
//! steps its critic on the same mini-batch. On-policy (one epoch, one mini-batch), the update's
//! own log-probs, detached, are the old log-probs.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rlvr_model::Mode;
use rlvr_train::agg::Normaliser;
use rlvr_train::entropy::{entropy_from_logits, entropy_loss};
use rlvr_train::kl::{kl_loss, kl_penalty};
use rlvr_train::losses::PolicyLossInputs;
use rlvr_train::optim::GradAccumulator;
use rlvr_train::policy::ppo_clip_loss;
use rlvr_train::rollout_correction::compute_rollout_correction;

use crate::batch::{logprobs_from_logits, pack, response_logits, rows_to_tensor, Packed};
use crate::error::{LoopError, Result};
use crate::logprobs::{abs_diff, ENTROPY_MAX_ELEMENTS};
use crate::metrics::{mean, weighted_mean, StepMetrics};
use crate::trainer::{StepBatch, Trainer};

/// Per-row training data.
struct Row {
    prompt: Arc<Vec<u32>>,
    response: Vec<u32>,
    /// The sampling policy's log-probs; empty on-policy.
    old: Vec<f32>,
    reference: Vec<f32>,
    rollout: Vec<f32>,
    adv: Vec<f32>,
    /// PPO: the critic's values at rollout time and the GAE returns (empty otherwise).
    values: Vec<f32>,
    returns: Vec<f32>,
}

fn rows_of(b: &StepBatch) -> Vec<Row> {
    let pick =
        |v: &Option<Vec<Vec<f32>>>, i: usize| v.as_ref().map_or_else(Vec::new, |v| v[i].clone());
    b.samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let len = s.completion.tokens.len();
            Row {
                prompt: s.prompt_ids.clone(),
                response: s.completion.tokens.clone(),
                old: pick(&b.old, i),
                reference: pick(&b.reference, i),
                rollout: s.completion.logprobs.clone(),
                adv: b.advantages[i].clone(),
                values: pick(&b.values, i),
                returns: b
                    .returns
                    .get(i)
                    .map_or_else(Vec::new, |r| r[..len].to_vec()),
            }
        })
        .collect()
}

/// A micro-batch of rows packed for one forward pass, with its response mask (host rows and a
/// `(b, w)` tensor, `w` the longest response in it).
struct Micro<'r> {
    rows: &'r [Row],
    /// The old-log-prob pass was skipped: the detached log-probs stand in.
    on_policy: bool,
    packed: Packed,
    mask_rows: Vec<&'r [f32]>,
    mask: Tensor,
}

impl<'r> Micro<'r> {
    /// Packs `rows`, the batch rows `first..` whose masks are rows of the `(B, r_max)` `mask`.
    fn new(
        rows: &'r [Row],
        first: usize,
        b: &'r StepBatch,
        pad: u32,
        device: &Device,
    ) -> Result<Self> {
        let pairs: Vec<(&[u32], &[u32])> = rows
            .iter()
            .map(|r| (&r.prompt[..], &r.response[..]))
            .collect();
        let packed = pack(&pairs, pad, device)?;
        let (w, r_max) = (packed.response_len, b.r_max);
        let mask_rows: Vec<&[f32]> = (0..rows.len())
            .map(|k| &b.mask[(first + k) * r_max..(first + k) * r_max + w.min(r_max)])
            .collect();
        let mask = rows_to_tensor(&mask_rows, w, device)?;
        Ok(Micro {
            rows,
            on_policy: b.old.is_none(),
            packed,
            mask_rows,
            mask,
        })
    }

    /// A per-token field of every row as a `(b, w)` tensor (zero-padded).
    fn field(&self, f: impl Fn(&Row) -> &Vec<f32>) -> Result<Tensor> {
        let rows: Vec<&[f32]> = self.rows.iter().map(|r| &f(r)[..]).collect();
        rows_to_tensor(&rows, self.packed.response_len, self.mask.device())
    }

    /// Response tokens in the micro-batch.
    fn tokens(&self) -> f64 {
        self.mask_rows
            .iter()
            .map(|r| r.iter().sum::<f32>())
            .sum::<f32>() as f64
    }
}

/// What one micro-batch's forward pass gives: the loss to backpropagate, its value, and the
/// token-weighted metrics.
struct MicroOut {
    loss: Tensor,
    value: f64,
    tokens: f64,
    clipfrac: f64,
    clipfrac_lower: f64,
    ppo_kl: f64,
    /// The registry loss's and the rollout correction's other metrics (`rollout_corr/…`).
    extra: BTreeMap<String, f64>,
    /// On-policy only (the old pass was skipped): KL to the reference, entropy (sum, count),
    /// sampler mismatch (sum of |Δ|, count) from the detached log-probs.
    on_policy: Option<OnPolicyStats>,
}

struct OnPolicyStats {
    kl_ref: Option<f64>,
    entropy: Option<(f64, f64)>,
    mismatch: (f64, f64),
}

/// Metrics collected over the update.
#[derive(Default)]
struct UpdateStats {
    losses: Vec<f64>,
    grad_norms: Vec<f64>,
    clipfracs: Vec<(f64, f64)>,
    clipfracs_lower: Vec<(f64, f64)>,
    ppo_kls: Vec<(f64, f64)>,
    kl_ref: Vec<(f64, f64)>,
    /// Sums of value × tokens and tokens per extra metric.
    extra: BTreeMap<String, (f64, f64)>,
    entropy: Option<(f64, f64)>,
    entropy_ok: bool,
    mismatch: (f64, f64),
    updates: usize,
    skipped: usize,
    vf_losses: Vec<f64>,
    vf_clipfracs: Vec<(f64, f64)>,
    vf_grad_norms: Vec<f64>,
    critic_skipped: usize,
}

impl Trainer<'_> {
    /// Phase "update".
    pub(crate) fn update(&mut self, b: &StepBatch, m: &mut StepMetrics) -> Result<()> {
        let cfg = self.cfg;
        let rows = rows_of(b);
        let mini = rows.len().div_ceil(cfg.trainer.mini_batches);
        let mut st = UpdateStats {
            entropy_ok: true,
            ..UpdateStats::default()
        };
        for _epoch in 0..cfg.trainer.ppo_epochs {
            for (i, mb) in rows.chunks(mini).enumerate() {
                let start = i * mini;
                let norm = self.normaliser(b, start, mb.len())?;
                if !self.actor_step(mb, start, b, &norm, &mut st)? {
                    st.skipped += 1;
                    continue;
                }
                m.set("actor/lr", self.opt.learning_rate());
                if b.values.is_some() {
                    match self.critic_step(mb, start, b, &norm)? {
                        Some(c) => {
                            st.vf_losses.push(c.0);
                            st.vf_clipfracs.push((c.1, c.3));
                            st.vf_grad_norms.push(c.2);
                        }
                        None => st.critic_skipped += 1,
                    }
                }
            }
        }
        self.update_metrics(&st, b, m);
        Ok(())
    }

    /// The loss normaliser of the mini-batch of `len` rows from `start`.
    fn normaliser(&self, b: &StepBatch, start: usize, len: usize) -> Result<Normaliser> {
        let algo = &self.cfg.algorithm;
        let mask = Tensor::from_vec(
            b.mask[start * b.r_max..(start + len) * b.r_max].to_vec(),
            (len, b.r_max),
            self.device(),
        )?;
        Ok(algo
            .loss_agg_mode
            .normaliser(&mask, algo.loss_scale_factor)?)
    }

    /// One policy optimiser step over a mini-batch; `false` when it was skipped (non-finite
    /// loss or gradient).
    fn actor_step(
        &mut self,
        mb: &[Row],
        start: usize,
        b: &StepBatch,
        norm: &Normaliser,
        st: &mut UpdateStats,
    ) -> Result<bool> {
        let mut acc = GradAccumulator::new(self.policy.model.vars());
        let mut loss_sum = 0.0f64;
        let micro_size = self.cfg.trainer.micro_batch_size;
        for (mi, micro) in mb.chunks(micro_size).enumerate() {
            let mc = Micro::new(
                micro,
                start + mi * micro_size,
                b,
                self.pad_id(),
                self.device(),
            )?;
            let out = self.micro_loss(&mc, norm)?;
            if !out.value.is_finite() {
                tracing::warn!("non-finite loss: the optimiser step is skipped");
                return Ok(false);
            }
            loss_sum += out.value;
            record_micro(&out, st);
            acc.backward(&out.loss)?;
        }
        let report = self.opt.try_step(acc.take()?)?;
        let gn = report.grad_norm;
        if !report.applied {
            tracing::warn!(
                grad_norm = gn,
                "non-finite gradient: the optimiser step is skipped"
            );
            return Ok(false);
        }
        st.updates += 1;
        st.losses.push(loss_sum);
        st.grad_norms.push(gn);
        Ok(true)
    }

    /// The policy loss of one micro-batch (PPO clip, KL loss, entropy bonus).
    fn micro_loss(&self, mc: &Micro<'_>, norm: &Normaliser) -> Result<MicroOut> {
        let algo = &self.cfg.algorithm;
        let logits = response_logits(
            &self.policy.model,
            &mc.packed,
            Mode::Train,
            self.cfg.rollout.temperature,
        )?;
        let logp = logprobs_from_logits(&logits, &mc.packed)?;
        let old = if mc.on_policy {
            logp.detach()
        } else {
            mc.field(|r| &r.old)?
        };
        let adv = mc.field(|r| &r.adv)?;
        let pl = if algo.uses_loss_registry() {
            self.registry_loss(mc, &logp, &old, &adv, norm)?
        } else {
            let pl = ppo_clip_loss(&logp, &old, &adv, &mc.mask, &algo.clip, norm)?;
            LossParts {
                loss: pl.loss,
                clipfrac: pl.clipfrac,
                clipfrac_lower: pl.clipfrac_lower,
                ppo_kl: pl.ppo_kl,
                extra: BTreeMap::new(),
            }
        };
        let mut loss = pl.loss.clone();
        if algo.kl.use_kl_loss {
            let reference = mc.field(|r| &r.reference)?;
            let kl = kl_loss(&logp, &reference, &mc.mask, algo.kl.kl_loss_type, norm)?;
            loss = (loss + kl.affine(algo.kl.kl_loss_coef, 0.0)?)?;
        }
        if algo.entropy_coeff != 0.0 {
            let ent = entropy_loss(&logits, &mc.mask, norm)?;
            loss = (loss - ent.affine(algo.entropy_coeff, 0.0)?)?;
        }
        let on_policy = if mc.on_policy {
            Some(self.on_policy_stats(mc, &logits, &old)?)
        } else {
            None
        };
        Ok(MicroOut {
            value: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            loss,
            tokens: mc.tokens(),
            clipfrac: pl.clipfrac,
            clipfrac_lower: pl.clipfrac_lower,
            ppo_kl: pl.ppo_kl,
            extra: pl.extra,
            on_policy,
        })
    }

    /// The registry's policy loss (`algorithm.policy_loss.loss_mode`), after the rollout
    /// correction when one is configured: IS weights from `λ = logπ_old − logπ_rollout`
    /// multiply the per-token loss and rejected tokens leave the mask. `bypass_mode` takes the
    /// sampler's log-probs as the old ones.
    fn registry_loss(
        &self,
        mc: &Micro<'_>,
        logp: &Tensor,
        old: &Tensor,
        adv: &Tensor,
        norm: &Normaliser,
    ) -> Result<LossParts> {
        let algo = &self.cfg.algorithm;
        let rollout = mc.field(|r| &r.rollout)?;
        let mut extra = BTreeMap::new();
        let (mut mask, mut weights) = (mc.mask.clone(), None);
        if let Some(rc) = &algo.rollout_correction {
            let c = compute_rollout_correction(old, &rollout, &mc.mask, rc)?;
            weights = c.rollout_is_weights;
            if let Some(m) = c.modified_response_mask {
                mask = m;
            }
            extra.extend(c.metrics);
        }
        let bypass = algo.policy_loss.loss_mode == "bypass_mode";
        let inputs = PolicyLossInputs {
            old_log_prob: if bypass { &rollout } else { old },
            log_prob: logp,
            advantages: adv,
            response_mask: &mask,
            rollout_is_weights: weights.as_ref(),
            normaliser: Some(*norm),
            clip_cov_selection: None,
        };
        let out = algo.actor_loss().compute(&inputs)?;
        extra.extend(out.metrics);
        let mut take = |k: &str| extra.remove(k).unwrap_or(0.0);
        Ok(LossParts {
            loss: out.loss,
            clipfrac: take("actor/pg_clipfrac"),
            clipfrac_lower: take("actor/pg_clipfrac_lower"),
            ppo_kl: take("actor/ppo_kl"),
            extra,
        })
    }

    /// The metrics the skipped old-log-prob pass would have given, from the update's
    /// detached log-probs and logits: KL to the reference, entropy, sampler mismatch.
    fn on_policy_stats(
        &self,
        mc: &Micro<'_>,
        logits: &Tensor,
        lp: &Tensor,
    ) -> Result<OnPolicyStats> {
        let algo = &self.cfg.algorithm;
        let kl_ref = if algo.kl.use_kl_loss || algo.kl.use_kl_in_reward {
            let reference = mc.field(|r| &r.reference)?;
            let k = kl_penalty(lp, &reference, algo.kl.kl_loss_type)?;
            Some(rlvr_train::host::masked_mean_tensor(&k, &mc.mask)?)
        } else {
            None
        };
        let entropy = if logits.elem_count() <= ENTROPY_MAX_ELEMENTS {
            let h = entropy_from_logits(&logits.detach().to_dtype(DType::F32)?)?;
            let hm = (h * &mc.packed.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
            Some((hm, mc.packed.mask_host.iter().sum::<f32>() as f64))
        } else {
            None
        };
        let lp_rows = lp.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut mismatch = (0.0, 0.0);
        for (r, l) in mc.rows.iter().zip(&lp_rows) {
            let (sum, n) = abs_diff(&r.rollout, l);
            mismatch.0 += sum;
            mismatch.1 += n;
        }
        Ok(OnPolicyStats {
            kl_ref,
            entropy,
            mismatch,
        })
    }

    /// One critic update over a mini-batch (PPO): the clipped value loss against the GAE
    /// returns, accumulated over micro-batches, then the critic's AdamW step. Returns (loss,
    /// clip fraction, gradient norm, tokens), or `None` when the loss or gradient was not
    /// finite (the step is skipped).
    fn critic_step(
        &mut self,
        mb: &[Row],
        start: usize,
        b: &StepBatch,
        norm: &Normaliser,
    ) -> Result<Option<(f64, f64, f64, f64)>> {
        let cfg = self.cfg;
        let critic_cfg = cfg
            .algorithm
            .critic
            .as_ref()
            .ok_or_else(|| LoopError::Other("the critic needs algorithm.critic".into()))?;
        let (pad, device) = (self.pad_id(), self.device().clone());
        let critic = self
            .critic
            .as_deref_mut()
            .ok_or_else(|| LoopError::Other("the estimator needs a critic".into()))?;
        let mut acc = GradAccumulator::new(critic.vars());
        let (mut loss_sum, mut clip, mut tokens) = (0.0f64, 0.0f64, 0.0f64);
        let micro_size = cfg.trainer.micro_batch_size;
        for (mi, micro) in mb.chunks(micro_size).enumerate() {
            let mc = Micro::new(micro, start + mi * micro_size, b, pad, &device)?;
            let vpreds = critic.values(&mc.packed, Mode::Train)?;
            let vl = rlvr_train::value::value_loss(
                &vpreds,
                &mc.field(|r| &r.returns)?,
                &mc.field(|r| &r.values)?,
                &mc.mask,
                critic_cfg.cliprange_value,
                norm,
            )?;
            let loss = vl.loss.affine(critic_cfg.vf_coef, 0.0)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                tracing::warn!("non-finite value loss: the critic step is skipped");
                return Ok(None);
            }
            let n = mc.tokens();
            loss_sum += value;
            clip += vl.clipfrac * n;
            tokens += n;
            acc.backward(&loss)?;
        }
        let report = critic.opt.try_step(acc.take()?)?;
        let gn = report.grad_norm;
        if !report.applied {
            tracing::warn!(
                grad_norm = gn,
                "non-finite critic gradient: the step is skipped"
            );
            return Ok(None);
        }
        Ok(Some((loss_sum, clip / tokens.max(1.0), gn, tokens)))
    }

    /// Writes the update's metrics.
    fn update_metrics(&self, st: &UpdateStats, b: &StepBatch, m: &mut StepMetrics) {
        m.set("actor/loss", mean(&st.losses));
        m.set("actor/pg_clipfrac", weighted_mean(&st.clipfracs));
        m.set(
            "actor/pg_clipfrac_lower",
            weighted_mean(&st.clipfracs_lower),
        );
        m.set("actor/ppo_kl", weighted_mean(&st.ppo_kls));
        m.set("actor/grad_norm", mean(&st.grad_norms));
        m.set("actor/updates", st.updates);
        m.set("actor/skipped_updates", st.skipped);
        m.set("actor/optimizer_steps", self.opt.steps());
        for (k, (sum, w)) in &st.extra {
            m.set(k, sum / w.max(1e-12));
        }
        if b.old.is_none() {
            if !st.kl_ref.is_empty() {
                m.set("actor/kl_ref", weighted_mean(&st.kl_ref));
            }
            if let Some((sum, count)) = st.entropy.filter(|_| st.entropy_ok) {
                m.set("actor/entropy", sum / count.max(1.0));
            }
            m.set(
                "rollout/logprob_mismatch",
                st.mismatch.0 / st.mismatch.1.max(1.0),
            );
        }
        if b.values.is_some() {
            m.set("critic/vf_loss", mean(&st.vf_losses));
            m.set("critic/grad_norm", mean(&st.vf_grad_norms));
            m.set("critic/skipped_updates", st.critic_skipped);
            m.set("critic/vf_clipfrac", weighted_mean(&st.vf_clipfracs));
            if let Some(c) = self.critic.as_deref() {
                m.set("critic/lr", c.opt.learning_rate());
            }
        }
    }
}

/// A policy loss and its metrics.
struct LossParts {
    loss: Tensor,
    clipfrac: f64,
    clipfrac_lower: f64,
    ppo_kl: f64,
    extra: BTreeMap<String, f64>,
}

/// Adds one micro-batch's metrics (on-policy: only from the first pass over the batch).
fn record_micro(out: &MicroOut, st: &mut UpdateStats) {
    st.clipfracs.push((out.clipfrac, out.tokens));
    st.clipfracs_lower.push((out.clipfrac_lower, out.tokens));
    st.ppo_kls.push((out.ppo_kl, out.tokens));
    for (k, v) in &out.extra {
        if v.is_finite() {
            let e = st.extra.entry(k.clone()).or_insert((0.0, 0.0));
            e.0 += v * out.tokens;
            e.1 += out.tokens;
        }
    }
    if let Some(op) = &out.on_policy {
        if let Some(k) = op.kl_ref {
            st.kl_ref.push((k, out.tokens));
        }
        match op.entropy {
            Some((s, c)) => {
                let e = st.entropy.get_or_insert((0.0, 0.0));
                e.0 += s;
                e.1 += c;
            }
            None => st.entropy_ok = false,
        }
        st.mismatch.0 += op.mismatch.0;
        st.mismatch.1 += op.mismatch.1;
    }
}
