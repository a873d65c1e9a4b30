//! Training a reward model and measuring it.
//!
//! Losses (all on the head's logits `r`):
//! - Bradley–Terry on pairs: `−log σ(r_chosen − r_rejected)` (Ouyang et al. 2022);
//! - pointwise binary cross-entropy on labelled responses: `BCE(σ(r), y)`;
//! - per-step binary cross-entropy (PRM) over the labelled steps, neutral steps left out
//!   (Lightman et al. 2023; soft targets as Math-Shepherd's soft estimation).
//!
//! - step-level Bradley–Terry between siblings (PRM): two step-labelled solutions of the same
//!   prompt that agree on their first `k` steps and whose step `k` is labelled right in one and
//!   wrong in the other (Math-Shepherd's continuations of a shared prefix, a solution and its
//!   corrupted copy) give `−log σ(r_right,k − r_wrong,k)`. The difference isolates what makes
//!   the step wrong, which per-step BCE alone learns slowly when the clue is small (a digit of
//!   the answer). Weighted by `pair_coef`; such pairs join the shuffled records as units.
//!
//! A batch mixing kinds sums their means. Optimiser: rlvr-train's
//! AdamW with gradient clipping and a warm-up + cosine schedule; a step whose loss or gradient
//! norm is not finite changes nothing and is counted as skipped ([`AdamW::try_step`]).

use std::time::Instant;

use candle_core::{Device, Tensor};
use rlvr_model::Mode;
use rlvr_train::optim::{AdamW, LrSchedule, OptimConfig, StepReport};
use serde::{Deserialize, Serialize};

use crate::aggregate::first_below;
use crate::data::{check_kind, Example, Record};
use crate::error::{Result, RmError};
use crate::model::{sigmoid, RewardModel};

/// Settings of [`train`] (`--set key=value` on the command line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmTrainConfig {
    /// Optimiser steps (default 300).
    pub steps: usize,
    /// Records per step; a pair counts once (default 16).
    pub batch_size: usize,
    /// Peak learning rate (default 1e-5; tiny models trained from scratch want ~1e-3).
    pub lr: f64,
    /// Decoupled weight decay (default 0).
    pub weight_decay: f64,
    /// Linear warm-up steps before the cosine decay to 10% (default: 5% of `steps`).
    pub warmup_steps: Option<usize>,
    /// Clip the global gradient norm (default 1.0; null = no clipping).
    pub grad_clip: Option<f64>,
    /// Seed of the data order (default 0).
    pub seed: u64,
    /// When no evaluation file is given, the share of records held out for the metrics
    /// (default 0.1; a record's membership is a hash of its line, so it is fixed).
    pub eval_fraction: f64,
    /// Log every this many steps (default 25).
    pub log_every: usize,
    /// Weight of an auxiliary next-token loss on the response tokens of good responses
    /// (chosen ones, label ≥ 0.5, step solutions up to their first wrong step); it teaches
    /// the backbone the features of a right solution (default 0: off).
    pub lm_coef: f64,
    /// Weight of the step-level Bradley–Terry loss between sibling step-labelled solutions
    /// (PRM; see the module docs). Default 1.0; 0 = off.
    pub pair_coef: f64,
    /// At most this many sibling pairs per prompt (default 8).
    pub max_pairs_per_prompt: usize,
}

impl Default for RmTrainConfig {
    fn default() -> Self {
        RmTrainConfig {
            steps: 300,
            batch_size: 16,
            lr: 1e-5,
            weight_decay: 0.0,
            warmup_steps: None,
            grad_clip: Some(1.0),
            seed: 0,
            eval_fraction: 0.1,
            log_every: 25,
            lm_coef: 0.0,
            pair_coef: 1.0,
            max_pairs_per_prompt: 8,
        }
    }
}

/// What one training step did.
#[derive(Clone, Debug, Serialize)]
pub struct StepLog {
    pub step: usize,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
}

/// What [`train`] did.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Steps taken (skipped ones included).
    pub steps: usize,
    /// Steps whose loss or gradient was not finite (no update).
    pub skipped: usize,
    /// Mean loss of the first 10% of steps.
    pub first_loss: f64,
    /// Mean loss of the last 10% of steps.
    pub final_loss: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A record as token ids and read positions, plus the token range `[start, end)` of its
/// good response (for the auxiliary LM loss; empty when there is none).
enum Encoded {
    Pair(Vec<u32>, Vec<u32>, (usize, usize)),
    Point(Vec<u32>, f32, (usize, usize)),
    Steps(Vec<u32>, Vec<usize>, Vec<Option<f32>>, (usize, usize)),
    /// Sibling solutions: (right one's ids, its read at step k), (wrong one's, its read at k).
    StepPair(Vec<u32>, usize, Vec<u32>, usize),
}

/// Sibling pairs among step-labelled records (see the module docs): for each prompt, each
/// record with a wrong step `k` is paired with records that share its steps before `k` and
/// whose step `k` differs and is labelled right; at most `max_per_prompt` per prompt.
fn sibling_pairs(examples: &[Example], encoded: &[Encoded], max_per_prompt: usize) -> Vec<Encoded> {
    use std::collections::BTreeMap;
    let mut by_prompt: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, ex) in examples.iter().enumerate() {
        if let Record::Steps { prompt, .. } = &ex.record {
            by_prompt.entry(prompt.to_string()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for idx in by_prompt.values().filter(|v| v.len() > 1) {
        let mut made = 0;
        'outer: for &b in idx {
            let Record::Steps {
                steps: sb,
                labels: lb,
                ..
            } = &examples[b].record
            else {
                continue;
            };
            let Some(k) = lb.iter().position(|l| l.is_some_and(|x| x < 0.5)) else {
                continue;
            };
            for &a in idx {
                if made >= max_per_prompt {
                    break 'outer;
                }
                let Record::Steps {
                    steps: sa,
                    labels: la,
                    ..
                } = &examples[a].record
                else {
                    continue;
                };
                let right = la.get(k).copied().flatten().is_some_and(|x| x >= 0.5);
                if a == b || !right || sa.len() <= k || sa[..k] != sb[..k] || sa[k] == sb[k] {
                    continue;
                }
                if let (Encoded::Steps(ia, ra, ..), Encoded::Steps(ib, rb, ..)) =
                    (&encoded[a], &encoded[b])
                {
                    out.push(Encoded::StepPair(ia.clone(), ra[k], ib.clone(), rb[k]));
                    made += 1;
                }
            }
        }
    }
    out
}

fn too_long(ex: &Example, len: usize, max: usize) -> RmError {
    RmError::Data {
        path: ex.path.clone(),
        line: ex.line,
        field: "-".into(),
        msg: format!("{len} tokens, more than the model's {max}"),
    }
}

fn encode(rm: &RewardModel, ex: &Example) -> Result<Encoded> {
    let max = rm.backbone().config().max_position_embeddings;
    let check = |ids: &Vec<u32>| {
        if ids.len() > max {
            Err(too_long(ex, ids.len(), max))
        } else if ids.is_empty() {
            Err(RmError::Data {
                path: ex.path.clone(),
                line: ex.line,
                field: "-".into(),
                msg: "encodes to no token".into(),
            })
        } else {
            Ok(())
        }
    };
    Ok(match &ex.record {
        Record::Pair {
            prompt,
            chosen,
            rejected,
        } => {
            let p = rm.encode_prompt(prompt)?;
            let (c, r) = (
                rm.encode_response(&p, chosen)?,
                rm.encode_response(&p, rejected)?,
            );
            check(&c)?;
            check(&r)?;
            let good = (p.len(), c.len());
            Encoded::Pair(c, r, good)
        }
        Record::Point {
            prompt,
            response,
            label,
        } => {
            let p = rm.encode_prompt(prompt)?;
            let ids = rm.encode_response(&p, response)?;
            check(&ids)?;
            let good = if *label >= 0.5 {
                (p.len(), ids.len())
            } else {
                (0, 0)
            };
            Encoded::Point(ids, *label, good)
        }
        Record::Steps {
            prompt,
            steps,
            labels,
        } => {
            let p = rm.encode_prompt(prompt)?;
            let (ids, reads) = rm.encode_steps(&p, steps)?;
            check(&ids)?;
            // Good tokens: up to the end of the step before the first wrong one.
            let end = match ex.record.first_wrong_step() {
                None => ids.len(),
                Some(0) => p.len(),
                Some(k) => reads[k - 1] + 1,
            };
            Encoded::Steps(ids, reads, labels.clone(), (p.len(), end))
        }
    })
}

/// `log(1 + e^x)`, stable for large |x|.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean Bradley–Terry loss `−log σ(chosen − rejected)` over pairs of logits.
pub fn bradley_terry_loss(chosen: &Tensor, rejected: &Tensor) -> Result<Tensor> {
    Ok(softplus(&(rejected - chosen)?)?.mean_all()?)
}

/// Weighted mean of `BCE(σ(logits), targets)`: `Σ w·(softplus(x) − x·y) / Σ w`.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let per = (softplus(logits)? - (logits * targets)?)?;
    let denom = weights.sum_all()?.to_scalar::<f32>()?.max(1e-12) as f64;
    Ok(((per * weights)?.sum_all()? / denom)?)
}

/// The loss of a batch of encoded records (graph kept for the backward pass).
fn batch_loss(
    rm: &RewardModel,
    batch: &[&Encoded],
    lm_coef: f64,
    pair_coef: f64,
    device: &Device,
) -> Result<Option<Tensor>> {
    let mut seqs: Vec<Vec<u32>> = Vec::new();
    let mut good: Vec<(usize, usize)> = Vec::new();
    let mut reads: Vec<Vec<usize>> = Vec::new();
    let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
    let (mut point_idx, mut point_y) = (Vec::new(), Vec::new());
    let (mut step_idx, mut step_y, mut step_w) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sib_good, mut sib_bad) = (Vec::new(), Vec::new());
    let mut n = 0u32;
    for e in batch {
        match e {
            Encoded::Pair(c, r, g) => {
                for s in [c, r] {
                    reads.push(vec![s.len() - 1]);
                    seqs.push(s.clone());
                }
                good.extend([*g, (0, 0)]);
                chosen.push(n);
                rejected.push(n + 1);
                n += 2;
            }
            Encoded::Point(ids, y, g) => {
                good.push(*g);
                reads.push(vec![ids.len() - 1]);
                seqs.push(ids.clone());
                point_idx.push(n);
                point_y.push(*y);
                n += 1;
            }
            Encoded::StepPair(a, ra, b, rb) => {
                seqs.push(a.clone());
                reads.push(vec![*ra]);
                seqs.push(b.clone());
                reads.push(vec![*rb]);
                good.extend([(0, 0), (0, 0)]);
                sib_good.push(n);
                sib_bad.push(n + 1);
                n += 2;
            }
            Encoded::Steps(ids, r, labels, g) => {
                good.push(*g);
                seqs.push(ids.clone());
                reads.push(r.clone());
                for l in labels {
                    step_idx.push(n);
                    step_y.push(l.unwrap_or(0.0));
                    step_w.push(if l.is_some() { 1.0f32 } else { 0.0 });
                    n += 1;
                }
            }
        }
    }
    let (hidden, logits) = rm.hidden_and_logits(&seqs, &reads, Mode::Train)?;
    let pick =
        |idx: &[u32]| -> Result<Tensor> { Ok(logits.index_select(&Tensor::new(idx, device)?, 0)?) };
    let mut loss: Option<Tensor> = None;
    let mut add = |t: Tensor| -> Result<()> {
        loss = Some(match loss.take() {
            None => t,
            Some(l) => (l + t)?,
        });
        Ok(())
    };
    if !chosen.is_empty() {
        add(bradley_terry_loss(&pick(&chosen)?, &pick(&rejected)?)?)?;
    }
    if !point_idx.is_empty() {
        let y = Tensor::new(point_y.as_slice(), device)?;
        let w = y.ones_like()?;
        add(bce_with_logits(&pick(&point_idx)?, &y, &w)?)?;
    }
    if step_w.iter().any(|&w| w > 0.0) {
        let y = Tensor::new(step_y.as_slice(), device)?;
        let w = Tensor::new(step_w.as_slice(), device)?;
        add(bce_with_logits(&pick(&step_idx)?, &y, &w)?)?;
    }
    if !sib_good.is_empty() && pair_coef > 0.0 {
        add((bradley_terry_loss(&pick(&sib_good)?, &pick(&sib_bad)?)? * pair_coef)?)?;
    }
    if lm_coef > 0.0 {
        if let Some(lm) = lm_loss(rm, &hidden, &seqs, &good, device)? {
            add((lm * lm_coef)?)?;
        }
    }
    Ok(loss)
}

/// Mean next-token negative log-likelihood of the tokens in each row's `good` range (each
/// predicted from the position before it), through the backbone's LM head.
fn lm_loss(
    rm: &RewardModel,
    hidden: &Tensor,
    seqs: &[Vec<u32>],
    good: &[(usize, usize)],
    device: &Device,
) -> Result<Option<Tensor>> {
    let (b, t, _) = hidden.dims3()?;
    if t < 2 {
        return Ok(None);
    }
    let mut targets = vec![0u32; b * (t - 1)];
    let mut mask = vec![0f32; b * (t - 1)];
    for (row, (s, &(start, end))) in seqs.iter().zip(good).enumerate() {
        for j in start.max(1)..end.min(s.len()) {
            targets[row * (t - 1) + j - 1] = s[j];
            mask[row * (t - 1) + j - 1] = 1.0;
        }
    }
    let n: f32 = mask.iter().sum();
    if n == 0.0 {
        return Ok(None);
    }
    let logits = rm
        .backbone()
        .lm_head(&hidden.narrow(1, 0, t - 1)?, Mode::Train)?;
    let targets = Tensor::from_vec(targets, (b, t - 1), device)?;
    let lp = rlvr_model::logprobs_of(&logits, &targets)?;
    let mask = Tensor::from_vec(mask, (b, t - 1), device)?;
    Ok(Some(((lp * mask)?.sum_all()? * (-1.0 / n as f64))?))
}

/// Backward of `loss` and the guarded optimiser step: a non-finite gradient norm leaves the
/// weights unchanged (the step is counted as skipped by the optimiser and by [`train`]).
fn update(opt: &mut AdamW, loss: &Tensor) -> Result<StepReport> {
    Ok(opt.try_step(loss.backward()?)?)
}

/// Trains `rm` in place on `examples` (which must fit its kind). `on_step` sees every step.
pub fn train(
    rm: &RewardModel,
    examples: &[Example],
    cfg: &RmTrainConfig,
    mut on_step: impl FnMut(&StepLog),
) -> Result<TrainReport> {
    if examples.is_empty() {
        return Err(RmError::Input("no training records".into()));
    }
    if cfg.batch_size == 0 || cfg.steps == 0 {
        return Err(RmError::config("steps/batch_size", "must be positive"));
    }
    check_kind(examples, rm.settings.kind)?;
    let mut encoded: Vec<Encoded> = examples
        .iter()
        .map(|e| encode(rm, e))
        .collect::<Result<_>>()?;
    if cfg.pair_coef > 0.0 {
        let pairs = sibling_pairs(examples, &encoded, cfg.max_pairs_per_prompt);
        if !pairs.is_empty() {
            tracing::info!(pairs = pairs.len(), "sibling step pairs");
        }
        encoded.extend(pairs);
    }
    let device = rm.backbone().device().clone();
    let warmup = cfg.warmup_steps.unwrap_or(cfg.steps / 20);
    let mut opt = AdamW::new(
        rm.vars(),
        OptimConfig {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            grad_clip: cfg.grad_clip,
            schedule: LrSchedule::WarmupCosine {
                warmup_steps: warmup,
                total_steps: cfg.steps,
                min_lr_ratio: 0.1,
            },
            ..OptimConfig::default()
        },
    )?;
    let started = Instant::now();
    let mut order: Vec<usize> = Vec::new();
    let mut cursor = 0usize;
    let mut epoch = 0u64;
    let mut losses = Vec::with_capacity(cfg.steps);
    let mut skipped = 0;
    for step in 0..cfg.steps {
        let mut batch = Vec::with_capacity(cfg.batch_size);
        while batch.len() < cfg.batch_size.min(encoded.len()) {
            if cursor >= order.len() {
                order = rlvr_data::rng::permutation(encoded.len(), cfg.seed, epoch);
                epoch += 1;
                cursor = 0;
            }
            batch.push(&encoded[order[cursor]]);
            cursor += 1;
        }
        let Some(loss) = batch_loss(rm, &batch, cfg.lm_coef, cfg.pair_coef, &device)? else {
            skipped += 1;
            continue;
        };
        let value = loss.to_scalar::<f32>()? as f64;
        let lr = opt.learning_rate();
        if !value.is_finite() {
            skipped += 1;
            continue;
        }
        let report = update(&mut opt, &loss)?;
        let grad_norm = report.grad_norm;
        if !report.applied {
            tracing::warn!(
                step,
                grad_norm,
                "non-finite reward-model gradient: the step is skipped"
            );
            skipped += 1;
            continue;
        }
        losses.push(value);
        let log = StepLog {
            step,
            loss: value,
            grad_norm,
            lr,
        };
        if cfg.log_every > 0 && (step % cfg.log_every == 0 || step + 1 == cfg.steps) {
            tracing::info!(step, loss = value, grad_norm, lr, "reward model");
        }
        on_step(&log);
    }
    let k = (losses.len() / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    Ok(TrainReport {
        steps: cfg.steps,
        skipped,
        first_loss: mean(&losses[..k.min(losses.len())]),
        final_loss: mean(&losses[losses.len().saturating_sub(k)..]),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Splits examples into (train, eval) by a hash of their line (or index), `fraction` held out.
pub fn split_eval(
    examples: Vec<Example>,
    fraction: f64,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for (i, ex) in examples.into_iter().enumerate() {
        let key = if ex.line > 0 { ex.line } else { i + 1 } as u64;
        let u = (rlvr_data::rng::mix64(key ^ seed.rotate_left(17) ^ 0xe7a1) >> 11) as f64
            / (1u64 << 53) as f64;
        if u < fraction {
            eval.push(ex);
        } else {
            train.push(ex);
        }
    }
    (train, eval)
}

/// Metrics of a reward model on labelled records (each present only when the records have
/// that shape).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RmMetrics {
    /// Preference pairs seen.
    pub pairs: usize,
    /// Share of pairs whose chosen response scores strictly higher.
    pub pairwise_accuracy: Option<f64>,
    /// Labelled responses seen.
    pub points: usize,
    /// Area under the ROC curve of the scores against the (rounded) labels.
    pub auc: Option<f64>,
    /// Share of labelled responses on the right side of the threshold.
    pub point_accuracy: Option<f64>,
    /// Labelled (non-neutral) steps seen.
    pub steps: usize,
    /// Share of labelled steps on the right side of the threshold.
    pub step_accuracy: Option<f64>,
    /// Step-labelled solutions with a wrong step.
    pub wrong_solutions: usize,
    /// Share of those whose first step below the threshold is the first wrong step (a model
    /// that calls every step correct scores 0).
    pub first_error_accuracy: Option<f64>,
    /// Step-labelled solutions without a wrong step.
    pub clean_solutions: usize,
    /// Share of those with every step at or above the threshold.
    pub clean_accuracy: Option<f64>,
}

/// Area under the ROC curve (Mann–Whitney; ties count half). `None` without both classes.
pub fn auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let pos: Vec<f32> = scores
        .iter()
        .zip(positive)
        .filter(|(_, &p)| p)
        .map(|(&s, _)| s)
        .collect();
    let neg: Vec<f32> = scores
        .iter()
        .zip(positive)
        .filter(|(_, &p)| !p)
        .map(|(&s, _)| s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

/// Share of solutions whose predicted first wrong step (the first step probability below
/// `threshold`) equals the labelled one. Only solutions with a labelled wrong step count.
pub fn first_error_accuracy(
    step_probs: &[Vec<f32>],
    first_wrong: &[Option<usize>],
    threshold: f32,
) -> Option<f64> {
    let mut n = 0;
    let mut hit = 0;
    for (p, truth) in step_probs.iter().zip(first_wrong) {
        if let Some(k) = truth {
            n += 1;
            if first_below(p, threshold) == Some(*k) {
                hit += 1;
            }
        }
    }
    (n > 0).then(|| hit as f64 / n as f64)
}

/// Step probabilities of step-labelled records (their own steps, not re-split), batched.
pub fn step_probabilities(rm: &RewardModel, examples: &[&Example]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(rm.settings.batch_size.max(1)) {
        let mut seqs = Vec::new();
        let mut reads = Vec::new();
        for ex in chunk {
            let Record::Steps { prompt, steps, .. } = &ex.record else {
                return Err(RmError::Input(
                    "step probabilities of a record without steps".into(),
                ));
            };
            let (ids, r) = rm.encode_steps(&rm.encode_prompt(prompt)?, steps)?;
            seqs.push(ids);
            reads.push(r);
        }
        let logits: Vec<f32> = rm.logits_at(&seqs, &reads, Mode::Infer)?.to_vec1()?;
        let mut at = 0;
        for r in &reads {
            out.push(
                logits[at..at + r.len()]
                    .iter()
                    .map(|&x| sigmoid(x))
                    .collect(),
            );
            at += r.len();
        }
    }
    Ok(out)
}

/// ORM logits of encoded sequences, batched, no autograd.
fn orm_logits(rm: &RewardModel, seqs: &[Vec<u32>]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(rm.settings.batch_size.max(1)) {
        out.extend(rm.last_token_logits(chunk, Mode::Infer)?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Measures `rm` on labelled records: pairwise accuracy (pairs), AUC and accuracy (labelled
/// responses), per-step accuracy, first-wrong-step accuracy and clean-solution accuracy
/// (step-labelled solutions).
pub fn evaluate(rm: &RewardModel, examples: &[Example]) -> Result<RmMetrics> {
    let thr = rm.settings.threshold;
    let mut m = RmMetrics::default();
    // Pairs.
    let mut seqs = Vec::new();
    for ex in examples {
        if let Record::Pair {
            prompt,
            chosen,
            rejected,
        } = &ex.record
        {
            let p = rm.encode_prompt(prompt)?;
            seqs.push(rm.encode_response(&p, chosen)?);
            seqs.push(rm.encode_response(&p, rejected)?);
        }
    }
    if !seqs.is_empty() {
        let l = orm_logits(rm, &seqs)?;
        m.pairs = l.len() / 2;
        let wins = l.chunks(2).filter(|c| c[0] > c[1]).count();
        m.pairwise_accuracy = Some(wins as f64 / m.pairs as f64);
    }
    // Labelled responses.
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for ex in examples {
        if let Record::Point {
            prompt,
            response,
            label,
        } = &ex.record
        {
            seqs.push(rm.encode_response(&rm.encode_prompt(prompt)?, response)?);
            labels.push(*label >= 0.5);
        }
    }
    if !seqs.is_empty() {
        let probs: Vec<f32> = orm_logits(rm, &seqs)?.into_iter().map(sigmoid).collect();
        m.points = probs.len();
        m.auc = auc(&probs, &labels);
        let right = probs
            .iter()
            .zip(&labels)
            .filter(|(p, l)| (**p >= thr) == **l)
            .count();
        m.point_accuracy = Some(right as f64 / m.points as f64);
    }
    // Step-labelled solutions.
    let stepped: Vec<&Example> = examples
        .iter()
        .filter(|e| matches!(e.record, Record::Steps { .. }))
        .collect();
    if !stepped.is_empty() {
        let probs = step_probabilities(rm, &stepped)?;
        let (mut n, mut right) = (0usize, 0usize);
        let (mut clean, mut clean_right) = (0usize, 0usize);
        let mut truths = Vec::with_capacity(stepped.len());
        for (ex, p) in stepped.iter().zip(&probs) {
            let Record::Steps { labels, .. } = &ex.record else {
                unreachable!("filtered")
            };
            for (l, q) in labels.iter().zip(p) {
                if let Some(y) = l {
                    n += 1;
                    right += usize::from((*q >= thr) == (*y >= 0.5));
                }
            }
            let truth = ex.record.first_wrong_step();
            if truth.is_none() && labels.iter().any(Option::is_some) {
                clean += 1;
                clean_right += usize::from(first_below(p, thr).is_none());
            }
            truths.push(truth);
        }
        m.steps = n;
        m.step_accuracy = (n > 0).then(|| right as f64 / n as f64);
        m.wrong_solutions = truths.iter().filter(|t| t.is_some()).count();
        m.first_error_accuracy = first_error_accuracy(&probs, &truths, thr);
        m.clean_solutions = clean;
        m.clean_accuracy = (clean > 0).then(|| clean_right as f64 / clean as f64);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn siblings_pair_at_the_step_where_they_part() {
        let rec = |prompt: &str, steps: &[&str], labels: &[Option<f32>]| Example {
            path: "d.jsonl".into(),
            line: 1,
            record: Record::Steps {
                prompt: Value::from(prompt),
                steps: steps.iter().map(|s| s.to_string()).collect(),
                labels: labels.to_vec(),
            },
        };
        let (p, m) = (Some(1.0), Some(0.0));
        let examples = vec![
            rec("q", &["a", "b", "c"], &[p, p, p]),
            rec("q", &["a", "x", "y"], &[p, m, None]),
            // Same step 1 text as the wrong one: not a sibling of it.
            rec("q", &["a", "x", "z"], &[p, p, p]),
            // Another prompt.
            rec("r", &["a", "b", "c"], &[p, p, p]),
            // Wrong at step 0: pairs with every right step 0 of "q" that differs.
            rec("q", &["w"], &[m]),
        ];
        // Fake encodings: ids = [record index; 3], reads = positions 10k + step.
        let encoded: Vec<Encoded> = (0..examples.len())
            .map(|i| {
                Encoded::Steps(
                    vec![i as u32; 3],
                    vec![10 * i, 10 * i + 1, 10 * i + 2],
                    vec![],
                    (0, 0),
                )
            })
            .collect();
        let pairs = sibling_pairs(&examples, &encoded, 8);
        let got: Vec<(u32, usize, u32, usize)> = pairs
            .iter()
            .map(|e| match e {
                Encoded::StepPair(a, ra, b, rb) => (a[0], *ra, b[0], *rb),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![(0, 1, 1, 11), (0, 0, 4, 40), (1, 10, 4, 40), (2, 20, 4, 40)],
            "{got:?}"
        );
        // The cap per prompt.
        assert_eq!(sibling_pairs(&examples, &encoded, 1).len(), 1);
    }

    #[test]
    fn a_non_finite_gradient_updates_nothing() {
        use candle_core::Var;
        let w = Var::from_tensor(&t(&[0.0, 1.0])).unwrap();
        let mut opt = AdamW::new(
            vec![w.clone()],
            OptimConfig {
                lr: 0.1,
                grad_clip: None,
                ..OptimConfig::default()
            },
        )
        .unwrap();
        // √w at w = 0: a finite loss (1) whose gradient is infinite.
        let loss = w.as_tensor().sqrt().unwrap().sum_all().unwrap();
        assert!(loss.to_scalar::<f32>().unwrap().is_finite());
        let r = update(&mut opt, &loss).unwrap();
        assert!(!r.applied && !r.grad_norm.is_finite(), "{r:?}");
        assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![0.0, 1.0]);
        assert_eq!((opt.steps(), opt.skipped_steps()), (0, 1));
        // A finite gradient updates.
        let loss = w.as_tensor().sum_all().unwrap();
        assert!(update(&mut opt, &loss).unwrap().applied);
        assert_ne!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![0.0, 1.0]);
    }

    #[test]
    fn losses_match_hand_computed_values() {
        // −log σ(2 − 0.5) and −log σ(−1 − 1), averaged.
        let bt = bradley_terry_loss(&t(&[2.0, -1.0]), &t(&[0.5, 1.0]))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let want = ((1.0 + (-1.5f64).exp()).ln() + (1.0 + 2.0f64.exp()).ln()) / 2.0;
        assert!((bt - want).abs() < 1e-6, "{bt} vs {want}");
        // BCE with a zero weight on the last entry; large logits stay finite.
        let bce = bce_with_logits(
            &t(&[0.0, 3.0, -200.0, 50.0]),
            &t(&[1.0, 0.0, 0.0, 1.0]),
            &t(&[1.0, 1.0, 1.0, 0.0]),
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
        let want = (2f64.ln() + (1.0 + 3f64.exp()).ln() + 0.0) / 3.0;
        assert!((bce - want).abs() < 1e-5, "{bce} vs {want}");
    }

    #[test]
    fn auc_and_first_error_accuracy() {
        assert_eq!(
            auc(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.1, 0.2, 0.9, 0.8], &[true, true, false, false]),
            Some(0.0)
        );
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auc(&[0.5], &[true]), None);
        let probs = vec![
            vec![0.9, 0.2, 0.1],
            vec![0.9, 0.9, 0.9],
            vec![0.1, 0.9],
            vec![0.9, 0.9],
        ];
        let truth = vec![Some(1), Some(2), Some(1), None];
        // Row 0 right, row 1 missed, row 2 blames step 0 instead of 1; row 3 is clean.
        assert_eq!(first_error_accuracy(&probs, &truth, 0.5), Some(1.0 / 3.0));
        // A model that calls every step correct never locates an error.
        let always: Vec<Vec<f32>> = probs.iter().map(|p| vec![1.0; p.len()]).collect();
        assert_eq!(first_error_accuracy(&always, &truth, 0.5), Some(0.0));
        assert_eq!(
            first_error_accuracy(&probs, &[None, None, None, None], 0.5),
            None
        );
    }

    #[test]
    fn split_eval_is_stable_and_near_the_fraction() {
        let ex: Vec<Example> = (0..1000)
            .map(|i| Example {
                path: "f".into(),
                line: i + 1,
                record: Record::Point {
                    prompt: "p".into(),
                    response: "r".into(),
                    label: 1.0,
                },
            })
            .collect();
        let (a, b) = split_eval(ex.clone(), 0.1, 0);
        assert!((70..130).contains(&b.len()), "{}", b.len());
        assert_eq!(a.len() + b.len(), 1000);
        let (_, b2) = split_eval(ex, 0.1, 0);
        assert_eq!(b, b2);
    }
}
