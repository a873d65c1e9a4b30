//! `rlvr train`: a run from start to summary — run directory, policy (built-in + warm-up, or
//! a user checkpoint), data, evaluation before, the RL steps with metrics/store/checkpoints,
//! evaluation after, plots and `summary.json`. Resumes from the newest checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use indicatif::ProgressBar;
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
use rlvr_rewards::Verifiers;

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
    Ok(cfg.model.device.open()?)
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

/// What `train` resumes from: the run, its resolved config, its newest checkpoint.
type Resolved = (Option<RunDir>, TrainConfig, Option<PathBuf>);

/// The options' config, or the resumed run's resolved config and newest checkpoint.
fn resolve(opts: &RunOptions) -> Result<Resolved> {
    Ok(match &opts.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let text = run.read_config()?;
            let path = run.path().join("config.resolved.toml");
            let cfg = TrainConfig::from_toml(&text, &path.display().to_string(), &[])?;
            let ckpt = checkpoint::latest(&run.checkpoints_dir())?;
            (Some(run), cfg, ckpt)
        }
        None => (None, opts.config.clone(), None),
    })
}

/// The training prompts and the held-out problems (data first: a mistake there costs
/// nothing — no run directory, no warm-up).
fn load_data(cfg: &TrainConfig) -> Result<(PromptSource, Vec<Example>)> {
    let mut train_examples = if cfg.data.train == "arithmetic" {
        None
    } else {
        Some(load_dataset(&cfg.data.train, cfg)?)
    };
    let heldout = heldout(cfg, &mut train_examples)?;
    let source = match train_examples {
        None => PromptSource::Arithmetic {
            task: arithmetic(cfg)?,
            seed: cfg.seed,
        },
        Some(examples) if examples.is_empty() => {
            return Err(LoopError::config("data.train", "the training set is empty"))
        }
        Some(examples) => PromptSource::dataset(examples, cfg.seed),
    };
    Ok((source, heldout))
}

/// The run directory (created with its config, or the resumed one) with `meta.json` written.
fn open_run(
    existing: Option<RunDir>,
    cfg: &TrainConfig,
    opts: &RunOptions,
    resumed_step: Option<usize>,
) -> Result<RunDir> {
    let run = match existing {
        Some(run) => run,
        None => {
            let run = RunDir::create(opts.run_dir.as_deref(), &cfg.name)?;
            run.write_config(&cfg.to_toml()?)?;
            run
        }
    };
    run.write_meta(&RunMeta::now(
        cfg.seed,
        opts.command.clone(),
        resumed_step.map(|s| s as u64),
    ))?;
    tracing::info!(run_dir = %run.path().display(), "run directory");
    Ok(run)
}

/// The models of a run.
struct Models {
    /// The weights RL started from (the reference policy's, and the critic's first).
    base: PathBuf,
    policy: ModelDir,
    reference: Option<ModelDir>,
}

/// The policy (the checkpoint when resuming), the reference policy when the algorithm needs
/// one; the built-in policy is warmed up (cached) when no model is given.
fn load_models(
    cfg: &TrainConfig,
    resume: (Option<&PathBuf>, Option<&TrainerState>),
    device: &Device,
    extra: &mut Map<String, Value>,
    progress: bool,
) -> Result<Models> {
    let dtype = rlvr_model::parse_dtype(&cfg.model.dtype);
    let base: PathBuf = match (&cfg.model.path, resume.1) {
        (_, Some(st)) if st.base_model.join("config.json").exists() => st.base_model.clone(),
        (Some(p), _) => p.clone(),
        (None, _) => {
            let w = warmup::prepare_builtin(cfg, device, progress)?;
            extra.insert("warmup".into(), json!(w));
            w.dir
        }
    };
    let policy = ModelDir::load(resume.0.unwrap_or(&base), device, dtype)?;
    let reference = if cfg.algorithm.needs(1).reference {
        Some(ModelDir::load(&base, device, dtype)?)
    } else {
        None
    };
    Ok(Models {
        base,
        policy,
        reference,
    })
}

/// The runtime of the verifier pool.
fn verify_runtime(cfg: &TrainConfig) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(cfg.trainer.verify_concurrency.max(1))
        .enable_all()
        .build()
        .map_err(|e| LoopError::Other(format!("tokio runtime: {e}")))
}

/// Where steps are logged: the store, `metrics.jsonl`, TensorBoard.
struct StepLog {
    store: Store,
    metrics: MetricsLog,
    tb: EventWriter,
}

impl StepLog {
    /// Opens the logs; when resuming, anything logged after the checkpoint's step is dropped
    /// (those steps are redone).
    fn open(run: &RunDir, start_step: usize, resuming: bool) -> Result<Self> {
        let store = Store::open(&run.store_dir())?;
        let path = run.metrics_path();
        if resuming {
            store.truncate_after(start_step as u64)?;
            if path.exists() {
                MetricsLog::truncate_after(&path, start_step as u64)?;
            }
        }
        Ok(StepLog {
            store,
            metrics: MetricsLog::open(&path)?,
            tb: EventWriter::create(&run.path().join("tensorboard"))?,
        })
    }

    /// Writes step `done`'s metrics and (the first `keep`, 0 = all) rollouts, then flushes.
    fn write(
        &mut self,
        done: usize,
        m: &Map<String, Value>,
        samples: &[Sample],
        keep: usize,
    ) -> Result<()> {
        let mut rec = Map::new();
        rec.insert("step".into(), json!(done));
        rec.extend(m.clone());
        let rec = Value::Object(rec);
        let keep = if keep == 0 {
            samples.len()
        } else {
            keep.min(samples.len())
        };
        let rollouts: Vec<Value> = samples[..keep].iter().map(|s| record(done, s)).collect();
        self.store.put_rollouts(done as u64, &rollouts)?;
        self.store.put_metrics(done as u64, &rec)?;
        self.metrics.append(&rec)?;
        self.tb.add_scalars(done as u64, m)?;
        self.store.flush()?;
        self.metrics.flush()?;
        self.tb.flush()?;
        Ok(())
    }
}

/// The held-out evaluation before RL (cached in the store, so a resumed run does not redo it).
fn eval_before(
    cfg: &TrainConfig,
    store: &Store,
    policy: &ModelDir,
    heldout: &[Example],
    verifiers: &Verifiers,
) -> Result<Option<EvalResult>> {
    let r = if !cfg.eval.before {
        return Ok(None);
    } else if let Some(v) = store.get_state("eval_before")? {
        serde_json::from_value(v).ok()
    } else {
        let r = evaluate(policy, heldout, verifiers, cfg)?;
        tracing::info!(accuracy = r.accuracy, "held-out accuracy before RL");
        store.put_state("eval_before", &json!(r))?;
        store.flush()?;
        Some(r)
    };
    if let Some(r) = &r {
        eprintln!("eval before RL: {}", describe(r));
    }
    Ok(r)
}

/// The periodic held-out evaluation's metrics (`eval/…`) after step `done`, when due.
fn periodic_eval(
    t: &Trainer,
    done: usize,
    heldout: &[Example],
    m: &mut Map<String, Value>,
) -> Result<()> {
    let cfg = t.cfg;
    if cfg.eval.every == 0 || !done.is_multiple_of(cfg.eval.every) || done >= cfg.trainer.steps {
        return Ok(());
    }
    let r = evaluate(t.policy, heldout, t.verifiers, cfg)?;
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
    Ok(())
}

/// The policy's optimiser, with its moments restored when resuming.
fn optimizer(
    cfg: &TrainConfig,
    policy: &ModelDir,
    resume: (Option<&PathBuf>, Option<&TrainerState>),
    device: &Device,
) -> Result<AdamW> {
    let mut opt = AdamW::new(policy.model.vars(), cfg.algorithm.optim)?;
    if let (Some(dir), Some(st)) = resume {
        checkpoint::load_optimizer(dir, policy, &mut opt, st.optimizer_steps, device)?;
        eprintln!("resumed from {} (step {})", dir.display(), st.step);
    }
    Ok(opt)
}

/// The critic when the algorithm needs one: from the base weights, or the checkpoint's.
fn critic(
    cfg: &TrainConfig,
    base: &Path,
    resume_from: Option<&PathBuf>,
    device: &Device,
) -> Result<Option<Critic>> {
    let algo = &cfg.algorithm;
    let Some(c) = algo.critic.as_ref().filter(|_| algo.needs(1).critic) else {
        return Ok(None);
    };
    let dtype = rlvr_model::parse_dtype(&cfg.model.dtype);
    Ok(Some(match resume_from {
        Some(dir) => Critic::load(&dir.join(checkpoint::CRITIC), device, dtype, c.optim)?,
        None => Critic::new(ModelDir::load(base, device, dtype)?, c.optim)?,
    }))
}

/// Saves a checkpoint of the trainer after `done` steps.
fn save_checkpoint(t: &Trainer, done: usize, base: &Path, root: &Path) -> Result<()> {
    let cfg = t.cfg;
    let state = TrainerState {
        step: done,
        data_pos: t.data_pos,
        optimizer_steps: t.opt.steps(),
        seed: cfg.seed,
        base_model: base.to_path_buf(),
    };
    checkpoint::save(
        root,
        t.policy,
        t.opt,
        t.critic.as_deref(),
        &state,
        cfg.trainer.keep_checkpoints,
    )?;
    Ok(())
}

/// Progress bar message and log line of a finished step.
fn report_step(pb: &ProgressBar, done: usize, m: &Map<String, Value>) {
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

/// The RL steps `start..steps`: each logged, checkpointed when due (and at the end), with the
/// periodic evaluation.
fn run_steps(
    t: &mut Trainer,
    start: usize,
    log: &mut StepLog,
    heldout: &[Example],
    (base, root): (&Path, &Path),
    progress: bool,
) -> Result<()> {
    let cfg = t.cfg;
    let steps = cfg.trainer.steps;
    let pb = bar(steps as u64, "RL", progress);
    pb.set_position(start as u64);
    for step in start..steps {
        let out = t.step(step)?;
        let done = step + 1;
        let mut m = out.metrics;
        periodic_eval(t, done, heldout, &mut m)?;
        log.write(done, &m, &out.samples, cfg.trainer.store_rollouts)?;
        let every = cfg.trainer.save_every;
        if (every > 0 && done % every == 0) || done == steps {
            save_checkpoint(t, done, base, root)?;
        }
        report_step(&pb, done, &m);
    }
    pb.finish_and_clear();
    // Nothing trained in this process: make sure a final checkpoint exists.
    if (steps == 0 || start >= steps) && checkpoint::latest(root)?.is_none() {
        save_checkpoint(t, start, base, root)?;
    }
    Ok(())
}

/// Runs (or resumes) training; returns the summary. Stages: resolve the config → data → run
/// directory → models → evaluation before → RL steps → evaluation after → plots and summary.
pub fn train(opts: RunOptions) -> Result<Value> {
    let started = Instant::now();
    let (existing, cfg, resume_from) = resolve(&opts)?;
    let (source, heldout) = load_data(&cfg)?;
    let resume_state = match &resume_from {
        Some(dir) => Some(checkpoint::read_state(dir)?),
        None => None,
    };
    let run = open_run(existing, &cfg, &opts, resume_state.as_ref().map(|s| s.step))?;
    let device = device(&cfg)?;
    let resume = (resume_from.as_ref(), resume_state.as_ref());
    let mut extra = Map::new();
    let models = load_models(&cfg, resume, &device, &mut extra, opts.progress)?;
    let verifiers = Verifiers::new(&cfg.verifier, &cfg.verifier_by_source)
        .map_err(|e| LoopError::config("verifier", e.to_string()))?;
    let rt = verify_runtime(&cfg)?;
    let start_step = resume_state.as_ref().map_or(0, |s| s.step);
    let resuming = resume_state.is_some() || opts.resume.is_some();
    let mut log = StepLog::open(&run, start_step, resuming)?;
    let before = eval_before(&cfg, &log.store, &models.policy, &heldout, &verifiers)?;
    let mut opt = optimizer(&cfg, &models.policy, resume, &device)?;
    let mut critic = critic(&cfg, &models.base, resume_from.as_ref(), &device)?;
    let mut trainer = Trainer {
        cfg: &cfg,
        policy: &models.policy,
        reference: models.reference.as_ref().map(|r| &r.model),
        opt: &mut opt,
        verifiers: &verifiers,
        source: &source,
        rt: &rt,
        data_pos: resume_state.as_ref().map_or(0, |s| s.data_pos),
        critic: critic.as_mut(),
    };
    let dirs = (models.base.as_path(), run.checkpoints_dir());
    run_steps(
        &mut trainer,
        start_step,
        &mut log,
        &heldout,
        (dirs.0, &dirs.1),
        opts.progress,
    )?;
    let after = if cfg.eval.after {
        let r = evaluate(&models.policy, &heldout, &verifiers, &cfg)?;
        eprintln!("eval after RL: {}", describe(&r));
        Some(r)
    } else {
        None
    };
    if let Some(st) = &resume_state {
        extra.insert("resumed_from_step".into(), json!(st.step));
    }
    let s = finish(&run, &cfg, (&before, &after), started, extra)?;
    rt.shutdown_background();
    Ok(s)
}

/// Plots and `summary.json`.
fn finish(
    run: &RunDir,
    cfg: &TrainConfig,
    (before, after): (&Option<EvalResult>, &Option<EvalResult>),
    started: Instant,
    mut extra: Map<String, Value>,
) -> Result<Value> {
    let metrics = rlvr_store::read_metrics(&run.metrics_path())?;
    let plots = rlvr_store::plot_metrics(&metrics, PLOTTED, &run.plots_dir())?;
    extra.insert("plots".into(), json!(plots));
    extra.insert("run_dir".into(), json!(run.path()));
    extra.insert("algorithm".into(), json!(cfg.algorithm.preset));
    let s = summary(
        before,
        after,
        cfg.trainer.steps,
        started.elapsed().as_secs_f64(),
        extra,
    );
    run.write_summary(&s)?;
    Ok(s)
}

/// The run directory a summary names.
pub fn run_dir_of(summary: &Value) -> Option<&Path> {
    summary
        .get("run_dir")
        .and_then(Value::as_str)
        .map(Path::new)
}
