//! The batched generation loop: G completions per prompt, left-padded prefill, one KV cache per
//! micro-batch, per-row sampling streams, stop ids / stop strings / length, and compaction of
//! the batch once enough rows have finished.

use std::time::Instant;

use candle_core::{DType, Storage, Tensor};
use rlvr_model::{Batch, CausalLm, KvCache, Mode, ModelDir, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::detok::{find_stop, IncrementalText};
use crate::error::{Result, RolloutError};
use crate::params::{FinishReason, SamplingParams};
use crate::sampler::{RowRng, Sampler};

/// A prompt and the key of its random streams. Completion `j` of a prompt with key `k` draws
/// from the stream `(seed, k, j)`, whatever else is in the batch: generating a prompt alone
/// with the same key gives the same tokens as generating it among others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub ids: Vec<u32>,
    /// Stream key; a stable id of the prompt (e.g. its dataset position) is a good choice.
    pub key: u64,
}

/// One generated completion.
///
/// `tokens` hold every generated id, the stop id included. On a stop string, the tokens end
/// with the token during which the string was completed (that token may carry text past the
/// stop string); `text` is the decoded text of all of `tokens`, so it contains the stop string,
/// and `stop_offset` is the byte offset in `text` where it starts (`&text[..stop_offset]` is
/// the text before the stop string, vLLM's default output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Index of the prompt in the input slice.
    pub prompt_index: usize,
    /// Which of the `n` samples of that prompt (0-based).
    pub sample_index: usize,
    pub prompt_len: usize,
    pub tokens: Vec<u32>,
    pub text: String,
    /// `log_softmax(logits / temperature)[token]` per token (temperature 1 for greedy).
    pub logprobs: Vec<f32>,
    /// Log-prob under the distribution that drew the token (after top-k/top-p and
    /// renormalisation; 0 for greedy).
    pub sampler_logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
    /// The stop string that ended the completion.
    pub stop_string: Option<String>,
    /// Byte offset of `stop_string` in `text`.
    pub stop_offset: Option<usize>,
    /// `max_new_tokens` was reached without a stop.
    pub truncated: bool,
}

/// A prompt left out because it is longer than `max_prompt_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilteredPrompt {
    pub prompt_index: usize,
    pub len: usize,
}

/// Counts and timings of one `generate` call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutStats {
    pub prompts: usize,
    pub filtered_prompts: usize,
    pub completions: usize,
    pub generated_tokens: usize,
    pub truncated: usize,
    pub stopped_by_id: usize,
    pub stopped_by_string: usize,
    /// Forward calls (prefills included).
    pub forward_calls: usize,
    /// Prefills (one per micro-batch).
    pub prefills: usize,
    /// Times finished rows were dropped from a micro-batch's KV cache.
    pub compactions: usize,
    pub wall_seconds: f64,
    /// Generated tokens per second of wall time.
    pub tokens_per_second: f64,
}

/// The result of a `generate` call: completions ordered by prompt, then sample index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutBatch {
    pub completions: Vec<Completion>,
    pub filtered: Vec<FilteredPrompt>,
    pub stats: RolloutStats,
}

impl RolloutBatch {
    /// The completions of prompt `i` (empty if it was filtered).
    pub fn of_prompt(&self, i: usize) -> impl Iterator<Item = &Completion> {
        self.completions.iter().filter(move |c| c.prompt_index == i)
    }
}

/// How the engine batches work (not sampling semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineOptions {
    /// Rows (prompt × sample) decoded together with one KV cache. Default 64.
    pub max_batch_rows: usize,
    /// When at most this fraction of a micro-batch's rows is still generating, the finished
    /// rows are dropped from the batch and its KV cache (`KvCache::select_rows`, a copy of the
    /// live rows' keys and values, no recomputation) so they stop costing work. `0` disables
    /// compaction (finished rows are then fed padding). Default 0.5.
    pub compact_ratio: f32,
    /// ... but only when at least this many tokens may still be generated. Default 16.
    pub compact_min_remaining: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_batch_rows: 64,
            compact_ratio: 0.5,
            compact_min_remaining: 16,
        }
    }
}

/// Samples completions from a model (inference mode only: no autograd graph is built, and
/// the weights are detached views that see optimizer updates).
pub struct RolloutEngine<'a> {
    model: &'a CausalLm,
    tokenizer: &'a Tokenizer,
    stop_ids: Vec<u32>,
    pad_id: u32,
    pub options: EngineOptions,
}

/// State of one completion being generated.
struct Row<'p> {
    prompt: &'p [u32],
    prompt_index: usize,
    sample_index: usize,
    rng: RowRng,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    sampler_logprobs: Vec<f32>,
    detok: IncrementalText,
    finish: Option<FinishReason>,
    stop: Option<usize>,
}

impl<'a> RolloutEngine<'a> {
    /// An engine stopping on `stop_ids` (use [`ModelDir::stop_ids`]: every EOS id of the
    /// generation config, the model config and the tokenizer).
    pub fn new(model: &'a CausalLm, tokenizer: &'a Tokenizer, stop_ids: Vec<u32>) -> Self {
        let vocab = model.config().vocab_size as u32;
        let pad_id = model
            .config()
            .pad_token_id
            .or(tokenizer.pad_token_id())
            .filter(|&p| p < vocab)
            .unwrap_or(0);
        RolloutEngine {
            model,
            tokenizer,
            stop_ids,
            pad_id,
            options: EngineOptions::default(),
        }
    }

    /// An engine for a loaded model directory, stopping on all its EOS ids.
    pub fn from_model_dir(md: &'a ModelDir) -> Self {
        Self::new(&md.model, &md.tokenizer, md.stop_ids())
    }

    pub fn with_options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// The engine's stop ids (before `SamplingParams::stop_token_ids`).
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        self.tokenizer
    }

    /// Generates `params.n` completions for each prompt; prompt `i`'s streams are keyed `i`.
    pub fn generate(&self, prompts: &[Vec<u32>], params: &SamplingParams) -> Result<RolloutBatch> {
        let keyed: Vec<Prompt> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| Prompt {
                ids: p.clone(),
                key: i as u64,
            })
            .collect();
        self.generate_keyed(&keyed, params)
    }

    /// Generates `params.n` completions for each prompt, with explicit stream keys.
    pub fn generate_keyed(
        &self,
        prompts: &[Prompt],
        params: &SamplingParams,
    ) -> Result<RolloutBatch> {
        params.validate()?;
        let started = Instant::now();
        let mut out = RolloutBatch::default();
        let mut rows: Vec<Row> = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            if p.ids.is_empty() {
                return Err(RolloutError::Input(format!("prompt {i} is empty")));
            }
            if params.max_prompt_len.is_some_and(|m| p.ids.len() > m) {
                out.filtered.push(FilteredPrompt {
                    prompt_index: i,
                    len: p.ids.len(),
                });
                continue;
            }
            for j in 0..params.n {
                rows.push(Row {
                    prompt: &p.ids,
                    prompt_index: i,
                    sample_index: j,
                    rng: RowRng::new(params.seed, p.key, j as u64),
                    tokens: Vec::with_capacity(params.max_new_tokens),
                    logprobs: Vec::with_capacity(params.max_new_tokens),
                    sampler_logprobs: Vec::with_capacity(params.max_new_tokens),
                    detok: IncrementalText::default(),
                    finish: None,
                    stop: None,
                });
            }
        }
        if !out.filtered.is_empty() {
            tracing::info!(
                filtered = out.filtered.len(),
                max_prompt_len = params.max_prompt_len,
                "prompts longer than max_prompt_len left out"
            );
        }
        let chunk = self.options.max_batch_rows.max(1);
        for part in rows.chunks_mut(chunk) {
            self.run_chunk(part, params, &mut out.stats)?;
        }
        for row in rows {
            out.completions.push(self.finish_row(row, params)?);
        }
        let s = &mut out.stats;
        s.prompts = prompts.len();
        s.filtered_prompts = out.filtered.len();
        s.completions = out.completions.len();
        for c in &out.completions {
            s.generated_tokens += c.tokens.len();
            s.truncated += usize::from(c.truncated);
            s.stopped_by_id += usize::from(c.finish_reason == FinishReason::StopId);
            s.stopped_by_string += usize::from(c.finish_reason == FinishReason::StopString);
        }
        s.wall_seconds = started.elapsed().as_secs_f64();
        s.tokens_per_second = s.generated_tokens as f64 / s.wall_seconds.max(1e-9);
        Ok(out)
    }

    fn finish_row(&self, row: Row, params: &SamplingParams) -> Result<Completion> {
        let text = self
            .tokenizer
            .decode(&row.tokens, params.skip_special_tokens)?;
        let finish_reason = row.finish.unwrap_or(FinishReason::Length);
        let stop_string = row.stop.map(|i| params.stop[i].clone());
        let stop_offset = stop_string.as_deref().and_then(|s| text.find(s));
        Ok(Completion {
            prompt_index: row.prompt_index,
            sample_index: row.sample_index,
            prompt_len: row.prompt.len(),
            truncated: finish_reason == FinishReason::Length,
            tokens: row.tokens,
            text,
            logprobs: row.logprobs,
            sampler_logprobs: row.sampler_logprobs,
            finish_reason,
            stop_string,
            stop_offset,
        })
    }

    /// Left-padded prefill of `rows[slots]` (prompt + tokens so far) into a fresh cache.
    fn prefill(
        &self,
        rows: &[Row],
        slots: &[usize],
        room: usize,
        next_pos: &mut Vec<u32>,
        stats: &mut RolloutStats,
    ) -> Result<(KvCache, Tensor)> {
        let seqs: Vec<Vec<u32>> = slots
            .iter()
            .map(|&r| {
                let mut s = Vec::with_capacity(rows[r].prompt.len() + rows[r].tokens.len());
                s.extend_from_slice(rows[r].prompt);
                s.extend_from_slice(&rows[r].tokens);
                s
            })
            .collect();
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::new(self.model.config(), longest + room);
        let batch = Batch::left_padded(&seqs, self.pad_id, self.model.device())?;
        let logits = self
            .model
            .forward_last(&batch, Some(&mut cache), Mode::Infer)?;
        next_pos.clear();
        next_pos.extend(seqs.iter().map(|s| s.len() as u32));
        stats.forward_calls += 1;
        stats.prefills += 1;
        Ok((cache, logits))
    }

    fn run_chunk(
        &self,
        rows: &mut [Row],
        params: &SamplingParams,
        stats: &mut RolloutStats,
    ) -> Result<()> {
        let max_new = params.max_new_tokens;
        if rows.is_empty() || max_new == 0 {
            for r in rows.iter_mut() {
                r.finish = Some(FinishReason::Length);
            }
            return Ok(());
        }
        let mut stop_ids: Vec<u32> = params.stop_token_ids.clone();
        if !params.ignore_eos {
            stop_ids.extend(&self.stop_ids);
        }
        let max_stop_len = params.stop.iter().map(String::len).max().unwrap_or(0);
        let greedy = params.is_greedy();
        let device = self.model.device().clone();

        let mut slots: Vec<usize> = (0..rows.len()).collect();
        let mut next_pos = Vec::with_capacity(rows.len());
        let (mut cache, mut logits) = self.prefill(rows, &slots, max_new, &mut next_pos, stats)?;
        let mut host: Vec<f32> = Vec::new();
        let mut sampler = Sampler::new();
        let mut step_tokens: Vec<u32> = Vec::with_capacity(rows.len());
        for step in 0..max_new {
            logits_to_host(&logits, &mut host)?;
            let v = host.len() / slots.len();
            for (s, &r) in slots.iter().enumerate() {
                let row = &mut rows[r];
                if row.finish.is_some() {
                    continue;
                }
                let u = if greedy { 0.0 } else { row.rng.uniform() };
                let picked = sampler
                    .sample(&host[s * v..(s + 1) * v], params, u)
                    .ok_or(RolloutError::NonFinite { row: r, step })?;
                let tok = picked.token;
                row.tokens.push(tok);
                row.logprobs.push(picked.logprob);
                row.sampler_logprobs.push(picked.sampler_logprob);
                if stop_ids.contains(&tok) {
                    row.finish = Some(FinishReason::StopId);
                } else if max_stop_len > 0 {
                    let start = row.detok.update(
                        self.tokenizer,
                        &row.tokens,
                        params.skip_special_tokens,
                    )?;
                    let from = start.saturating_sub(max_stop_len - 1);
                    if let Some((i, _)) = find_stop(&row.detok.text, from, &params.stop) {
                        row.finish = Some(FinishReason::StopString);
                        row.stop = Some(i);
                    }
                }
                if row.finish.is_none() && row.tokens.len() >= max_new {
                    row.finish = Some(FinishReason::Length);
                }
            }
            let alive: Vec<usize> = slots
                .iter()
                .copied()
                .filter(|&r| rows[r].finish.is_none())
                .collect();
            if alive.is_empty() {
                break;
            }
            let remaining = max_new - (step + 1);
            let ratio = self.options.compact_ratio;
            if ratio > 0.0
                && alive.len() < slots.len()
                && (alive.len() as f32) <= ratio * slots.len() as f32
                && remaining >= self.options.compact_min_remaining
            {
                tracing::debug!(from = slots.len(), to = alive.len(), step, "compacting");
                let keep: Vec<usize> = (0..slots.len())
                    .filter(|&s| rows[slots[s]].finish.is_none())
                    .collect();
                cache.select_rows(&keep)?;
                next_pos = keep.iter().map(|&s| next_pos[s]).collect();
                slots = alive;
                stats.compactions += 1;
            }
            step_tokens.clear();
            step_tokens.extend(slots.iter().map(|&r| {
                let row = &rows[r];
                if row.finish.is_some() {
                    self.pad_id
                } else {
                    *row.tokens.last().expect("a live row has sampled a token")
                }
            }));
            let batch = Batch::step(&step_tokens, &next_pos, &device)?;
            logits = self
                .model
                .forward_last(&batch, Some(&mut cache), Mode::Infer)?;
            stats.forward_calls += 1;
            for p in &mut next_pos {
                *p += 1;
            }
        }
        Ok(())
    }
}

/// Copies `(B, V)` logits into `buf` as f32 (no new allocation once `buf` is large enough).
fn logits_to_host(logits: &Tensor, buf: &mut Vec<f32>) -> Result<()> {
    let logits = if logits.dtype() == DType::F32 {
        logits.clone()
    } else {
        logits.to_dtype(DType::F32)?
    };
    {
        let (storage, layout) = logits.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            buf.clear();
            buf.extend_from_slice(&cpu.as_slice::<f32>()?[a..b]);
            return Ok(());
        }
    }
    *buf = logits.flatten_all()?.to_vec1::<f32>()?;
    Ok(())
}
