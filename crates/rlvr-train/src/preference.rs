//! Preference objectives over sequence log-probs (the seeds' offline losses), each returning
//! a scalar loss (mean over the batch, differentiable w.r.t. the policy log-probs) and the
//! metrics its paper logs. Reference log-probs are detached. Inputs are (N,) tensors of one
//! float dtype: `*_logps` are summed log-probs of whole responses unless said otherwise.

use candle_core::{DType, Tensor};

use crate::error::{Result, TrainError};

/// A loss and its named metrics (names as TRL logs them, e.g. `rewards/margins`).
#[derive(Clone, Debug)]
pub struct PreferenceLoss {
    /// Scalar loss.
    pub loss: Tensor,
    /// Named scalar metrics.
    pub metrics: Vec<(&'static str, f64)>,
}

impl PreferenceLoss {
    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

fn check_1d(ts: &[(&Tensor, &str)]) -> Result<usize> {
    let mut n = None;
    for (t, what) in ts {
        let len = t
            .dims1()
            .map_err(|_| TrainError::Shape(format!("{what}: expected (N,), got {:?}", t.dims())))?;
        match n {
            None => n = Some(len),
            Some(m) if m != len => {
                return Err(TrainError::Shape(format!(
                    "{what}: length {len}, expected {m}"
                )))
            }
            _ => {}
        }
    }
    match n {
        Some(0) | None => Err(TrainError::Empty(
            "a preference batch with no examples".into(),
        )),
        Some(n) => Ok(n),
    }
}

fn host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Numerically stable `log σ(x) = n − log(eⁿ + e^{n−x})` with `n = min(x, 0)`
/// (differentiable, with the exact derivative ½ at 0).
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let n = x.minimum(0.0)?;
    let z = (n.exp()? + (&n - x)?.exp()?)?;
    Ok((n - z.log()?)?)
}

/// `σ(x) = exp(log σ(x))` (differentiable).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(log_sigmoid(x)?.exp()?)
}

fn reward_metrics(chosen: &[f64], rejected: &[f64]) -> Vec<(&'static str, f64)> {
    let margins: Vec<f64> = chosen.iter().zip(rejected).map(|(c, r)| c - r).collect();
    let acc: Vec<f64> = margins
        .iter()
        .map(|&m| if m > 0.0 { 1.0 } else { 0.0 })
        .collect();
    vec![
        ("rewards/chosen", mean(chosen)),
        ("rewards/rejected", mean(rejected)),
        ("rewards/margins", mean(&margins)),
        ("rewards/accuracies", mean(&acc)),
    ]
}

/// Implicit rewards `β·(logπ − logπ_ref)` of chosen and rejected, on the host.
fn implicit_rewards(
    pc: &Tensor,
    pr: &Tensor,
    rc: &Tensor,
    rr: &Tensor,
    beta: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (pc, pr, rc, rr) = (host(pc)?, host(pr)?, host(rc)?, host(rr)?);
    let c = pc.iter().zip(&rc).map(|(p, r)| beta * (p - r)).collect();
    let r = pr.iter().zip(&rr).map(|(p, r)| beta * (p - r)).collect();
    Ok((c, r))
}

/// The DPO/IPO logit `h = (logπ(y_w) − logπ(y_l)) − (logπ_ref(y_w) − logπ_ref(y_l))`.
fn pair_logits(pc: &Tensor, pr: &Tensor, rc: &Tensor, rr: &Tensor) -> Result<Tensor> {
    let dtype = pc.dtype();
    let rc = rc.to_dtype(dtype)?.detach();
    let rr = rr.to_dtype(dtype)?.detach();
    Ok(((pc - pr)? - (rc - rr)?)?)
}

/// DPO (Rafailov et al. 2023): `L = −(1−ε)·log σ(β·h) − ε·log σ(−β·h)` averaged over pairs,
/// with `h` the log-ratio margin and ε the label smoothing (cDPO; 0 for plain DPO).
/// Metrics: `rewards/{chosen,rejected,margins,accuracies}` with rewards `β·(logπ − logπ_ref)`.
pub fn dpo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
    label_smoothing: f64,
) -> Result<PreferenceLoss> {
    check_1d(&[
        (policy_chosen, "policy_chosen"),
        (policy_rejected, "policy_rejected"),
        (ref_chosen, "ref_chosen"),
        (ref_rejected, "ref_rejected"),
    ])?;
    if (beta.is_nan() || beta <= 0.0) || !(0.0..0.5).contains(&label_smoothing) {
        return Err(TrainError::Input(format!(
            "dpo needs beta > 0 and 0 <= label_smoothing < 0.5 (got {beta}, {label_smoothing})"
        )));
    }
    let h =
        pair_logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected)?.affine(beta, 0.0)?;
    let l = (log_sigmoid(&h)?.affine(-(1.0 - label_smoothing), 0.0)?
        - log_sigmoid(&h.neg()?)?.affine(label_smoothing, 0.0)?)?;
    let loss = l.mean_all()?;
    let (c, r) = implicit_rewards(
        policy_chosen,
        policy_rejected,
        ref_chosen,
        ref_rejected,
        beta,
    )?;
    Ok(PreferenceLoss {
        loss,
        metrics: reward_metrics(&c, &r),
    })
}

/// IPO (Azar et al. 2023): `L = (h − 1/(2β))²` averaged over pairs, with `h` the log-ratio
/// margin (τ = β). Metrics as [`dpo_loss`].
pub fn ipo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
) -> Result<PreferenceLoss> {
    check_1d(&[
        (policy_chosen, "policy_chosen"),
        (policy_rejected, "policy_rejected"),
        (ref_chosen, "ref_chosen"),
        (ref_rejected, "ref_rejected"),
    ])?;
    if beta.is_nan() || beta <= 0.0 {
        return Err(TrainError::Input(format!("ipo needs beta > 0, got {beta}")));
    }
    let h = pair_logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected)?;
    let loss = (h - 1.0 / (2.0 * beta))?.sqr()?.mean_all()?;
    let (c, r) = implicit_rewards(
        policy_chosen,
        policy_rejected,
        ref_chosen,
        ref_rejected,
        beta,
    )?;
    Ok(PreferenceLoss {
        loss,
        metrics: reward_metrics(&c, &r),
    })
}

/// KTO's reference point z₀.
#[derive(Clone, Copy, Debug)]
pub enum KlReference<'a> {
    /// Estimated as `max(0, mean(logπ(y'|x) − logπ_ref(y'|x)))` over mismatched pairs
    /// (completions paired with other prompts), detached (Ethayarajh et al. 2024).
    Mismatched {
        /// Policy log-probs of the mismatched completions.
        policy: &'a Tensor,
        /// Reference log-probs of the same.
        reference: &'a Tensor,
    },
    /// A given value (clamped at 0).
    Value(f64),
}

/// KTO (Ethayarajh et al. 2024): with `r = logπ − logπ_ref` and the reference point z₀,
/// desirable examples cost `λ_D·(1 − σ(β(r − z₀)))`, undesirable ones
/// `λ_U·(1 − σ(β(z₀ − r)))`; mean over all examples. Metrics: `kl` (z₀),
/// `rewards/chosen`, `rewards/rejected` (mean `β·r` of desirable / undesirable examples),
/// `rewards/margins`.
#[allow(clippy::too_many_arguments)]
pub fn kto_loss(
    policy_logps: &Tensor,
    ref_logps: &Tensor,
    desirable: &[bool],
    kl: KlReference<'_>,
    beta: f64,
    desirable_weight: f64,
    undesirable_weight: f64,
) -> Result<PreferenceLoss> {
    let n = check_1d(&[(policy_logps, "policy_logps"), (ref_logps, "ref_logps")])?;
    if desirable.len() != n {
        return Err(TrainError::Shape(format!(
            "{} labels for {n} examples",
            desirable.len()
        )));
    }
    if (beta.is_nan() || beta <= 0.0) || desirable_weight < 0.0 || undesirable_weight < 0.0 {
        return Err(TrainError::Input(
            "kto needs beta > 0 and non-negative weights".into(),
        ));
    }
    let z0 = match kl {
        KlReference::Value(v) => v.max(0.0),
        KlReference::Mismatched { policy, reference } => {
            check_1d(&[(policy, "kl policy"), (reference, "kl reference")])?;
            let (p, r) = (host(policy)?, host(reference)?);
            mean(&p.iter().zip(&r).map(|(a, b)| a - b).collect::<Vec<_>>()).max(0.0)
        }
    };
    let dtype = policy_logps.dtype();
    let r = (policy_logps - ref_logps.to_dtype(dtype)?.detach())?;
    let sign: Vec<f64> = desirable
        .iter()
        .map(|&d| if d { 1.0 } else { -1.0 })
        .collect();
    let weight: Vec<f64> = desirable
        .iter()
        .map(|&d| {
            if d {
                desirable_weight
            } else {
                undesirable_weight
            }
        })
        .collect();
    let dev = policy_logps.device();
    let sign = Tensor::from_vec(sign, n, dev)?.to_dtype(dtype)?;
    let weight = Tensor::from_vec(weight, n, dev)?.to_dtype(dtype)?;
    // desirable: σ(β(r − z0)); undesirable: σ(β(z0 − r)) = σ(−β(r − z0))
    let arg = ((r.affine(1.0, -z0)? * sign)?).affine(beta, 0.0)?;
    let per = ((sigmoid(&arg)?.neg()? + 1.0)? * weight)?;
    let loss = per.mean_all()?;
    let rh = host(&r)?;
    let chosen: Vec<f64> = rh
        .iter()
        .zip(desirable)
        .filter(|(_, &d)| d)
        .map(|(x, _)| beta * x)
        .collect();
    let rejected: Vec<f64> = rh
        .iter()
        .zip(desirable)
        .filter(|(_, &d)| !d)
        .map(|(x, _)| beta * x)
        .collect();
    Ok(PreferenceLoss {
        loss,
        metrics: vec![
            ("kl", z0),
            ("rewards/chosen", mean(&chosen)),
            ("rewards/rejected", mean(&rejected)),
            ("rewards/margins", mean(&chosen) - mean(&rejected)),
        ],
    })
}

fn length_normalised(logps: &Tensor, lengths: &[usize], what: &str) -> Result<Tensor> {
    let n = logps.dims1()?;
    if lengths.len() != n {
        return Err(TrainError::Shape(format!(
            "{what}: {} lengths for {n} responses",
            lengths.len()
        )));
    }
    if lengths.contains(&0) {
        return Err(TrainError::Input(format!("{what}: a response of length 0")));
    }
    let inv: Vec<f64> = lengths.iter().map(|&l| 1.0 / l as f64).collect();
    let inv = Tensor::from_vec(inv, n, logps.device())?.to_dtype(logps.dtype())?;
    Ok((logps * inv)?)
}

/// ORPO (Hong et al. 2024): with length-normalised log-probs `p = logπ(y)/|y|`,
/// `log odds(y) = p − log(1 − e^p)`, `L = −p_w + λ·(−log σ(log odds(y_w) − log odds(y_l)))`
/// averaged over pairs (the first term is the chosen response's token-mean NLL). Metrics:
/// `rewards/*` with rewards `λ·p`, `log_odds_ratio` (mean log σ), `log_odds_chosen` (mean
/// log-odds difference), `nll_loss`.
pub fn orpo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    chosen_lengths: &[usize],
    rejected_lengths: &[usize],
    lambda: f64,
) -> Result<PreferenceLoss> {
    check_1d(&[
        (policy_chosen, "policy_chosen"),
        (policy_rejected, "policy_rejected"),
    ])?;
    let pc = length_normalised(policy_chosen, chosen_lengths, "chosen")?;
    let pr = length_normalised(policy_rejected, rejected_lengths, "rejected")?;
    let (hc, hr) = (host(&pc)?, host(&pr)?);
    if hc.iter().chain(&hr).any(|&p| p.is_nan() || p >= 0.0) {
        return Err(TrainError::Input(
            "orpo needs log-probs < 0 (probabilities below 1)".into(),
        ));
    }
    let log1m = |p: &Tensor| -> Result<Tensor> { Ok((p.exp()?.neg()? + 1.0)?.log()?) };
    let odds = ((&pc - &pr)? - (log1m(&pc)? - log1m(&pr)?)?)?;
    let ls = log_sigmoid(&odds)?;
    let nll = pc.neg()?.mean_all()?;
    let loss = (&nll - ls.mean_all()?.affine(lambda, 0.0)?)?;
    let c: Vec<f64> = hc.iter().map(|p| lambda * p).collect();
    let r: Vec<f64> = hr.iter().map(|p| lambda * p).collect();
    let mut metrics = reward_metrics(&c, &r);
    metrics.push(("log_odds_ratio", mean(&host(&ls)?)));
    metrics.push(("log_odds_chosen", mean(&host(&odds)?)));
    metrics.push(("nll_loss", nll.to_dtype(DType::F64)?.to_scalar::<f64>()?));
    Ok(PreferenceLoss { loss, metrics })
}

/// SimPO (Meng et al. 2024): `L = −log σ(β·logπ(y_w)/|y_w| − β·logπ(y_l)/|y_l| − γ)`
/// averaged over pairs (reference-free, length-normalised, target margin γ). Metrics:
/// `rewards/*` with rewards `β·logπ(y)/|y|`.
pub fn simpo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    chosen_lengths: &[usize],
    rejected_lengths: &[usize],
    beta: f64,
    gamma: f64,
) -> Result<PreferenceLoss> {
    check_1d(&[
        (policy_chosen, "policy_chosen"),
        (policy_rejected, "policy_rejected"),
    ])?;
    if beta.is_nan() || beta <= 0.0 {
        return Err(TrainError::Input(format!(
            "simpo needs beta > 0, got {beta}"
        )));
    }
    let pc = length_normalised(policy_chosen, chosen_lengths, "chosen")?.affine(beta, 0.0)?;
    let pr = length_normalised(policy_rejected, rejected_lengths, "rejected")?.affine(beta, 0.0)?;
    let logits = ((&pc - &pr)? - gamma)?;
    let loss = log_sigmoid(&logits)?.neg()?.mean_all()?;
    Ok(PreferenceLoss {
        loss,
        metrics: reward_metrics(&host(&pc)?, &host(&pr)?),
    })
}

/// RRHF (Yuan et al. 2023) over k ranked responses per query: with length-normalised scores
/// `s_i = logπ(y_i)/|y_i|` and rewards `r_i`,
/// `L_rank = Σ_{r_i < r_j} max(0, s_i − s_j)`, `L_ft = −s_best` (token-mean NLL of the
/// highest-reward response, first on ties), `L = mean over queries of (w·L_rank + L_ft)`.
/// `logps`, `lengths`, `rewards` are (N, k). Metrics: `rank_loss`, `sft_loss`,
/// `rank_accuracy` (fraction of strictly ordered pairs the scores order the same way).
pub fn rrhf_loss(
    logps: &Tensor,
    lengths: &[Vec<usize>],
    rewards: &[Vec<f64>],
    rank_weight: f64,
) -> Result<PreferenceLoss> {
    let (n, k) = logps.dims2().map_err(|_| {
        TrainError::Shape(format!("logps: expected (N, k), got {:?}", logps.dims()))
    })?;
    if n == 0 || k == 0 {
        return Err(TrainError::Empty(
            "rrhf needs at least one query and one response".into(),
        ));
    }
    if lengths.len() != n || rewards.len() != n {
        return Err(TrainError::Shape(
            "lengths/rewards must have one row per query".into(),
        ));
    }
    if lengths.iter().any(|l| l.len() != k) || rewards.iter().any(|r| r.len() != k) {
        return Err(TrainError::Shape(format!(
            "lengths/rewards rows must have {k} entries"
        )));
    }
    if lengths.iter().flatten().any(|&l| l == 0) {
        return Err(TrainError::Input("rrhf: a response of length 0".into()));
    }
    let dtype = logps.dtype();
    let inv: Vec<f64> = lengths.iter().flatten().map(|&l| 1.0 / l as f64).collect();
    let inv = Tensor::from_vec(inv, (n, k), logps.device())?.to_dtype(dtype)?;
    let s = (logps * inv)?;
    // pair masks: pairs[q, i, j] = 1 when r_i < r_j; best one-hot per query
    let mut pairs = vec![0.0; n * k * k];
    let mut best = vec![0.0; n * k];
    let (mut ordered, mut agree) = (0usize, 0usize);
    let sh = s.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
    for q in 0..n {
        let r = &rewards[q];
        let mut b = 0;
        for i in 0..k {
            if r[i] > r[b] {
                b = i;
            }
            for j in 0..k {
                if r[i] < r[j] {
                    pairs[(q * k + i) * k + j] = 1.0;
                    ordered += 1;
                    if sh[q][i] < sh[q][j] {
                        agree += 1;
                    }
                }
            }
        }
        best[q * k + b] = 1.0;
    }
    let pairs = Tensor::from_vec(pairs, (n, k, k), logps.device())?.to_dtype(dtype)?;
    let best = Tensor::from_vec(best, (n, k), logps.device())?.to_dtype(dtype)?;
    // diff[q, i, j] = s_i − s_j
    let diff = s.unsqueeze(2)?.broadcast_sub(&s.unsqueeze(1)?)?;
    let rank = (diff.relu()? * pairs)?.sum((1, 2))?;
    let sft = (&s * best)?.sum(1)?.neg()?;
    let per = (rank.affine(rank_weight, 0.0)? + &sft)?;
    let loss = per.mean_all()?;
    let rank_mean = mean(&host(&rank)?);
    let sft_mean = mean(&host(&sft)?);
    Ok(PreferenceLoss {
        loss,
        metrics: vec![
            ("rank_loss", rank_mean),
            ("sft_loss", sft_mean),
            (
                "rank_accuracy",
                if ordered == 0 {
                    1.0
                } else {
                    agree as f64 / ordered as f64
                },
            ),
        ],
    })
}
