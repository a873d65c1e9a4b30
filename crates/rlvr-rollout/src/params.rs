//! What to sample: [`SamplingParams`] and how a completion ended ([`FinishReason`]).

use serde::{Deserialize, Serialize};

use crate::error::{Result, RolloutError};

/// Sampling settings of one `generate` call. Every field has a default (`#[serde(default)]`),
/// so a TOML/JSON table may set only some of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Logits are divided by this before anything else. `0` means greedy decoding (argmax,
    /// first index on ties). Default `1.0`.
    pub temperature: f64,
    /// Nucleus sampling: keep the most probable tokens whose cumulative probability (of the
    /// tempered distribution, after top-k) reaches `top_p` — a token is kept when the mass of
    /// the tokens ranked above it is `< top_p`, as in transformers. `1.0` (default) disables it.
    pub top_p: f64,
    /// Keep only the `top_k` most probable tokens (ties broken by lower id). `0` (default)
    /// disables it.
    pub top_k: usize,
    /// At most this many generated tokens per completion; a completion that reaches it without
    /// stopping is `truncated`. Default 256.
    pub max_new_tokens: usize,
    /// Stop strings, matched on the incrementally decoded completion text. Default none.
    pub stop: Vec<String>,
    /// Stop ids in addition to the engine's (the model's EOS ids). Default none.
    pub stop_token_ids: Vec<u32>,
    /// Do not stop on the engine's stop ids (the model's EOS ids); `stop_token_ids` still
    /// apply. For benchmarks that need a fixed number of tokens. Default false.
    pub ignore_eos: bool,
    /// Completions per prompt (G). Default 1.
    pub n: usize,
    /// Prompts longer than this many tokens are filtered out and reported (never truncated).
    /// Default: no limit.
    pub max_prompt_len: Option<usize>,
    /// Seed of the per-completion random streams. Default 0.
    pub seed: u64,
    /// Decode text (and match stop strings) without special tokens. Default true.
    pub skip_special_tokens: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            n: 1,
            max_prompt_len: None,
            seed: 0,
            skip_special_tokens: true,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams {
            temperature: 0.0,
            max_new_tokens,
            ..Default::default()
        }
    }

    /// Whether tokens are chosen by argmax (temperature 0).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks the ranges: temperature ≥ 0 and finite, `0 < top_p ≤ 1`, `n ≥ 1`, no empty stop
    /// string.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(RolloutError::Params(format!(
                "temperature must be a finite number ≥ 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(RolloutError::Params(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if self.n == 0 {
            return Err(RolloutError::Params("n must be at least 1".into()));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(RolloutError::Params("empty stop string".into()));
        }
        Ok(())
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It emitted a stop id (kept as its last token).
    StopId,
    /// Its decoded text came to contain a stop string.
    StopString,
    /// It reached `max_new_tokens` (then `truncated` is true).
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::StopId => "stop_id",
            FinishReason::StopString => "stop_string",
            FinishReason::Length => "length",
        }
    }
}
