//! The settings of an evaluation run, saved as the run's `config.resolved.toml` (every value,
//! defaults included) so `--resume DIR` can continue it.

use std::time::Duration;

use rlvr_rollout::SamplingParams;
use serde::{Deserialize, Serialize};

use crate::backend::GenerateParams;
use crate::error::{EvalError, Result};
use crate::evaluator::EvalSettings;
use crate::summary::check_ks;

/// Everything an evaluation run was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Model directory (in-process backend); empty when `endpoint` is set.
    pub model: String,
    /// Base URL of an OpenAI-compatible server (`http://host:port` or `.../v1`) to evaluate
    /// instead of a model directory.
    pub endpoint: Option<String>,
    /// The `model` field sent to the endpoint (default: the server's first `/v1/models` entry).
    pub api_model: Option<String>,
    /// Deadline of one HTTP attempt, milliseconds.
    pub request_timeout_ms: u64,
    /// Retries of a failed HTTP request (connection errors, timeouts, 429, 5xx).
    pub retries: u32,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// Compute dtype of the model (`f32`, `bf16`, `f16`).
    pub dtype: String,
    /// Built-in dataset name (`math500`, `gsm8k:train`, ...) or a JSONL/JSON/Parquet file.
    pub dataset: String,
    /// Prompt template replacing the dataset's (`{field}` placeholders), if any.
    pub template: Option<String>,
    /// Verifier spec (a name or a JSON object); default: the built-in dataset's, else `math`.
    pub verifier: Option<String>,
    /// Evaluate only the first `limit` problems.
    pub limit: Option<usize>,
    /// Samples per problem.
    pub n: usize,
    /// The ks of pass@K / maj@K / mean@K.
    pub k: Vec<usize>,
    /// Sampling temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus sampling threshold (1 = off).
    pub top_p: f64,
    /// Top-k filter (0 = off).
    pub top_k: usize,
    /// Generated tokens per sample at most.
    pub max_new_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Seed of the sampling streams.
    pub seed: u64,
    /// Prompts longer than this many tokens are left out (counted).
    pub max_prompt_len: Option<usize>,
    /// Render chat prompts with the model's chat template.
    pub chat_template: bool,
    /// `extra_info` fields to break the metrics down by (besides `data_source`).
    pub group_by: Vec<String>,
    /// Problems per sampling call and cache flush.
    pub chunk_size: usize,
    /// Verifier calls in flight.
    pub verify_concurrency: usize,
    /// Time limit of one verifier call, milliseconds.
    pub verify_timeout_ms: u64,
    /// Best-of-N reranker: a verifier spec (`orm:DIR`, a name, or a JSON object) whose score
    /// ranks each problem's samples (`rerank@K`, `rerank_score`); none by default. It does
    /// not decide the samples, so a continued run may change it.
    pub rerank: Option<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            model: String::new(),
            endpoint: None,
            api_model: None,
            request_timeout_ms: 300_000,
            retries: 3,
            concurrency: 8,
            dtype: "f32".into(),
            dataset: String::new(),
            template: None,
            verifier: None,
            limit: None,
            n: 16,
            k: vec![1, 4, 16],
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 1024,
            stop: Vec::new(),
            seed: 0,
            max_prompt_len: None,
            chat_template: true,
            group_by: Vec::new(),
            chunk_size: 16,
            verify_concurrency: 4,
            verify_timeout_ms: 10_000,
            rerank: None,
        }
    }
}

impl EvalConfig {
    /// Checks the values that can be checked without data: ks within `1..=n`, sampling
    /// ranges, a dataset and a model named.
    pub fn validate(&self) -> Result<()> {
        check_ks(&self.k, self.n)?;
        if self.dataset.is_empty() {
            return Err(EvalError::Other("--dataset is required".into()));
        }
        match (self.model.is_empty(), &self.endpoint) {
            (true, None) => {
                return Err(EvalError::Other("--model or --endpoint is required".into()))
            }
            (false, Some(_)) => {
                return Err(EvalError::Other(
                    "--model and --endpoint exclude each other".into(),
                ))
            }
            _ => {}
        }
        if self.concurrency == 0 {
            return Err(EvalError::Other("--concurrency must be at least 1".into()));
        }
        if self.chunk_size == 0 {
            return Err(EvalError::Other("chunk_size must be at least 1".into()));
        }
        self.sampling().validate()?;
        Ok(())
    }

    /// The engine's sampling parameters.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            max_new_tokens: self.max_new_tokens,
            stop: self.stop.clone(),
            n: self.n,
            max_prompt_len: self.max_prompt_len,
            seed: self.seed,
            ..SamplingParams::default()
        }
    }

    /// The evaluator's settings.
    pub fn settings(&self) -> EvalSettings {
        EvalSettings {
            params: GenerateParams {
                sampling: self.sampling(),
                chat_template: self.chat_template,
            },
            ks: self.k.clone(),
            chunk_size: self.chunk_size,
            verify_concurrency: self.verify_concurrency,
            verify_timeout: Duration::from_millis(self.verify_timeout_ms),
        }
    }

    /// The names of the settings that decide the samples and their scores and differ between
    /// `self` and `other` (a run can be continued only when there are none; `limit`, `k`,
    /// `group_by`, `chunk_size`, `rerank` and the verifier's concurrency may change).
    pub fn sample_differences(&self, other: &EvalConfig) -> Vec<&'static str> {
        let mut d = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                d.push(name);
            }
        };
        check("model", self.model == other.model);
        check("endpoint", self.endpoint == other.endpoint);
        check("api_model", self.api_model == other.api_model);
        check("dtype", self.dtype == other.dtype);
        check("dataset", self.dataset == other.dataset);
        check("template", self.template == other.template);
        check("verifier", self.verifier == other.verifier);
        check("n", self.n == other.n);
        check("temperature", self.temperature == other.temperature);
        check("top_p", self.top_p == other.top_p);
        check("top_k", self.top_k == other.top_k);
        check(
            "max_new_tokens",
            self.max_new_tokens == other.max_new_tokens,
        );
        check("stop", self.stop == other.stop);
        check("seed", self.seed == other.seed);
        check(
            "max_prompt_len",
            self.max_prompt_len == other.max_prompt_len,
        );
        check("chat_template", self.chat_template == other.chat_template);
        d
    }

    /// The TOML text of `config.resolved.toml`.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| EvalError::Other(format!("encoding the config: {e}")))
    }

    /// Parses `config.resolved.toml` (`what` names the file in errors).
    pub fn from_toml(text: &str, what: &str) -> Result<EvalConfig> {
        toml::from_str(text).map_err(|e| EvalError::Other(format!("{what}: {e}")))
    }
}
