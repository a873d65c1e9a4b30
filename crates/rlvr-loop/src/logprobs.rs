//! The log-prob phases of a step, each a forward pass without a graph over the batch, per
//! micro-batch: the sampling policy's (off-policy updates only), the reference policy's (KL),
//! and the critic's values (PPO).

use candle_core::DType;
use rlvr_model::{CausalLm, Mode};
use rlvr_train::entropy::{entropy_from_logits, sum_pi_squared_from_logits};

use crate::batch::{logprobs_from_logits, pack, response_logits};
use crate::error::{LoopError, Result};
use crate::metrics::StepMetrics;
use crate::trainer::{Sample, StepBatch, Trainer};

/// Logits of a micro-batch above this many elements are not materialised for the entropy
/// metric (it is then reported as null).
pub(crate) const ENTROPY_MAX_ELEMENTS: usize = 1 << 26;

/// What a graph-free pass over a batch returns.
struct InferOut {
    /// Per-row log-probs.
    logprobs: Vec<Vec<f32>>,
    /// The masked entropy sum and token count, when computed.
    entropy: Option<(f64, f64)>,
    /// Per-row `Σ_v π_v²`, when asked for.
    sum_pi_squared: Option<Vec<Vec<f32>>>,
}

impl Trainer<'_> {
    /// Phase "old_logprob": the sampling policy's log-probs and entropy, their mismatch with
    /// the sampler's, and `Σ_v π_v²` when the estimator needs it.
    pub(crate) fn old_logprobs(&self, b: &mut StepBatch, m: &mut StepMetrics) -> Result<()> {
        let sps = self.needs().sum_pi_squared;
        let out = self.infer_logprobs(&self.policy.model, &b.pairs(), true, sps)?;
        if let Some((sum, count)) = out.entropy {
            m.set("actor/entropy", sum / count.max(1.0));
        }
        m.set(
            "rollout/logprob_mismatch",
            mismatch(&b.samples, &out.logprobs),
        );
        b.old = Some(out.logprobs);
        b.sum_pi_squared = out.sum_pi_squared;
        Ok(())
    }

    /// Phase "ref_logprob": the frozen reference policy's log-probs.
    pub(crate) fn reference_logprobs(&self, b: &mut StepBatch) -> Result<()> {
        let r = self.reference.ok_or_else(|| {
            LoopError::Other("KL is configured but no reference model is loaded".into())
        })?;
        b.reference = Some(self.infer_logprobs(r, &b.pairs(), false, false)?.logprobs);
        Ok(())
    }

    /// Phase "values": the critic's values at rollout time (PPO).
    pub(crate) fn critic_values(&self, b: &mut StepBatch) -> Result<()> {
        let critic = self.critic.as_deref().ok_or_else(|| {
            LoopError::Other("the estimator needs a critic, and none is loaded".into())
        })?;
        let pairs = b.pairs();
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(self.cfg.trainer.micro_batch_size) {
            let packed = pack(chunk, self.pad_id(), self.device())?;
            let v = critic
                .values(&packed, Mode::Infer)?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?;
            for (i, (_, resp)) in chunk.iter().enumerate() {
                out.push(v[i][..resp.len()].to_vec());
            }
        }
        b.values = Some(out);
        Ok(())
    }

    /// Log-probs (and entropy, `Σ_v π_v²`) of `rows` under `model` without a graph, per
    /// micro-batch.
    fn infer_logprobs(
        &self,
        model: &CausalLm,
        rows: &[(&[u32], &[u32])],
        want_entropy: bool,
        want_sps: bool,
    ) -> Result<InferOut> {
        let mut out = Vec::with_capacity(rows.len());
        let mut sps_rows = Vec::new();
        let mut ent = (0.0, 0.0);
        let mut ent_ok = want_entropy;
        for chunk in rows.chunks(self.cfg.trainer.micro_batch_size) {
            let packed = pack(chunk, self.pad_id(), self.device())?;
            let logits =
                response_logits(model, &packed, Mode::Infer, self.cfg.rollout.temperature)?;
            let lp = logprobs_from_logits(&logits, &packed)?.to_vec2::<f32>()?;
            if ent_ok && logits.elem_count() <= ENTROPY_MAX_ELEMENTS {
                let h = entropy_from_logits(&logits.to_dtype(DType::F32)?)?;
                let hm = (h * &packed.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
                ent.0 += hm;
                ent.1 += packed.mask_host.iter().sum::<f32>() as f64;
            } else {
                ent_ok = false;
            }
            let sps = if want_sps {
                let f = logits.to_dtype(DType::F32)?;
                Some(sum_pi_squared_from_logits(&f)?.to_vec2::<f32>()?)
            } else {
                None
            };
            for (i, (_, resp)) in chunk.iter().enumerate() {
                out.push(lp[i][..resp.len()].to_vec());
                if let Some(s) = &sps {
                    sps_rows.push(s[i][..resp.len()].to_vec());
                }
            }
        }
        Ok(InferOut {
            logprobs: out,
            entropy: ent_ok.then_some(ent),
            sum_pi_squared: want_sps.then_some(sps_rows),
        })
    }
}

/// Mean absolute difference between the sampler's per-token log-probs and the trainer's
/// (`rollout/logprob_mismatch`).
pub fn mismatch(samples: &[Sample], trainer: &[Vec<f32>]) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0.0f64);
    for (s, o) in samples.iter().zip(trainer) {
        let (a, b) = abs_diff(&s.completion.logprobs, o);
        sum += a;
        n += b;
    }
    sum / n.max(1.0)
}

/// Sum of `|sampler − trainer|` over the tokens both rows have, and their count.
pub(crate) fn abs_diff(sampler: &[f32], trainer: &[f32]) -> (f64, f64) {
    let sum = sampler
        .iter()
        .zip(trainer)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum();
    (sum, sampler.len().min(trainer.len()) as f64)
}
