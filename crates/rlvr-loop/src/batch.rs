//! Packing (prompt, response) pairs into one forward batch, verl's layout: prompts
//! left-padded to the longest prompt `P`, responses right-padded to the longest response `R`,
//! so the response log-probs of every row are the same `(B, R)` slice.

use candle_core::{Device, Tensor};
use rlvr_model::{Batch, CausalLm, Mode};

use crate::error::{LoopError, Result};

/// A packed batch.
pub struct Packed {
    /// The forward batch `(B, P + R)`.
    pub batch: Batch,
    /// Longest prompt.
    pub prompt_len: usize,
    /// Longest response.
    pub response_len: usize,
    /// `(B, R)` f32: 1 on real response tokens.
    pub mask: Tensor,
    /// Host copy of the mask, row-major.
    pub mask_host: Vec<f32>,
}

/// Packs rows of `(prompt ids, response ids)`; padding uses `pad_id` and is never attended.
pub fn pack(rows: &[(&[u32], &[u32])], pad_id: u32, device: &Device) -> Result<Packed> {
    if rows.is_empty() {
        return Err(LoopError::Other("empty batch".into()));
    }
    let p = rows.iter().map(|(q, _)| q.len()).max().unwrap_or(0);
    let r = rows.iter().map(|(_, a)| a.len()).max().unwrap_or(0).max(1);
    if rows.iter().any(|(q, _)| q.is_empty()) {
        return Err(LoopError::Other("a prompt is empty".into()));
    }
    let t = p + r;
    let b = rows.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b * t);
    let mut positions = Vec::with_capacity(b * t);
    let mut resp_mask = Vec::with_capacity(b * r);
    for (q, a) in rows {
        let lead = p - q.len();
        ids.extend(std::iter::repeat_n(pad_id, lead));
        ids.extend_from_slice(q);
        ids.extend_from_slice(a);
        ids.extend(std::iter::repeat_n(pad_id, r - a.len()));
        mask.extend(std::iter::repeat_n(0u8, lead));
        mask.extend(std::iter::repeat_n(1u8, q.len() + a.len()));
        mask.extend(std::iter::repeat_n(0u8, r - a.len()));
        positions.extend(std::iter::repeat_n(0u32, lead));
        positions.extend(0..(q.len() + a.len()) as u32);
        positions.extend(std::iter::repeat_n(0u32, r - a.len()));
        resp_mask.extend((0..r).map(|j| if j < a.len() { 1f32 } else { 0.0 }));
    }
    let batch = Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        positions,
        mask,
        batch: b,
        seq: t,
    };
    Ok(Packed {
        batch,
        prompt_len: p,
        response_len: r,
        mask: Tensor::from_vec(resp_mask.clone(), (b, r), device)?,
        mask_host: resp_mask,
    })
}

/// `(B, R, V)` logits of the positions that predict the response tokens, divided by
/// `temperature` (the distribution the tokens were sampled from; `lm_head` has no bias, so
/// the hidden states are scaled instead of the larger logits).
pub fn response_logits(
    model: &CausalLm,
    packed: &Packed,
    mode: Mode,
    temperature: f64,
) -> Result<Tensor> {
    let hidden = model.hidden_states(&packed.batch, None, mode)?;
    let mut h = hidden.narrow(1, packed.prompt_len - 1, packed.response_len)?;
    if temperature > 0.0 && temperature != 1.0 {
        h = h.affine(1.0 / temperature, 0.0)?;
    }
    Ok(model.lm_head(&h, mode)?)
}

/// `(B, R)` log-probs of the response tokens from [`response_logits`]. Padding positions hold
/// meaningless values: mask them.
pub fn logprobs_from_logits(logits: &Tensor, packed: &Packed) -> Result<Tensor> {
    let targets = packed
        .batch
        .ids
        .narrow(1, packed.prompt_len, packed.response_len)?
        .contiguous()?;
    Ok(rlvr_model::logprobs_of(logits, &targets)?)
}

/// `(B, R)` log-probs of the response tokens under `model` at temperature 1.
pub fn response_logprobs(model: &CausalLm, packed: &Packed, mode: Mode) -> Result<Tensor> {
    logprobs_from_logits(&response_logits(model, packed, mode, 1.0)?, packed)
}

/// Row-major `(rows, width)` host values → tensor, each row padded with 0 to `width`.
pub fn rows_to_tensor(rows: &[&[f32]], width: usize, device: &Device) -> Result<Tensor> {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for r in rows {
        flat.extend_from_slice(&r[..r.len().min(width)]);
        flat.extend(std::iter::repeat_n(0f32, width.saturating_sub(r.len())));
    }
    Ok(Tensor::from_vec(flat, (rows.len(), width), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_left_prompt_right_response() {
        let rows: Vec<(&[u32], &[u32])> = vec![(&[1, 2, 3], &[4]), (&[5], &[6, 7, 8])];
        let p = pack(&rows, 0, &Device::Cpu).unwrap();
        assert_eq!((p.prompt_len, p.response_len), (3, 3));
        let ids = p.batch.ids.to_vec2::<u32>().unwrap();
        assert_eq!(ids, vec![vec![1, 2, 3, 4, 0, 0], vec![0, 0, 5, 6, 7, 8]]);
        assert_eq!(p.batch.mask, vec![1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(p.batch.positions, vec![0, 1, 2, 3, 0, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(p.mask_host, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
