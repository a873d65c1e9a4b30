//! `rlvr eval`: pass@K / maj@K / mean@K of a model on a dataset, with the in-process rollout
//! engine or an OpenAI-compatible server (`--endpoint`). The work is in `rlvr_eval::run`; this parses arguments and prints.
//!
//! Writes `samples.jsonl`, `summary.json`, `report.md` and `plots/` to the run directory
//! (`--out`, default `runs/<time>-eval-<dataset>/`), prints the summary JSON on stdout and a
//! one-line digest on stderr. Rerunning with the same `--out` (same sampling settings), or
//! `--resume DIR`, continues an interrupted evaluation without sampling cached problems again.
//! `--rerank SPEC` (e.g. `orm:DIR`) scores every sample with a second verifier and adds
//! best-of-N `rerank@k` to the summary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rlvr_eval::rerank::build_reranker;
use rlvr_eval::run::{build_verifiers, digest, load_data, prepare_run, resume_run};
use rlvr_eval::{EngineBackend, EvalConfig, HttpBackend};
use rlvr_model::ModelDir;
use rlvr_serve::client::ClientOptions;

#[derive(Args)]
pub struct EvalArgs {
    /// Hugging Face model directory to evaluate in-process.
    #[arg(long, required_unless_present_any = ["resume", "endpoint"], conflicts_with_all = ["resume", "endpoint"])]
    model: Option<PathBuf>,
    /// An OpenAI-compatible server to evaluate instead (`http://host:port` or `.../v1`;
    /// vLLM, SGLang, `rlvr serve`): chat prompts go to /v1/chat/completions.
    #[arg(long, conflicts_with = "resume")]
    endpoint: Option<String>,
    /// The `model` field sent to --endpoint (default: the server's first listed model).
    #[arg(long, requires = "endpoint")]
    api_model: Option<String>,
    /// Deadline of one HTTP attempt in milliseconds (--endpoint).
    #[arg(long, default_value_t = 300_000)]
    request_timeout_ms: u64,
    /// Retries of a failed HTTP request: connection errors, timeouts, 429 and 5xx (--endpoint).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// HTTP requests in flight (--endpoint).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Built-in dataset (gsm8k, gsm8k:train, math500, aime24, aime25, amc23, humaneval) or a
    /// JSONL/JSON/Parquet file (verl schema or {question, answer}).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    dataset: Option<String>,
    /// Samples per problem.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// The ks of pass@k, maj@k and mean@k (comma separated, each ≤ --n).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    k: Vec<usize>,
    /// Verifier: a name (math, format) or a JSON spec. Default: the built-in dataset's, else math.
    #[arg(long)]
    verifier: Option<String>,
    /// Best-of-N reranker: a verifier spec (orm:DIR, prm:DIR, a name, or a JSON spec) whose
    /// score ranks each problem's samples; adds rerank@k (accuracy of the top-scored sample
    /// among the first k) and per-sample rerank_score. Allowed with --resume (rescores).
    #[arg(long)]
    rerank: Option<String>,
    /// Prompt template with {field} placeholders, replacing the dataset's.
    #[arg(long)]
    template: Option<String>,
    /// Evaluate only the first N problems.
    #[arg(long)]
    limit: Option<usize>,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Keep the k most probable tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Generated tokens per sample at most.
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    /// Stop string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Seed of the sampling streams (keyed by problem index: reruns give the same samples).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prompts longer than this many tokens are left out and counted.
    #[arg(long)]
    max_prompt_len: Option<usize>,
    /// Send chat prompts as joined plain text instead of through the model's chat template.
    #[arg(long)]
    no_chat_template: bool,
    /// Break the metrics down by this `extra_info` field too (repeatable), besides data_source.
    #[arg(long)]
    group_by: Vec<String>,
    /// Problems per sampling batch (the cache is flushed after each).
    #[arg(long, default_value_t = 16)]
    chunk_size: usize,
    /// Compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Compute device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: rlvr_model::DeviceSpec,
    /// Run directory (default runs/<YYYYmmdd-HHMMSS>-eval-<dataset>/); one that holds an
    /// evaluation with the same sampling settings is continued.
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the evaluation in this run directory with its saved settings (--limit may
    /// raise the number of problems).
    #[arg(long)]
    resume: Option<PathBuf>,
}

impl EvalArgs {
    fn config(&self) -> EvalConfig {
        EvalConfig {
            model: self
                .model
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            endpoint: self.endpoint.clone(),
            api_model: self.api_model.clone(),
            request_timeout_ms: self.request_timeout_ms,
            retries: self.retries,
            concurrency: self.concurrency,
            dtype: self.dtype.clone(),
            dataset: self.dataset.clone().unwrap_or_default(),
            template: self.template.clone(),
            verifier: self.verifier.clone(),
            limit: self.limit,
            n: self.n,
            k: self.k.clone(),
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            max_new_tokens: self.max_new_tokens,
            stop: self.stop.clone(),
            seed: self.seed,
            max_prompt_len: self.max_prompt_len,
            chat_template: !self.no_chat_template,
            group_by: self.group_by.clone(),
            chunk_size: self.chunk_size,
            rerank: self.rerank.clone(),
            ..EvalConfig::default()
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    // Everything that can be checked without the model comes first, so a mistake costs
    // nothing and leaves no run directory behind.
    let cfg = match &args.resume {
        Some(dir) => {
            let what = dir.join(rlvr_eval::run::CONFIG_FILE);
            let text = std::fs::read_to_string(&what)
                .with_context(|| format!("--resume: reading {}", what.display()))?;
            let mut cfg = EvalConfig::from_toml(&text, &what.display().to_string())?;
            if args.limit.is_some() {
                cfg.limit = args.limit;
            }
            if args.rerank.is_some() {
                cfg.rerank = args.rerank.clone();
            }
            cfg
        }
        None => args.config(),
    };
    cfg.validate()?;
    let data = load_data(&cfg, None)?;
    let verifiers = build_verifiers(cfg.verifier.as_deref(), &data.default_verifier)?;
    if let Some(spec) = &cfg.rerank {
        // Built (a reward model loaded, and kept for the run) before any sampling.
        build_reranker(spec)?;
    }
    let mut run = match &args.resume {
        Some(dir) => resume_run(dir, args.limit)?,
        None => prepare_run(cfg, args.out.as_deref())?,
    };
    if args.resume.is_some() && args.rerank.is_some() {
        run.config.rerank = args.rerank.clone();
        run.dir.write_config(&run.config.to_toml()?)?;
    }
    let cfg = &run.config;

    let command: Vec<String> = std::env::args().collect();
    let summary = if let Some(url) = &cfg.endpoint {
        let options = ClientOptions {
            timeout: Duration::from_millis(cfg.request_timeout_ms),
            retries: cfg.retries,
            concurrency: cfg.concurrency,
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            ..ClientOptions::default()
        };
        let backend = HttpBackend::new(url, cfg.api_model.clone(), options)?;
        run.execute(&backend, &data, &verifiers, command)?
    } else {
        let dtype = rlvr_model::parse_dtype(&cfg.dtype)
            .with_context(|| format!("--dtype {}: expected f32, bf16 or f16", cfg.dtype))?;
        let device = args.device.open()?;
        let md = ModelDir::load(cfg.model.as_ref(), &device, Some(dtype))
            .with_context(|| format!("loading model {}", cfg.model))?;
        let backend = EngineBackend::new(&md);
        run.execute(&backend, &data, &verifiers, command)?
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!("{}", digest(&summary));
    Ok(())
}
