//! rlvr's rollout engine: batched sampling of G completions per prompt with the KV cache,
//! recording per-token log-probs (issue 6).
//!
//! - Prompts of different lengths are left-padded into one batch (attention masks keep the
//!   padding out) and decoded with one explicit [`rlvr_model::KvCache`] per micro-batch of
//!   rows (prompt × sample); only [`rlvr_model::Mode::Infer`] forwards are used, so no
//!   autograd graph is ever built.
//! - Sampling: temperature (0 = greedy), top-k, top-p; see [`sampler`] for the order of the
//!   filters and which log-probs are recorded (`logprobs` of `logits / T`, and
//!   `sampler_logprobs` of the filtered distribution that drew the token).
//! - Reproducible: completion `j` of a prompt with key `k` draws its uniforms from a ChaCha8
//!   stream keyed by `(seed, k, j)`, so the same seed gives the same tokens, and a prompt gives
//!   the same completions alone or batched with others (up to float rounding of the padded
//!   forward, which only matters when a draw falls within ~1e-6 of a CDF boundary).
//! - Stops: any engine stop id (every EOS id of the model, see
//!   [`rlvr_model::ModelDir::stop_ids`]) or extra id (kept as the last token), stop strings on
//!   the incrementally decoded text, `max_new_tokens` (then `truncated`). Finished rows stop
//!   costing work: once at most half of a micro-batch is live, the finished rows are dropped
//!   from the batch and its KV cache ([`EngineOptions`]).
//! - Prompts longer than `max_prompt_len` are filtered out and reported, never truncated.
//!
//! ```no_run
//! use rlvr_rollout::{RolloutEngine, SamplingParams};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let md = rlvr_model::ModelDir::load("model".as_ref(), &candle_core::Device::Cpu, None)?;
//! let engine = RolloutEngine::from_model_dir(&md);
//! let prompt = md.tokenizer.encode("2 + 2 =", true)?;
//! let params = SamplingParams { n: 4, max_new_tokens: 32, ..Default::default() };
//! let batch = engine.generate(&[prompt], &params)?;
//! for c in &batch.completions {
//!     println!("{} {:?} {}", c.sample_index, c.finish_reason, c.text);
//! }
//! # Ok(()) }
//! ```

pub mod detok;
pub mod engine;
pub mod error;
pub mod params;
pub mod sampler;

pub use engine::{
    Completion, EngineOptions, FilteredPrompt, Prompt, RolloutBatch, RolloutEngine, RolloutStats,
};
pub use error::{Result, RolloutError};
pub use params::{FinishReason, SamplingParams};
pub use sampler::{log_softmax, RowRng, Sampled, Sampler};
