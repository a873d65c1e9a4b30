//! The first phases of a step: prompts → rollouts → rewards (verification and shaping) →
//! filtering (DAPO's dynamic sampling, which may ask for more rounds).

use std::sync::Arc;
use std::time::Duration;

use rlvr_data::Example;
use rlvr_rollout::{Completion, Prompt, RolloutEngine, SamplingParams};
use rlvr_train::dapo::{keep_group, soft_overlong_penalty, DynamicSampler, SamplingStatus};
use rlvr_train::Needs;
use rlvr_verify::Outcome;

use crate::error::Result;
use crate::metrics::StepMetrics;
use crate::prompts::prompt_text_and_ids;
use crate::trainer::{Sample, Trainer};
use rlvr_eval::verify_pool::{verify_all, verify_jobs};

/// The prompts of one sampling round.
pub struct Prompts {
    /// Prompt ids and stream positions.
    pub prompts: Vec<Prompt>,
    /// The examples and their rendered prompt text.
    pub examples: Vec<(Example, Arc<String>)>,
}

/// The completions of one round: G samples per prompt, and the greedy ones when the
/// algorithm needs a baseline.
pub struct Rollouts {
    /// Sampled completions.
    pub sampled: Vec<Completion>,
    /// One greedy completion per prompt (`remax`), else empty.
    pub greedy: Vec<Completion>,
}

/// The samples of a step: everything sampled (store and metrics) and the groups kept.
pub struct Collected {
    /// Everything sampled, in every round.
    pub sampled: Vec<Sample>,
    /// The samples the update trains on (the kept groups, flattened).
    pub kept: Vec<Sample>,
}

impl Trainer<'_> {
    /// Samples, verifies and filters until the step has its groups (one round unless dynamic
    /// sampling asks for more).
    pub(crate) fn collect(
        &mut self,
        seed: u64,
        needs: Needs,
        m: &mut StepMetrics,
    ) -> Result<Collected> {
        let cfg = self.cfg;
        let target = cfg.rollout.prompts_per_step;
        let mut sampler = match &cfg.algorithm.dynamic_sampling {
            Some(d) => Some(DynamicSampler::new(*d, target)?),
            None => None,
        };
        let mut sampled = Vec::new();
        let mut rounds = 0usize;
        let kept = loop {
            rounds += 1;
            let round_seed = seed.wrapping_add(rounds as u64 * 7919);
            let prompts = self.prompts(target)?;
            let out = m.timed("rollout", |m| self.rollouts(&prompts, round_seed, needs, m))?;
            let groups = m.timed("verify", |_| self.rewards(&prompts, out))?;
            sampled.extend(groups.iter().flatten().cloned());
            if let Some(g) = self.filter(groups, sampler.as_mut(), m) {
                break g;
            }
        };
        m.set("rollout/rounds", rounds);
        let generated = m.get("rollout/generated_tokens").unwrap_or(0.0);
        let secs = m.get("timing/rollout_s").unwrap_or(0.0);
        m.set("rollout/tokens_per_s", generated / secs.max(1e-9));
        Ok(Collected {
            sampled,
            kept: kept.into_iter().flatten().collect(),
        })
    }

    /// Phase "prompts": the next `count` prompts of the stream, rendered.
    fn prompts(&mut self, count: usize) -> Result<Prompts> {
        let cfg = self.cfg;
        let mut prompts = Vec::with_capacity(count);
        let mut examples = Vec::with_capacity(count);
        for i in 0..count {
            let pos = self.data_pos + i as u64;
            let ex = self.source.at(pos);
            let (text, ids) =
                prompt_text_and_ids(&self.policy.tokenizer, &ex, cfg.data.chat_template)?;
            prompts.push(Prompt { ids, key: pos });
            examples.push((ex, Arc::new(text)));
        }
        self.data_pos += count as u64;
        Ok(Prompts { prompts, examples })
    }

    /// Phase "rollout": G samples per prompt (and a greedy one when a baseline is needed).
    fn rollouts(
        &self,
        p: &Prompts,
        seed: u64,
        needs: Needs,
        m: &mut StepMetrics,
    ) -> Result<Rollouts> {
        let cfg = &self.cfg.rollout;
        let engine = RolloutEngine::from_model_dir(self.policy).with_options(cfg.engine.clone());
        let params = SamplingParams {
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            top_k: cfg.top_k,
            max_new_tokens: cfg.max_new_tokens,
            stop: cfg.stop.clone(),
            n: cfg.n,
            max_prompt_len: Some(cfg.max_prompt_len),
            seed,
            ..SamplingParams::default()
        };
        let out = engine.generate_keyed(&p.prompts, &params)?;
        let greedy = if needs.greedy_baseline {
            let greedy = SamplingParams {
                temperature: 0.0,
                n: 1,
                ..params
            };
            engine.generate_keyed(&p.prompts, &greedy)?.completions
        } else {
            Vec::new()
        };
        m.add("rollout/filtered_prompts", out.filtered.len() as f64);
        m.add(
            "rollout/generated_tokens",
            out.stats.generated_tokens as f64,
        );
        Ok(Rollouts {
            sampled: out.completions,
            greedy,
        })
    }

    /// Phase "verify": verdicts of every completion, shaped into rewards, grouped by prompt;
    /// the greedy completions' rewards become their group's baseline.
    fn rewards(&self, p: &Prompts, out: Rollouts) -> Result<Vec<Vec<Sample>>> {
        let cfg = self.cfg;
        let example = |i: usize| &p.examples[i].0;
        let mut jobs = verify_jobs(&out.sampled, example, self.verifiers);
        jobs.extend(verify_jobs(&out.greedy, example, self.verifiers));
        let mut outcomes = verify_all(
            self.rt,
            jobs,
            cfg.trainer.verify_concurrency,
            Duration::from_millis(cfg.trainer.verify_timeout_ms),
        );
        let greedy_outcomes = outcomes.split_off(out.sampled.len());
        let count = p.prompts.len();
        let mut baselines: Vec<Option<f64>> = vec![None; count];
        for (c, o) in out.greedy.iter().zip(&greedy_outcomes) {
            baselines[c.prompt_index] = Some(self.shaped(o.score as f64, c.tokens.len())?);
        }
        let ids: Vec<Arc<Vec<u32>>> = p.prompts.iter().map(|q| Arc::new(q.ids.clone())).collect();
        let mut groups: Vec<Vec<Sample>> = vec![Vec::new(); count];
        for (c, o) in out.sampled.into_iter().zip(outcomes) {
            let pi = c.prompt_index;
            groups[pi].push(self.sample(p, &ids[pi], c, o, baselines[pi])?);
        }
        groups.retain(|g| !g.is_empty());
        Ok(groups)
    }

    /// A verified completion as a sample of prompt `c.prompt_index`.
    fn sample(
        &self,
        p: &Prompts,
        ids: &Arc<Vec<u32>>,
        c: Completion,
        outcome: Outcome,
        baseline: Option<f64>,
    ) -> Result<Sample> {
        let (ex, text) = &p.examples[c.prompt_index];
        Ok(Sample {
            key: p.prompts[c.prompt_index].key,
            prompt_ids: ids.clone(),
            prompt_text: text.clone(),
            data_source: ex.data_source.clone(),
            reward: self.shaped(outcome.score as f64, c.tokens.len())?,
            completion: c,
            outcome,
            baseline,
        })
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

    /// Phase "filter": without dynamic sampling every group is kept; with it, groups without
    /// reward variance are dropped and `None` asks for another round. A sampler error skips
    /// the step (no groups).
    fn filter(
        &self,
        groups: Vec<Vec<Sample>>,
        sampler: Option<&mut DynamicSampler<Vec<Sample>>>,
        m: &mut StepMetrics,
    ) -> Option<Vec<Vec<Sample>>> {
        let Some(ds) = sampler else {
            return Some(groups);
        };
        let min_std = self
            .cfg
            .algorithm
            .dynamic_sampling
            .map_or(0.0, |d| d.min_std);
        let offered: Vec<(Vec<Sample>, Vec<f64>)> = groups
            .into_iter()
            .map(|g| {
                let r = g.iter().map(|s| s.reward).collect();
                (g, r)
            })
            .collect();
        let dropped = offered
            .iter()
            .filter(|(_, r)| !keep_group(r, min_std).unwrap_or(true))
            .count();
        m.add("rollout/dropped_groups", dropped as f64);
        match ds.offer(offered) {
            Ok(SamplingStatus::Ready(g)) | Ok(SamplingStatus::Partial(g)) => Some(g),
            Ok(SamplingStatus::NeedMore { .. }) => None,
            Err(e) => {
                tracing::warn!("{e}; the step is skipped");
                Some(Vec::new())
            }
        }
    }
}
