//! `rlvr train`: a run from start to summary — run directory, policy (built-in + warm-up, or
//! a user checkpoint), data, evaluation before, the RL steps with metrics/store/checkpoints,
//! evaluation after, plots and `summary.json`. Resumes from the newest checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use rlvr_data::tasks::ArithmeticTask;
use rlvr_data::Example;
use rlvr_model::ModelDir;
use rlvr_store::{EventWriter, MetricsLog, RunDir, RunMeta, Store};
use rlvr_train::optim::AdamW;
use serde_json::{json, Map, Value};

use crate::checkpoint::{self, TrainerState};
use crate::config::TrainConfig;
use crate::critic::Critic;
use crate::error::{LoopError, Result};
use crate::evaluate::{evaluate, EvalResult};
pub use crate::progress::bar;
use crate::prompts::PromptSource;
use crate::trainer::{Sample, Trainer};
use crate::warmup;
use rlvr_eval::verify_pool::Verifiers;

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The configuration (ignored when resuming: the run's resolved config is used).
    pub config: TrainConfig,
    /// Run directory (default `runs/<timestamp>-<name>`).
    pub run_dir: Option<PathBuf>,
    /// Resume this run directory.
    pub resume: Option<PathBuf>,
    /// Show progress bars (only drawn on a terminal).
    pub progress: bool,
    /// The command line, for `meta.json`.
    pub command: Vec<String>,
}

fn device(cfg: &TrainConfig) -> Result<Device> {
    Ok(rlvr_model::device(cfg.model.cuda)?)
}

/// The held-out examples.
fn heldout(cfg: &TrainConfig, train: &mut Option<Vec<Example>>) -> Result<Vec<Example>> {
    if cfg.data.heldout.is_empty() && cfg.data.train == "arithmetic" {
        let task = arithmetic(cfg)?;
        return Ok(task
            .heldout(cfg.seed, cfg.data.heldout_size)
            .iter()
            .enumerate()
            .map(|(i, p)| task.example(p, format!("arithmetic-heldout-{i}")))
            .collect());
    }
    if cfg.data.heldout.is_empty() || cfg.data.heldout == cfg.data.train {
        // Split off the first heldout_size examples of a shuffled copy of the training set.
        let all = train.take().unwrap_or_default();
        let order = rlvr_data::rng::permutation(all.len(), cfg.seed ^ 0x4e1d, 0);
        let k = cfg.data.heldout_size.min(all.len() / 2);
        let mut held = Vec::new();
        let mut rest = Vec::new();
        for (rank, i) in order.into_iter().enumerate() {
            if rank < k {
                held.push(all[i].clone());
            } else {
                rest.push(all[i].clone());
            }
        }
        *train = Some(rest);
        return Ok(held);
    }
    let mut ds = load_dataset(&cfg.data.heldout, cfg)?;
    ds.truncate(cfg.data.heldout_size);
    Ok(ds)
}

fn arithmetic(cfg: &TrainConfig) -> Result<ArithmeticTask> {
    ArithmeticTask::new(cfg.data.arithmetic.clone())
        .map_err(|e| LoopError::config("data.arithmetic", e.to_string()))
}

fn load_dataset(name: &str, cfg: &TrainConfig) -> Result<Vec<Example>> {
    let shared = rlvr_data::default_shared_dir().unwrap_or_else(|_| PathBuf::from("../shared"));
    Ok(rlvr_data::resolve_dataset_with(name, &shared, &cfg.data.mapping)?.examples)
}

fn describe(r: &EvalResult) -> String {
    let greedy = r
        .greedy_accuracy
        .map(|g| format!(", greedy {:.1}%", 100.0 * g))
        .unwrap_or_default();
    format!(
        "accuracy {:.1}% ({} samples per problem at temperature {}){greedy} on {} held-out problems",
        100.0 * r.accuracy,
        r.n,
        r.temperature,
        r.num_problems
    )
}

/// The summary written to `summary.json`.
fn summary(
    before: &Option<EvalResult>,
    after: &Option<EvalResult>,
    steps: usize,
    wall: f64,
    extra: Map<String, Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("eval_before".into(), json!(before));
    m.insert("eval_after".into(), json!(after));
    if let (Some(b), Some(a)) = (before, after) {
        m.insert("accuracy_gain".into(), json!(a.accuracy - b.accuracy));
    }
    m.insert("steps".into(), json!(steps));
    m.insert("wall_seconds".into(), json!(wall));
    m.extend(extra);
    Value::Object(m)
}

/// Keys plotted at the end.
pub const PLOTTED: &[&str] = &[
    "reward/mean",
    "accuracy",
    "response_length/mean",
    "actor/kl_ref",
    "actor/entropy",
    "actor/grad_norm",
    "eval/accuracy",
];

fn record(step: usize, s: &Sample) -> Value {
    json!({
        "step": step,
        "prompt_key": s.key,
        "sample_index": s.completion.sample_index,
        "data_source": s.data_source,
        "prompt": s.prompt_text.as_str(),
        "completion": s.completion.text,
        "tokens": s.completion.tokens,
        "finish_reason": s.completion.finish_reason.as_str(),
        "truncated": s.completion.truncated,
        "reward": s.reward,
        "score": s.outcome.score,
        "status": s.outcome.status.as_str(),
        "details": s.outcome.details,
    })
}

/// Runs (or resumes) training; returns the summary.
pub fn train(opts: RunOptions) -> Result<Value> {
    let started = Instant::now();
    let (existing, cfg, resume_from) = match &opts.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let text = run.read_config()?;
            let path = run.path().join("config.resolved.toml");
            let cfg = TrainConfig::from_toml(&text, &path.display().to_string(), &[])?;
            let ckpt = checkpoint::latest(&run.checkpoints_dir())?;
            (Some(run), cfg, ckpt)
        }
        None => (None, opts.config.clone(), None),
    };
    // Data first: a mistake there costs nothing (no run directory, no warm-up).
    let mut train_examples = if cfg.data.train == "arithmetic" {
        None
    } else {
        Some(load_dataset(&cfg.data.train, &cfg)?)
    };
    let heldout = heldout(&cfg, &mut train_examples)?;
    let source = match train_examples {
        None => PromptSource::Arithmetic {
            task: arithmetic(&cfg)?,
            seed: cfg.seed,
        },
        Some(examples) => {
            if examples.is_empty() {
                return Err(LoopError::config("data.train", "the training set is empty"));
            }
            PromptSource::dataset(examples, cfg.seed)
        }
    };

    let run = match existing {
        Some(run) => run,
        None => {
            let run = RunDir::create(opts.run_dir.as_deref(), &cfg.name)?;
            run.write_config(&cfg.to_toml()?)?;
            run
        }
    };
    let resume_state = match &resume_from {
        Some(dir) => Some(checkpoint::read_state(dir)?),
        None => None,
    };
    run.write_meta(&RunMeta::now(
        cfg.seed,
        opts.command.clone(),
        resume_state.as_ref().map(|s| s.step as u64),
    ))?;
    tracing::info!(run_dir = %run.path().display(), "run directory");
    let device = device(&cfg)?;
    let dtype = rlvr_model::parse_dtype(&cfg.model.dtype);

    // The policy RL starts from.
    let mut extra = Map::new();
    let base: PathBuf = match (&cfg.model.path, &resume_state) {
        (_, Some(st)) if st.base_model.join("config.json").exists() => st.base_model.clone(),
        (Some(p), _) => p.clone(),
        (None, _) => {
            let w = warmup::prepare_builtin(&cfg, &device, opts.progress)?;
            extra.insert("warmup".into(), json!(w));
            w.dir
        }
    };
    let policy_dir = resume_from.clone().unwrap_or_else(|| base.clone());
    let policy = ModelDir::load(&policy_dir, &device, dtype)?;
    let algo = &cfg.algorithm;
    let reference = if algo.kl.use_kl_loss || algo.kl.use_kl_in_reward {
        Some(ModelDir::load(&base, &device, dtype)?)
    } else {
        None
    };
    let verifiers = Verifiers::new(&cfg.verifier, &cfg.verifier_by_source)
        .map_err(|e| LoopError::config("verifier", e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(cfg.trainer.verify_concurrency.max(1))
        .enable_all()
        .build()
        .map_err(|e| LoopError::Other(format!("tokio runtime: {e}")))?;

    let store = Store::open(&run.store_dir())?;
    let metrics_path = run.metrics_path();
    let start_step = resume_state.as_ref().map_or(0, |s| s.step);
    if resume_state.is_some() || opts.resume.is_some() {
        // Anything logged after the checkpoint is redone.
        store.truncate_after(start_step as u64)?;
        if metrics_path.exists() {
            MetricsLog::truncate_after(&metrics_path, start_step as u64)?;
        }
    }
    let mut mlog = MetricsLog::open(&metrics_path)?;
    let mut tb = EventWriter::create(&run.path().join("tensorboard"))?;

    let eval_before = if !cfg.eval.before {
        None
    } else if let Some(v) = store.get_state("eval_before")? {
        serde_json::from_value(v).ok()
    } else {
        let r = evaluate(&policy, &heldout, &verifiers, &cfg)?;
        tracing::info!(accuracy = r.accuracy, "held-out accuracy before RL");
        store.put_state("eval_before", &json!(r))?;
        store.flush()?;
        Some(r)
    };
    if let Some(r) = &eval_before {
        eprintln!("eval before RL: {}", describe(r));
    }

    let mut opt = AdamW::new(policy.model.vars(), algo.optim)?;
    if let (Some(dir), Some(st)) = (&resume_from, &resume_state) {
        checkpoint::load_optimizer(dir, &policy, &mut opt, st.optimizer_steps, &device)?;
        eprintln!("resumed from {} (step {})", dir.display(), st.step);
    }
    // PPO: the critic starts from the base weights, or resumes from the checkpoint's.
    let mut critic = match (&algo.critic, algo.adv_estimator) {
        (Some(c), rlvr_train::AdvantageEstimator::Gae) => Some(match &resume_from {
            Some(dir) => Critic::load(&dir.join(checkpoint::CRITIC), &device, dtype, c.optim)?,
            None => Critic::new(ModelDir::load(&base, &device, dtype)?, c.optim)?,
        }),
        _ => None,
    };
    let mut trainer = Trainer {
        cfg: &cfg,
        policy: &policy,
        reference: reference.as_ref().map(|r| &r.model),
        opt: &mut opt,
        verifiers: &verifiers,
        source: &source,
        rt: &rt,
        data_pos: resume_state.as_ref().map_or(0, |s| s.data_pos),
        critic: critic.as_mut(),
    };
    let steps = cfg.trainer.steps;
    let pb = bar(steps as u64, "RL", opts.progress);
    pb.set_position(start_step as u64);
    let ckpt_root = run.checkpoints_dir();
    let state_of = |step: usize, t: &Trainer| TrainerState {
        step,
        data_pos: t.data_pos,
        optimizer_steps: t.opt.steps(),
        seed: cfg.seed,
        base_model: base.clone(),
    };
    for step in start_step..steps {
        let out = trainer.step(step)?;
        let mut m = out.metrics;
        if cfg.eval.every > 0 && (step + 1) % cfg.eval.every == 0 && step + 1 < steps {
            let r = evaluate(trainer.policy, &heldout, &verifiers, &cfg)?;
            m.insert("eval/accuracy".into(), json!(r.accuracy));
            if let Value::Object(at_k) = &r.at_k {
                for (k, v) in at_k {
                    m.insert(format!("eval/{k}"), v.clone());
                }
            }
            if let Some(g) = r.greedy_accuracy {
                m.insert("eval/greedy_accuracy".into(), json!(g));
            }
            m.insert("eval/mean_score".into(), json!(r.mean_score));
        }
        let mut rec = Map::new();
        rec.insert("step".into(), json!(step + 1));
        rec.extend(m.clone());
        let rec = Value::Object(rec);
        let keep = if cfg.trainer.store_rollouts == 0 {
            out.samples.len()
        } else {
            cfg.trainer.store_rollouts.min(out.samples.len())
        };
        let rollouts: Vec<Value> = out.samples[..keep]
            .iter()
            .map(|s| record(step + 1, s))
            .collect();
        store.put_rollouts((step + 1) as u64, &rollouts)?;
        store.put_metrics((step + 1) as u64, &rec)?;
        mlog.append(&rec)?;
        tb.add_scalars((step + 1) as u64, &m)?;
        store.flush()?;
        mlog.flush()?;
        tb.flush()?;
        let done = step + 1;
        if (cfg.trainer.save_every > 0 && done % cfg.trainer.save_every == 0) || done == steps {
            checkpoint::save(
                &ckpt_root,
                trainer.policy,
                trainer.opt,
                trainer.critic.as_deref(),
                &state_of(done, &trainer),
                cfg.trainer.keep_checkpoints,
            )?;
        }
        let get = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        pb.set_message(format!(
            "reward {:.3} acc {:.2} len {:.1}",
            get("reward/mean"),
            get("accuracy"),
            get("response_length/mean")
        ));
        pb.inc(1);
        tracing::info!(
            step = done,
            reward = get("reward/mean"),
            accuracy = get("accuracy"),
            kl = get("actor/kl_ref"),
            grad_norm = get("actor/grad_norm"),
            step_s = get("timing/step_s"),
            "step"
        );
    }
    pb.finish_and_clear();
    if steps == 0 || start_step >= steps {
        // Nothing trained in this process: make sure a final checkpoint exists.
        if checkpoint::latest(&ckpt_root)?.is_none() {
            checkpoint::save(
                &ckpt_root,
                trainer.policy,
                trainer.opt,
                trainer.critic.as_deref(),
                &state_of(start_step, &trainer),
                cfg.trainer.keep_checkpoints,
            )?;
        }
    }
    let eval_after = if cfg.eval.after {
        let r = evaluate(&policy, &heldout, &verifiers, &cfg)?;
        eprintln!("eval after RL: {}", describe(&r));
        Some(r)
    } else {
        None
    };
    let metrics = rlvr_store::read_metrics(&metrics_path)?;
    let plots = rlvr_store::plot_metrics(&metrics, PLOTTED, &run.plots_dir())?;
    extra.insert("plots".into(), json!(plots));
    extra.insert("run_dir".into(), json!(run.path()));
    extra.insert("algorithm".into(), json!(cfg.algorithm.preset));
    if let Some(st) = &resume_state {
        extra.insert("resumed_from_step".into(), json!(st.step));
    }
    let s = summary(
        &eval_before,
        &eval_after,
        steps,
        started.elapsed().as_secs_f64(),
        extra,
    );
    run.write_summary(&s)?;
    rt.shutdown_background();
    Ok(s)
}

/// The run directory a summary names.
pub fn run_dir_of(summary: &Value) -> Option<&Path> {
    summary
        .get("run_dir")
        .and_then(Value::as_str)
        .map(Path::new)
}
