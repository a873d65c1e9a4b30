//! An evaluation run on disk (what `rlvr eval` does around [`evaluate`]): the dataset and its
//! verifier, the run directory, the cache in the run's store, and the outputs —
//! `samples.jsonl`, `summary.json`, `report.md`, `plots/pass_at_k.{svg,png}`.
//!
//! Run directory: `runs/<YYYYmmdd-HHMMSS>-eval-<dataset>/` by default. It holds
//! `config.resolved.toml` ([`EvalConfig`]), `meta.json`, `store/` (sled: each problem's
//! samples under `eval/problem/<index>`, flushed after every chunk of problems) and the
//! outputs. With a reranker (`rerank`), every sample is scored by it after sampling
//! ([`crate::rerank`]): `rerank_score` in `samples.jsonl`, `rerank@K` and `rerank_verifier`
//! in the summary. Starting again on a directory that holds a run (same `--out`, or `--resume`)
//! continues it: cached problems are not sampled again; settings that decide the samples must
//! be the same.

use std::path::{Path, PathBuf};

use rlvr_data::{Example, PromptTemplate};
use rlvr_rewards::Verifiers;
use rlvr_store::{RunDir, RunMeta, Store};
use serde_json::{json, Map, Value};

use crate::backend::Backend;
use crate::config::EvalConfig;
use crate::error::{EvalError, Result};
use crate::evaluator::{evaluate, EvalOutput, StoreCache};
use crate::report::markdown_report;
use crate::rerank::{build_reranker, score_samples};
use crate::summary::summarize;

/// The run's settings file (as in every run directory).
pub const CONFIG_FILE: &str = "config.resolved.toml";

/// A dataset loaded for evaluation, with its default verifier.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// The problems (after `limit`).
    pub examples: Vec<Example>,
    /// The file they came from.
    pub source: PathBuf,
    /// The built-in's verifier name, or `math` for files.
    pub default_verifier: String,
}

/// Loads `cfg.dataset`: a built-in name (from `shared_dir`, default
/// [`rlvr_data::default_shared_dir`]) or a file; `cfg.template` replaces the prompt template;
/// only the first `cfg.limit` problems are kept. Malformed records are errors naming
/// `FILE:LINE` (rlvr-data's).
pub fn load_data(cfg: &EvalConfig, shared_dir: Option<&Path>) -> Result<EvalData> {
    let template = match &cfg.template {
        Some(t) => {
            Some(PromptTemplate::new(t).map_err(|e| EvalError::Other(format!("--template: {e}")))?)
        }
        None => None,
    };
    let is_file = Path::new(&cfg.dataset).exists();
    let builtin = if is_file {
        None
    } else {
        rlvr_data::builtin(&cfg.dataset).ok()
    };
    let (dataset, default_verifier) = match builtin {
        Some(mut spec) => {
            let shared = match shared_dir {
                Some(d) => d.to_path_buf(),
                None => rlvr_data::default_shared_dir()?,
            };
            if template.is_some() {
                spec.mapping.template = template;
            }
            (spec.load(&shared)?, spec.verifier.clone())
        }
        None => {
            let mapping = rlvr_data::FieldMapping {
                template,
                ..Default::default()
            };
            let shared = shared_dir.map(Path::to_path_buf).unwrap_or_default();
            (
                rlvr_data::resolve_dataset_with(&cfg.dataset, &shared, &mapping)?,
                "math".to_string(),
            )
        }
    };
    let mut examples = dataset.examples;
    if let Some(l) = cfg.limit {
        examples.truncate(l);
    }
    if examples.is_empty() {
        return Err(EvalError::Other(format!(
            "{}: no problems to evaluate",
            dataset.source.display()
        )));
    }
    Ok(EvalData {
        examples,
        source: dataset.source,
        default_verifier,
    })
}

/// The verifiers of an evaluation: `spec` (a name, or a JSON object when it starts with
/// `{`), else `default`. A verifier that is planned but not built yet says so.
pub fn build_verifiers(spec: Option<&str>, default: &str) -> Result<Verifiers> {
    let text = spec.unwrap_or(default).trim();
    let value: Value = if text.starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| EvalError::Other(format!("--verifier: invalid JSON spec: {e}")))?
    } else {
        Value::String(text.to_string())
    };
    match Verifiers::new(&value, &Default::default()) {
        Ok(v) => Ok(v),
        Err(rlvr_verify::VerifyError::UnknownVerifier(name)) if name == "code" => {
            Err(EvalError::Other(
                "verifier code is not registered: HumanEval and other code sets need the code \
                 sandbox verifier (`rlvr_code::register()`, which the rlvr binary calls)"
                    .into(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// A run directory ready to evaluate into.
#[derive(Debug)]
pub struct EvalRun {
    /// The directory.
    pub dir: RunDir,
    /// The settings (written to `config.resolved.toml`).
    pub config: EvalConfig,
    /// Whether an earlier run in this directory is being continued.
    pub resumed: bool,
}

/// A short name for a dataset in a directory name: a built-in's name, or a file's stem.
pub fn dataset_label(dataset: &str) -> String {
    if !Path::new(dataset).exists() && rlvr_data::builtin(dataset).is_ok() {
        return dataset.to_string();
    }
    Path::new(dataset)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into())
}

fn reopen(dir: &Path) -> Result<(RunDir, EvalConfig)> {
    let run = RunDir::open(dir)?;
    let what = dir.join(CONFIG_FILE);
    let saved = EvalConfig::from_toml(&run.read_config()?, &what.display().to_string())?;
    Ok((run, saved))
}

fn tidy(run: &RunDir) {
    // Evaluations have no checkpoints: drop the empty folder RunDir makes.
    let _ = std::fs::remove_dir(run.checkpoints_dir());
}

/// Creates the run directory (`out`, else `runs/<time>-eval-<dataset>/`), or continues the
/// run already in `out` when its sample-deciding settings equal `config`'s.
pub fn prepare_run(config: EvalConfig, out: Option<&Path>) -> Result<EvalRun> {
    config.validate()?;
    if let Some(dir) = out {
        if dir.join(CONFIG_FILE).is_file() {
            let (run, saved) = reopen(dir)?;
            let diff = saved.sample_differences(&config);
            if !diff.is_empty() {
                return Err(EvalError::Other(format!(
                    "{} holds an evaluation made with other settings ({}); use another --out, \
                     or --resume {} to continue it with its own settings",
                    dir.display(),
                    diff.join(", "),
                    dir.display()
                )));
            }
            run.write_config(&config.to_toml()?)?;
            tidy(&run);
            return Ok(EvalRun {
                dir: run,
                config,
                resumed: true,
            });
        }
    }
    let run = RunDir::create(out, &format!("eval-{}", dataset_label(&config.dataset)))?;
    run.write_config(&config.to_toml()?)?;
    tidy(&run);
    Ok(EvalRun {
        dir: run,
        config,
        resumed: false,
    })
}

/// Continues the run in `dir` with its saved settings (`limit` replaces the saved limit when
/// given).
pub fn resume_run(dir: &Path, limit: Option<usize>) -> Result<EvalRun> {
    let (run, mut config) = reopen(dir)?;
    if limit.is_some() {
        config.limit = limit;
        run.write_config(&config.to_toml()?)?;
    }
    config.validate()?;
    tidy(&run);
    Ok(EvalRun {
        dir: run,
        config,
        resumed: true,
    })
}

impl EvalRun {
    /// Evaluates `data` with `backend` (skipping problems cached in the run's store), then
    /// writes `samples.jsonl`, `summary.json`, `report.md` and the pass@k plot, and returns
    /// the summary. `command` is recorded in `meta.json`.
    pub fn execute(
        &self,
        backend: &dyn Backend,
        data: &EvalData,
        verifiers: &Verifiers,
        command: Vec<String>,
    ) -> Result<Value> {
        let cfg = &self.config;
        self.dir
            .write_meta(&RunMeta::now(cfg.seed, command, None))?;
        let store = Store::open(&self.dir.store_dir())?;
        let mut cache = StoreCache(&store);
        let total = data.examples.len();
        let mut progress = |done: usize, total: usize| {
            tracing::info!("eval: {done}/{total} problems");
        };
        tracing::info!(
            "eval: {total} problems × {} samples with {}",
            cfg.n,
            backend.describe()
        );
        // A reranker that cannot be built fails the run before any sampling.
        let reranker = cfg.rerank.as_deref().map(build_reranker).transpose()?;
        let mut out = evaluate(
            backend,
            &data.examples,
            verifiers,
            &cfg.settings(),
            &mut cache,
            &mut progress,
        )?;
        store.flush()?;
        drop(store);
        if let Some(r) = &reranker {
            tracing::info!("rerank: scoring the samples with {}", r.name());
            score_samples(&mut out.problems, &data.examples, r.as_ref())?;
        }
        self.write_outputs(backend, data, &out)
    }

    fn write_outputs(
        &self,
        backend: &dyn Backend,
        data: &EvalData,
        out: &EvalOutput,
    ) -> Result<Value> {
        let cfg = &self.config;
        let dir = self.dir.path();
        // samples.jsonl
        let mut buf = Vec::new();
        for p in &out.problems {
            for line in p.sample_lines() {
                serde_json::to_writer(&mut buf, &line)
                    .map_err(|e| EvalError::Other(format!("encoding samples: {e}")))?;
                buf.push(b'\n');
            }
        }
        rlvr_store::write_atomic(&dir.join("samples.jsonl"), &buf)?;

        let mut summary: Map<String, Value> =
            summarize(&out.problems, cfg.n, &cfg.k, &cfg.group_by)?;
        let subsets = summary.remove("subsets").unwrap_or(Value::Null);
        summary.insert("sampled_problems".into(), json!(out.sampled_problems));
        summary.insert("cached_problems".into(), json!(out.cached_problems));
        summary.insert("dataset".into(), json!(cfg.dataset));
        summary.insert(
            "dataset_file".into(),
            json!(data.source.display().to_string()),
        );
        summary.insert("model".into(), json!(cfg.model));
        summary.insert("backend".into(), json!(backend.describe()));
        summary.insert(
            "verifier".into(),
            json!(cfg
                .verifier
                .clone()
                .unwrap_or_else(|| data.default_verifier.clone())),
        );
        if let Some(spec) = &cfg.rerank {
            summary.insert("rerank_verifier".into(), json!(spec));
        }
        summary.insert("k".into(), json!(cfg.k));
        summary.insert("temperature".into(), json!(cfg.temperature));
        summary.insert("top_p".into(), json!(cfg.top_p));
        summary.insert("top_k".into(), json!(cfg.top_k));
        summary.insert("max_new_tokens".into(), json!(cfg.max_new_tokens));
        summary.insert("seed".into(), json!(cfg.seed));
        summary.insert("chat_template".into(), json!(cfg.chat_template));
        summary.insert("seconds".into(), json!(out.seconds));
        summary.insert("run_dir".into(), json!(dir.display().to_string()));
        summary.insert("subsets".into(), subsets);
        let summary = Value::Object(summary);

        // plots: metric against k
        let records: Vec<Value> = cfg
            .k
            .iter()
            .map(|k| {
                json!({"step": k, "pass_at_k": summary[format!("pass@{k}")],
                       "maj_at_k": summary[format!("maj@{k}")]})
            })
            .collect();
        let plots =
            rlvr_store::plot_metrics(&records, &["pass_at_k", "maj_at_k"], &self.dir.plots_dir())?;
        let mut summary = summary;
        summary["plots"] = json!(plots
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>());

        self.dir.write_summary(&summary)?;
        rlvr_store::write_atomic(
            &dir.join("report.md"),
            markdown_report(&summary, &cfg.k).as_bytes(),
        )?;
        Ok(summary)
    }
}

/// The one-line digest `rlvr eval` prints to stderr.
pub fn digest(summary: &Value) -> String {
    let mut s = format!(
        "eval {}: {} problems × {} samples:",
        summary["dataset"].as_str().unwrap_or("?"),
        summary["num_problems"],
        summary["n"]
    );
    if let Some(ks) = summary["k"].as_array() {
        for k in ks {
            for m in ["pass", "maj", "rerank"] {
                if let Some(v) = summary[format!("{m}@{k}")].as_f64() {
                    s.push_str(&format!(" {m}@{k} {v:.3}"));
                }
            }
        }
    }
    s.push_str(&format!(
        " (correct {}, incorrect {}, invalid {}, error {}; {} sampled, {} cached) -> {}",
        summary["correct"],
        summary["incorrect"],
        summary["invalid"],
        summary["error"],
        summary["sampled_problems"],
        summary["cached_problems"],
        summary["run_dir"].as_str().unwrap_or("?")
    ));
    s
}
