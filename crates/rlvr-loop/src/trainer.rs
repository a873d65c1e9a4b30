//! One RL step: draw prompts → sample G completions each → verify concurrently → shape
//! rewards (overlong) → dynamic sampling refill → old-policy and reference log-probs →
//! advantages → PPO epochs × mini-batches with gradient accumulation → optimiser step →
//! metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use rlvr_model::{CausalLm, Mode, ModelDir};
use rlvr_rollout::{Completion, Prompt, RolloutEngine, SamplingParams};
use rlvr_train::advantages::{
    compute_advantages, AdvantageEstimator, AdvantageInputs, AdvantageParams,
};
use rlvr_train::dapo::{soft_overlong_penalty, DynamicSampler, SamplingStatus};
use rlvr_train::entropy::entropy_from_logits;
use rlvr_train::kl::{apply_kl_penalty, kl_loss, kl_penalty};
use rlvr_train::optim::{AdamW, GradAccumulator};
use rlvr_train::policy::ppo_clip_loss;
use rlvr_verify::{Outcome, Status};
use serde_json::{json, Map, Value};

use crate::batch::{logprobs_from_logits, pack, response_logits, rows_to_tensor};
use crate::config::TrainConfig;
use crate::critic::Critic;
use crate::error::{LoopError, Result};
use crate::prompts::{prompt_text_and_ids, PromptSource};
use crate::step_rewards::{placement, token_ends, token_of, StepRewardMode};
use rlvr_eval::verify_pool::verify_jobs;
use rlvr_eval::verify_pool::{verify_all, Verifiers};

/// Logits of a micro-batch above this many elements are not materialised for the entropy
/// metric (it is then reported as null).
const ENTROPY_MAX_ELEMENTS: usize = 1 << 26;

/// One sampled completion with its verdict.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Stream position of its prompt.
    pub key: u64,
    /// The prompt's token ids.
    pub prompt_ids: Arc<Vec<u32>>,
    /// The prompt's text.
    pub prompt_text: Arc<String>,
    /// Data source of the example.
    pub data_source: String,
    /// The completion.
    pub completion: Completion,
    /// The verifier's outcome.
    pub outcome: Outcome,
    /// Reward after shaping.
    pub reward: f64,
    /// ReMax: the shaped reward of the greedy completion of the same prompt (the baseline);
    /// `None` for other estimators.
    pub baseline: Option<f64>,
}

/// Everything a step needs and updates.
pub struct Trainer<'a> {
    /// The configuration.
    pub cfg: &'a TrainConfig,
    /// The policy being trained.
    pub policy: &'a ModelDir,
    /// The frozen reference policy (when KL is used).
    pub reference: Option<&'a CausalLm>,
    /// The optimiser.
    pub opt: &'a mut AdamW,
    /// The reward (per data source).
    pub verifiers: &'a Verifiers,
    /// Training prompts.
    pub source: &'a PromptSource,
    /// Runtime of the verifier pool.
    pub rt: &'a tokio::runtime::Runtime,
    /// Next stream position of the prompt source (checkpointed).
    pub data_pos: u64,
    /// The value model (PPO: the `gae` estimator); `None` otherwise.
    pub critic: Option<&'a mut Critic>,
}

/// The result of a step.
pub struct StepOutput {
    /// Metrics (numbers, and counts).
    pub metrics: Map<String, Value>,
    /// The samples (for the store).
    pub samples: Vec<Sample>,
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn std_pop(xs: &[f64]) -> f64 {
    let m = mean(xs);
    mean(&xs.iter().map(|x| (x - m) * (x - m)).collect::<Vec<_>>()).sqrt()
}

/// One round's groups (one per prompt that was not filtered) and its metrics.
type Round = (Vec<Vec<Sample>>, Map<String, Value>);

/// Per-row log-probs, and the masked entropy sum and token count when computed.
type InferOut = (Vec<Vec<f32>>, Option<(f64, f64)>);

/// Per-row training data.
struct Row {
    prompt: Arc<Vec<u32>>,
    response: Vec<u32>,
    old: Vec<f32>,
    reference: Vec<f32>,
    adv: Vec<f32>,
    /// PPO: the critic's values at rollout time and the GAE returns (empty otherwise).
    values: Vec<f32>,
    returns: Vec<f32>,
}

/// A micro-batch of rows packed for one forward pass, with its response mask (host rows and a
/// `(b, w)` tensor, `w` the longest response in it).
struct Micro<'r> {
    rows: &'r [Row],
    packed: crate::batch::Packed,
    mask_rows: Vec<&'r [f32]>,
    mask: Tensor,
}

impl<'r> Micro<'r> {
    /// Packs `rows`, the batch rows `first..` whose masks are rows of the `(B, r_max)` `mask`.
    fn new(
        rows: &'r [Row],
        first: usize,
        r_max: usize,
        mask: &'r [f32],
        pad: u32,
        device: &Device,
    ) -> Result<Self> {
        let pairs: Vec<(&[u32], &[u32])> = rows
            .iter()
            .map(|r| (&r.prompt[..], &r.response[..]))
            .collect();
        let packed = pack(&pairs, pad, device)?;
        let w = packed.response_len;
        let mask_rows: Vec<&[f32]> = (0..rows.len())
            .map(|k| &mask[(first + k) * r_max..(first + k) * r_max + w.min(r_max)])
            .collect();
        let mask = rows_to_tensor(&mask_rows, w, device)?;
        Ok(Micro {
            rows,
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

impl Trainer<'_> {
    fn device(&self) -> &Device {
        self.policy.model.device()
    }

    fn pad_id(&self) -> u32 {
        self.policy.model.config().pad_token_id.unwrap_or(0)
    }

    /// A verifier score after reward shaping (DAPO's soft overlong penalty when configured).
    fn shaped(&self, score: f64, len: usize) -> Result<f64> {
        let mut reward = score;
        if let Some(ol) = &self.cfg.algorithm.overlong {
            reward += soft_overlong_penalty(
                len,
                self.cfg.rollout.max_new_tokens,
                ol.buffer_len,
                ol.penalty_factor,
            )?;
        }
        Ok(reward)
    }

    /// Samples and verifies one round of `count` prompts.
    fn round(&mut self, count: usize, seed: u64) -> Result<Round> {
        let cfg = self.cfg;
        let tok = &self.policy.tokenizer;
        let mut prompts = Vec::with_capacity(count);
        let mut examples = Vec::with_capacity(count);
        for i in 0..count {
            let pos = self.data_pos + i as u64;
            let ex = self.source.at(pos);
            let (text, ids) = prompt_text_and_ids(tok, &ex, cfg.data.chat_template)?;
            prompts.push(Prompt { ids, key: pos });
            examples.push((ex, Arc::new(text)));
        }
        self.data_pos += count as u64;
        let engine =
            RolloutEngine::from_model_dir(self.policy).with_options(cfg.rollout.engine.clone());
        let params = SamplingParams {
            temperature: cfg.rollout.temperature,
            top_p: cfg.rollout.top_p,
            top_k: cfg.rollout.top_k,
            max_new_tokens: cfg.rollout.max_new_tokens,
            stop: cfg.rollout.stop.clone(),
            n: cfg.rollout.n,
            max_prompt_len: Some(cfg.rollout.max_prompt_len),
            seed,
            ..SamplingParams::default()
        };
        let t = Instant::now();
        let out = engine.generate_keyed(&prompts, &params)?;
        // ReMax: one greedy completion per prompt, whose reward is the samples' baseline.
        let remax = cfg.algorithm.adv_estimator == AdvantageEstimator::Remax;
        let greedy = if remax {
            let greedy_params = SamplingParams {
                temperature: 0.0,
                n: 1,
                ..params.clone()
            };
            engine.generate_keyed(&prompts, &greedy_params)?.completions
        } else {
            Vec::new()
        };
        let rollout_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut jobs = verify_jobs(&out.completions, |i| &examples[i].0, self.verifiers);
        jobs.extend(verify_jobs(&greedy, |i| &examples[i].0, self.verifiers));
        let mut outcomes = verify_all(
            self.rt,
            jobs,
            cfg.trainer.verify_concurrency,
            Duration::from_millis(cfg.trainer.verify_timeout_ms),
        );
        let greedy_outcomes = outcomes.split_off(out.completions.len());
        let mut baselines: Vec<Option<f64>> = vec![None; count];
        for (c, o) in greedy.iter().zip(&greedy_outcomes) {
            baselines[c.prompt_index] = Some(self.shaped(o.score as f64, c.tokens.len())?);
        }
        let verify_s = t.elapsed().as_secs_f64();
        let mut groups: Vec<Vec<Sample>> = vec![Vec::new(); count];
        let ids: Vec<Arc<Vec<u32>>> = prompts.into_iter().map(|p| Arc::new(p.ids)).collect();
        for (c, o) in out.completions.into_iter().zip(outcomes) {
            let reward = self.shaped(o.score as f64, c.tokens.len())?;
            let pi = c.prompt_index;
            let (ex, text) = &examples[pi];
            groups[pi].push(Sample {
                key: prompts_key(self.data_pos, count, pi),
                prompt_ids: ids[pi].clone(),
                prompt_text: text.clone(),
                data_source: ex.data_source.clone(),
                completion: c,
                outcome: o,
                reward,
                baseline: baselines[pi],
            });
        }
        groups.retain(|g| !g.is_empty());
        let mut m = Map::new();
        m.insert("timing/rollout_s".into(), json!(rollout_s));
        m.insert("timing/verify_s".into(), json!(verify_s));
        m.insert(
            "rollout/generated_tokens".into(),
            json!(out.stats.generated_tokens),
        );
        m.insert("rollout/filtered_prompts".into(), json!(out.filtered.len()));
        Ok((groups, m))
    }

    /// Runs step `step` (0-based).
    pub fn step(&mut self, step: usize) -> Result<StepOutput> {
        let cfg = self.cfg;
        let started = Instant::now();
        let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(step as u64);
        let target = cfg.rollout.prompts_per_step;
        let mut metrics = Map::new();
        let mut rollout_s = 0.0;
        let mut verify_s = 0.0;
        let mut generated = 0u64;
        let mut filtered = 0u64;
        let mut all_samples: Vec<Sample> = Vec::new();
        let mut rounds = 0usize;
        let mut dropped_groups = 0usize;
        let mut dyn_sampler = match &cfg.algorithm.dynamic_sampling {
            Some(d) => Some(DynamicSampler::new(*d, target)?),
            None => None,
        };
        let groups: Vec<Vec<Sample>> = loop {
            rounds += 1;
            let (groups, m) = self.round(target, seed.wrapping_add(rounds as u64 * 7919))?;
            rollout_s += m["timing/rollout_s"].as_f64().unwrap_or(0.0);
            verify_s += m["timing/verify_s"].as_f64().unwrap_or(0.0);
            generated += m["rollout/generated_tokens"].as_u64().unwrap_or(0);
            filtered += m["rollout/filtered_prompts"].as_u64().unwrap_or(0);
            all_samples.extend(groups.iter().flatten().cloned());
            let Some(ds) = dyn_sampler.as_mut() else {
                break groups;
            };
            let offered: Vec<(Vec<Sample>, Vec<f64>)> = groups
                .into_iter()
                .map(|g| {
                    let r = g.iter().map(|s| s.reward).collect();
                    (g, r)
                })
                .collect();
            let min_std = cfg.algorithm.dynamic_sampling.map_or(0.0, |d| d.min_std);
            dropped_groups += offered
                .iter()
                .filter(|(_, r)| !rlvr_train::dapo::keep_group(r, min_std).unwrap_or(true))
                .count();
            match ds.offer(offered) {
                Ok(SamplingStatus::Ready(g)) | Ok(SamplingStatus::Partial(g)) => break g,
                Ok(SamplingStatus::NeedMore { .. }) => continue,
                Err(e) => {
                    tracing::warn!(step, "{e}; the step is skipped");
                    break Vec::new();
                }
            }
        };
        metrics.insert("timing/rollout_s".into(), json!(rollout_s));
        metrics.insert("timing/verify_s".into(), json!(verify_s));
        metrics.insert("rollout/filtered_prompts".into(), json!(filtered));
        metrics.insert("rollout/rounds".into(), json!(rounds));
        if cfg.algorithm.dynamic_sampling.is_some() {
            metrics.insert("rollout/dropped_groups".into(), json!(dropped_groups));
        }
        metrics.insert(
            "rollout/tokens_per_s".into(),
            json!(generated as f64 / rollout_s.max(1e-9)),
        );
        // Reward metrics over everything sampled this step (before any filtering).
        let rewards: Vec<f64> = all_samples.iter().map(|s| s.reward).collect();
        let n = all_samples.len().max(1) as f64;
        metrics.insert("reward/mean".into(), json!(mean(&rewards)));
        metrics.insert("reward/std".into(), json!(std_pop(&rewards)));
        for st in Status::ALL {
            let c = all_samples
                .iter()
                .filter(|s| s.outcome.status == st)
                .count();
            metrics.insert(format!("status/{}", st.as_str()), json!(c));
        }
        metrics.insert(
            "accuracy".into(),
            json!(
                all_samples
                    .iter()
                    .filter(|s| s.outcome.status == Status::Correct)
                    .count() as f64
                    / n
            ),
        );
        let lens: Vec<f64> = all_samples
            .iter()
            .map(|s| s.completion.tokens.len() as f64)
            .collect();
        metrics.insert("response_length/mean".into(), json!(mean(&lens)));
        metrics.insert(
            "response_length/max".into(),
            json!(lens.iter().cloned().fold(0.0, f64::max)),
        );
        metrics.insert(
            "response_length/truncation_rate".into(),
            json!(
                all_samples
                    .iter()
                    .filter(|s| s.completion.truncated)
                    .count() as f64
                    / n
            ),
        );
        let samples: Vec<Sample> = groups.into_iter().flatten().collect();
        if samples.is_empty() {
            metrics.insert("skipped".into(), json!(1));
            metrics.insert(
                "timing/step_s".into(),
                json!(started.elapsed().as_secs_f64()),
            );
            return Ok(StepOutput {
                metrics,
                samples: all_samples,
            });
        }
        self.update(&samples, &mut metrics)?;
        metrics.insert(
            "timing/step_s".into(),
            json!(started.elapsed().as_secs_f64()),
        );
        Ok(StepOutput {
            metrics,
            samples: all_samples,
        })
    }

    /// One critic update over a mini-batch (PPO): the clipped value loss against the GAE
    /// returns, accumulated over micro-batches, then the critic's AdamW step. Returns (loss,
    /// clip fraction, gradient norm, tokens), or `None` when the loss or gradient was not
    /// finite (the step is skipped).
    fn critic_step(
        &mut self,
        mb_rows: &[Row],
        mb_start: usize,
        r_max: usize,
        mask: &[f32],
        norm: &rlvr_train::agg::Normaliser,
    ) -> Result<Option<(f64, f64, f64, f64)>> {
        let cfg = self.cfg;
        let critic_cfg = cfg
            .algorithm
            .critic
            .as_ref()
            .ok_or_else(|| LoopError::Other("ppo (gae) needs algorithm.critic".into()))?;
        let pad = self.pad_id();
        let device = self.device().clone();
        let critic = self
            .critic
            .as_deref_mut()
            .ok_or_else(|| LoopError::Other("ppo (gae) needs a critic".into()))?;
        let mut acc = GradAccumulator::new(critic.vars());
        let (mut loss_sum, mut clip, mut tokens) = (0.0f64, 0.0f64, 0.0f64);
        for (mi, micro) in mb_rows.chunks(cfg.trainer.micro_batch_size).enumerate() {
            let first = mb_start + mi * cfg.trainer.micro_batch_size;
            let mb = Micro::new(micro, first, r_max, mask, pad, &device)?;
            let vpreds = critic.values(&mb.packed, Mode::Train)?;
            let vl = rlvr_train::value::value_loss(
                &vpreds,
                &mb.field(|r| &r.returns)?,
                &mb.field(|r| &r.values)?,
                &mb.mask,
                critic_cfg.cliprange_value,
                norm,
            )?;
            let loss = vl.loss.affine(critic_cfg.vf_coef, 0.0)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                tracing::warn!("non-finite value loss: the critic step is skipped");
                return Ok(None);
            }
            let n = mb.tokens();
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

    /// Log-probs (and entropy) of `rows` under `model` without a graph, per micro-batch.
    fn infer_logprobs(
        &self,
        model: &CausalLm,
        rows: &[(&[u32], &[u32])],
        want_entropy: bool,
    ) -> Result<InferOut> {
        let mut out = Vec::with_capacity(rows.len());
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
            for (i, (_, resp)) in chunk.iter().enumerate() {
                out.push(lp[i][..resp.len()].to_vec());
            }
        }
        Ok((out, ent_ok.then_some(ent)))
    }

    fn update(&mut self, samples: &[Sample], metrics: &mut Map<String, Value>) -> Result<()> {
        let cfg = self.cfg;
        let algo = &cfg.algorithm;
        let device = self.device().clone();
        let t = Instant::now();
        let pairs: Vec<(&[u32], &[u32])> = samples
            .iter()
            .map(|s| (&s.prompt_ids[..], &s.completion.tokens[..]))
            .collect();
        let (old, entropy) = self.infer_logprobs(&self.policy.model, &pairs, true)?;
        metrics.insert(
            "timing/old_logprob_s".into(),
            json!(t.elapsed().as_secs_f64()),
        );
        if let Some((sum, count)) = entropy {
            metrics.insert("actor/entropy".into(), json!(sum / count.max(1.0)));
        }
        // Sampler/trainer mismatch (interfaces.md: reported, not used).
        let mut diff = (0.0f64, 0usize);
        for (s, o) in samples.iter().zip(&old) {
            for (a, b) in s.completion.logprobs.iter().zip(o) {
                diff.0 += (*a as f64 - *b as f64).abs();
                diff.1 += 1;
            }
        }
        metrics.insert(
            "rollout/logprob_mismatch".into(),
            json!(diff.0 / diff.1.max(1) as f64),
        );
        let use_ref = algo.kl.use_kl_loss || algo.kl.use_kl_in_reward;
        let reference = if use_ref {
            let r = self.reference.ok_or_else(|| {
                LoopError::Other("KL is configured but no reference model is loaded".into())
            })?;
            let t = Instant::now();
            let (lp, _) = self.infer_logprobs(r, &pairs, false)?;
            metrics.insert(
                "timing/ref_logprob_s".into(),
                json!(t.elapsed().as_secs_f64()),
            );
            lp
        } else {
            old.iter().map(|o| vec![0.0; o.len()]).collect()
        };
        // (B, R) tensors over the whole batch.
        let r_max = samples
            .iter()
            .map(|s| s.completion.tokens.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let b = samples.len();
        let cfg_step_rewards = self.cfg.trainer.step_rewards;
        let TokenRewards {
            rewards: scores,
            mut mask,
            step_rewarded,
            steps_placed: step_count,
        } = token_rewards(samples, r_max, cfg_step_rewards, &self.policy.tokenizer)?;
        if cfg_step_rewards != StepRewardMode::Outcome {
            metrics.insert(
                "reward/step_rewarded_frac".into(),
                json!(step_rewarded as f64 / b.max(1) as f64),
            );
            metrics.insert(
                "reward/steps_per_response".into(),
                json!(step_count as f64 / step_rewarded.max(1) as f64),
            );
        }
        if algo.overlong_filter {
            for (i, s) in samples.iter().enumerate() {
                if s.completion.truncated {
                    mask[i * r_max..(i + 1) * r_max]
                        .iter_mut()
                        .for_each(|m| *m = 0.0);
                }
            }
        }
        let mask_t = Tensor::from_vec(mask.clone(), (b, r_max), &device)?;
        let mut token_rewards = Tensor::from_vec(scores, (b, r_max), &device)?;
        let old_refs: Vec<&[f32]> = old.iter().map(|v| &v[..]).collect();
        let ref_refs: Vec<&[f32]> = reference.iter().map(|v| &v[..]).collect();
        let old_t = rows_to_tensor(&old_refs, r_max, &device)?;
        let ref_t = rows_to_tensor(&ref_refs, r_max, &device)?;
        if use_ref {
            let k = kl_penalty(&old_t, &ref_t, algo.kl.kl_loss_type)?;
            let kl = rlvr_train::host::masked_mean_tensor(&k, &mask_t)?;
            metrics.insert("actor/kl_ref".into(), json!(kl));
        }
        if algo.kl.use_kl_in_reward {
            let (r, kl) = apply_kl_penalty(
                &token_rewards,
                &old_t,
                &ref_t,
                &mask_t,
                algo.kl.kl_penalty,
                algo.kl.kl_reward_coef,
            )?;
            token_rewards = r;
            metrics.insert("actor/reward_kl_penalty".into(), json!(kl));
        }
        let index: Vec<u64> = samples.iter().map(|s| s.key).collect();
        let gae = algo.adv_estimator == AdvantageEstimator::Gae;
        let values: Option<Vec<Vec<f32>>> = if gae {
            let critic = self.critic.as_deref().ok_or_else(|| {
                LoopError::Other("ppo (gae) needs a critic, and none is loaded".into())
            })?;
            let t = Instant::now();
            let mut out = Vec::with_capacity(pairs.len());
            for chunk in pairs.chunks(cfg.trainer.micro_batch_size) {
                let packed = pack(chunk, self.pad_id(), &device)?;
                let v = critic
                    .values(&packed, Mode::Infer)?
                    .to_dtype(DType::F32)?
                    .to_vec2::<f32>()?;
                for (i, (_, resp)) in chunk.iter().enumerate() {
                    out.push(v[i][..resp.len()].to_vec());
                }
            }
            metrics.insert("timing/values_s".into(), json!(t.elapsed().as_secs_f64()));
            Some(out)
        } else {
            None
        };
        let values_t = match &values {
            Some(v) => {
                let refs: Vec<&[f32]> = v.iter().map(|r| &r[..]).collect();
                Some(rows_to_tensor(&refs, r_max, &device)?.to_dtype(DType::F64)?)
            }
            None => None,
        };
        let baselines = if algo.adv_estimator == AdvantageEstimator::Remax {
            let b = samples
                .iter()
                .map(|s| {
                    s.baseline.ok_or_else(|| {
                        LoopError::Other("remax: a sample has no greedy baseline".into())
                    })
                })
                .collect::<Result<Vec<f64>>>()?;
            metrics.insert("reward/greedy_baseline_mean".into(), json!(mean(&b)));
            Some(Tensor::from_vec(b, samples.len(), &device)?)
        } else {
            None
        };
        let (adv, returns) = compute_advantages(
            algo.adv_estimator,
            &AdvantageInputs {
                token_level_rewards: &token_rewards.to_dtype(DType::F64)?,
                mask: &mask_t.to_dtype(DType::F64)?,
                index: Some(&index),
                values: values_t.as_ref(),
                reward_baselines: baselines.as_ref(),
            },
            &AdvantageParams {
                gamma: algo.gamma,
                lam: algo.lam,
                grpo: algo.grpo,
            },
        )?;
        let adv = adv.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let returns = if gae {
            returns.to_dtype(DType::F32)?.to_vec2::<f32>()?
        } else {
            Vec::new()
        };
        let rows: Vec<Row> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let len = s.completion.tokens.len();
                Row {
                    prompt: s.prompt_ids.clone(),
                    response: s.completion.tokens.clone(),
                    old: old[i].clone(),
                    reference: reference[i].clone(),
                    adv: adv[i].clone(),
                    values: values.as_ref().map_or_else(Vec::new, |v| v[i].clone()),
                    returns: returns.get(i).map_or_else(Vec::new, |r| r[..len].to_vec()),
                }
            })
            .collect();
        if gae {
            let masked = |get: &dyn Fn(&Row) -> &[f32]| {
                let xs: Vec<f64> = rows
                    .iter()
                    .flat_map(|r| get(r).iter().map(|x| *x as f64))
                    .collect();
                mean(&xs)
            };
            metrics.insert("critic/values_mean".into(), json!(masked(&|r| &r.values)));
            metrics.insert("critic/returns_mean".into(), json!(masked(&|r| &r.returns)));
        }
        let adv_flat: Vec<f64> = rows
            .iter()
            .zip(mask.chunks(r_max))
            .flat_map(|(r, m)| {
                r.adv
                    .iter()
                    .zip(m)
                    .filter(|(_, m)| **m > 0.0)
                    .map(|(a, _)| *a as f64)
            })
            .collect();
        metrics.insert("actor/advantage_mean".into(), json!(mean(&adv_flat)));
        metrics.insert(
            "actor/advantage_abs_mean".into(),
            json!(mean(&adv_flat.iter().map(|a| a.abs()).collect::<Vec<_>>())),
        );

        // PPO epochs × mini-batches, each accumulated over micro-batches.
        let t = Instant::now();
        let vars = self.policy.model.vars();
        let mini = b.div_ceil(cfg.trainer.mini_batches);
        let mut pg_losses = Vec::new();
        let mut clipfracs = Vec::new();
        let mut clipfracs_lower = Vec::new();
        let mut ppo_kls = Vec::new();
        let mut grad_norms = Vec::new();
        let mut skipped = 0usize;
        let mut updates = 0usize;
        let (mut vf_losses, mut vf_clipfracs, mut vf_grad_norms) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut critic_skipped = 0usize;
        for _epoch in 0..cfg.trainer.ppo_epochs {
            for (mb_i, mb_rows) in rows.chunks(mini).enumerate() {
                let mb_start = mb_i * mini;
                let mb_mask = Tensor::from_vec(
                    mask[mb_start * r_max..(mb_start + mb_rows.len()) * r_max].to_vec(),
                    (mb_rows.len(), r_max),
                    &device,
                )?;
                let norm = algo
                    .loss_agg_mode
                    .normaliser(&mb_mask, algo.loss_scale_factor)?;
                let mut acc = GradAccumulator::new(vars.clone());
                let mut mb_loss = 0.0f64;
                let mut finite = true;
                for (mi, micro) in mb_rows.chunks(cfg.trainer.micro_batch_size).enumerate() {
                    let first = mb_start + mi * cfg.trainer.micro_batch_size;
                    let mb = Micro::new(micro, first, r_max, &mask, self.pad_id(), &device)?;
                    let (packed, m_t) = (&mb.packed, &mb.mask);
                    let old_t = mb.field(|r| &r.old)?;
                    let adv_t = mb.field(|r| &r.adv)?;
                    let logits = response_logits(
                        &self.policy.model,
                        packed,
                        Mode::Train,
                        cfg.rollout.temperature,
                    )?;
                    let logp = logprobs_from_logits(&logits, packed)?;
                    let pl = ppo_clip_loss(&logp, &old_t, &adv_t, m_t, &algo.clip, &norm)?;
                    let mut loss = pl.loss.clone();
                    if algo.kl.use_kl_loss {
                        let ref_t = mb.field(|r| &r.reference)?;
                        let kl = kl_loss(&logp, &ref_t, m_t, algo.kl.kl_loss_type, &norm)?;
                        loss = (loss + kl.affine(algo.kl.kl_loss_coef, 0.0)?)?;
                    }
                    if algo.entropy_coeff != 0.0 {
                        let ent = rlvr_train::entropy::entropy_loss(&logits, m_t, &norm)?;
                        loss = (loss - ent.affine(algo.entropy_coeff, 0.0)?)?;
                    }
                    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    if !value.is_finite() {
                        finite = false;
                        break;
                    }
                    mb_loss += value;
                    let tokens = mb.tokens();
                    clipfracs.push((pl.clipfrac, tokens));
                    clipfracs_lower.push((pl.clipfrac_lower, tokens));
                    ppo_kls.push((pl.ppo_kl, tokens));
                    acc.backward(&loss)?;
                }
                if !finite {
                    tracing::warn!("non-finite loss: the optimiser step is skipped");
                    skipped += 1;
                    continue;
                }
                let report = self.opt.try_step(acc.take()?)?;
                let gn = report.grad_norm;
                if !report.applied {
                    tracing::warn!(
                        grad_norm = gn,
                        "non-finite gradient: the optimiser step is skipped"
                    );
                    skipped += 1;
                    continue;
                }
                metrics.insert("actor/lr".into(), json!(report.lr));
                updates += 1;
                pg_losses.push(mb_loss);
                grad_norms.push(gn);
                if gae {
                    if let Some(c) = self.critic_step(mb_rows, mb_start, r_max, &mask, &norm)? {
                        vf_losses.push(c.0);
                        vf_clipfracs.push((c.1, c.3));
                        vf_grad_norms.push(c.2);
                    } else {
                        critic_skipped += 1;
                    }
                }
            }
        }
        if gae {
            metrics.insert("critic/vf_loss".into(), json!(mean(&vf_losses)));
            metrics.insert("critic/grad_norm".into(), json!(mean(&vf_grad_norms)));
            metrics.insert("critic/skipped_updates".into(), json!(critic_skipped));
            if let Some(c) = self.critic.as_deref() {
                metrics.insert("critic/lr".into(), json!(c.opt.learning_rate()));
            }
        }
        let weighted = |xs: &[(f64, f64)]| {
            let w: f64 = xs.iter().map(|x| x.1).sum();
            if w > 0.0 {
                xs.iter().map(|x| x.0 * x.1).sum::<f64>() / w
            } else {
                0.0
            }
        };
        metrics.insert("timing/update_s".into(), json!(t.elapsed().as_secs_f64()));
        metrics.insert("actor/loss".into(), json!(mean(&pg_losses)));
        metrics.insert("actor/pg_clipfrac".into(), json!(weighted(&clipfracs)));
        metrics.insert(
            "actor/pg_clipfrac_lower".into(),
            json!(weighted(&clipfracs_lower)),
        );
        metrics.insert("actor/ppo_kl".into(), json!(weighted(&ppo_kls)));
        if gae {
            metrics.insert("critic/vf_clipfrac".into(), json!(weighted(&vf_clipfracs)));
        }
        metrics.insert("actor/grad_norm".into(), json!(mean(&grad_norms)));
        metrics.insert("actor/updates".into(), json!(updates));
        metrics.insert("actor/skipped_updates".into(), json!(skipped));
        metrics.insert("actor/optimizer_steps".into(), json!(self.opt.steps()));
        Ok(())
    }
}

/// The stream position of prompt `i` of a round of `count` prompts that ended at `end`.
fn prompts_key(end: u64, count: usize, i: usize) -> u64 {
    end - count as u64 + i as u64
}

/// Token rewards of a batch: see [`token_rewards`].
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRewards {
    /// `(B, R)` rewards, row-major, rows padded to `R`.
    pub rewards: Vec<f32>,
    /// `(B, R)` response mask.
    pub mask: Vec<f32>,
    /// Samples that got step rewards.
    pub step_rewarded: usize,
    /// Step rewards placed.
    pub steps_placed: usize,
}

/// The `(B, R)` token rewards and response mask of a batch (rows padded to `r_max`): each
/// sample's reward on its last token, with step-scoring verifiers' step rewards moved to
/// step-end tokens under `mode` (see [`crate::step_rewards`]).
pub fn token_rewards(
    samples: &[Sample],
    r_max: usize,
    mode: StepRewardMode,
    tokenizer: &rlvr_model::Tokenizer,
) -> Result<TokenRewards> {
    let b = samples.len();
    let mut scores = vec![0f32; b * r_max];
    let mut mask = vec![0f32; b * r_max];
    let (mut rewarded, mut placed_steps) = (0usize, 0usize);
    for (i, s) in samples.iter().enumerate() {
        let len = s.completion.tokens.len().min(r_max);
        if len == 0 {
            continue;
        }
        mask[i * r_max..i * r_max + len].fill(1.0);
        let last = i * r_max + len - 1;
        scores[last] = s.reward as f32;
        let placed = placement(&s.outcome, mode);
        if placed.steps.is_empty() {
            continue;
        }
        let ends = token_ends(tokenizer, &s.completion.tokens[..len])?;
        scores[last] -= placed.replaced as f32;
        for st in &placed.steps {
            if let Some(j) = token_of(&ends, st.end_byte) {
                scores[i * r_max + j] += st.value as f32;
            }
        }
        rewarded += 1;
        placed_steps += placed.steps.len();
    }
    Ok(TokenRewards {
        rewards: scores,
        mask,
        step_rewarded: rewarded,
        steps_placed: placed_steps,
    })
}
