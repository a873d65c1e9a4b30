//! Greedy decoding with the KV cache (sampling with temperature/top-p lives in the rollout
//! engine; it drives the same `forward` + `KvCache` loop).

use candle_core::DType;

use crate::cache::KvCache;
use crate::error::{ModelError, Result};
use crate::transformer::{Batch, CausalLm, Mode};

/// Index of the largest value (the first one on ties, like `torch.argmax`).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

impl CausalLm {
    /// Greedy continuations of a batch of prompts: at most `max_new_tokens` each, stopping a
    /// row after it emits any id in `stop_ids` (which is kept in its output). Prompts are
    /// left-padded and decoded together with one KV cache.
    pub fn greedy(
        &self,
        prompts: &[Vec<u32>],
        max_new_tokens: usize,
        stop_ids: &[u32],
    ) -> Result<Vec<Vec<u32>>> {
        if prompts.iter().any(Vec::is_empty) {
            return Err(ModelError::Input("empty prompt".into()));
        }
        let b = prompts.len();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        if b == 0 || max_new_tokens == 0 {
            return Ok(out);
        }
        let pad = self.config().pad_token_id.unwrap_or(0);
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::new(self.config(), longest + max_new_tokens);
        let batch = Batch::left_padded(prompts, pad, self.device())?;
        let mut last = self.last_logits(&batch, &mut cache)?;
        let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
        let mut done = vec![false; b];
        for step in 0..max_new_tokens {
            let mut tokens = Vec::with_capacity(b);
            for (row, logits_row) in last.iter().enumerate() {
                let tok = argmax(logits_row) as u32;
                if !done[row] {
                    out[row].push(tok);
                    if stop_ids.contains(&tok) {
                        done[row] = true;
                    }
                }
                tokens.push(tok);
            }
            if step + 1 == max_new_tokens || done.iter().all(|&d| d) {
                break;
            }
            let batch = Batch::step(&tokens, &next_pos, self.device())?;
            last = self.last_logits(&batch, &mut cache)?;
            for p in &mut next_pos {
                *p += 1;
            }
        }
        Ok(out)
    }
}

impl CausalLm {
    /// Last-position logits of a decoding step on the host, `B × V` in f32.
    fn last_logits(&self, batch: &Batch, cache: &mut KvCache) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .forward_last(batch, Some(cache), Mode::Infer)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?)
    }
}
