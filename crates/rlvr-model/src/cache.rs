//! The explicit KV cache for incremental decoding: per layer, keys and values of shape
//! `(B, kv_heads, S, head_dim)` in a buffer that grows in chunks, plus which cached positions
//! are real tokens (padding stays masked in later steps).

use candle_core::Tensor;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Keys/values of every layer for the tokens seen so far.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<candle_nn::kv_cache::KvCache>,
    /// Row-major `B × len` token validity.
    mask: Vec<Vec<u8>>,
    len: usize,
}

impl KvCache {
    /// An empty cache whose buffers start with room for `capacity` tokens (they grow past it).
    pub fn new(cfg: &ModelConfig, capacity: usize) -> Self {
        let capacity = capacity.max(16);
        KvCache {
            layers: (0..cfg.num_hidden_layers)
                .map(|_| candle_nn::kv_cache::KvCache::new(2, capacity))
                .collect(),
            mask: Vec::new(),
            len: 0,
        }
    }

    /// Number of cached tokens per row.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of rows (0 while empty).
    pub fn batch_size(&self) -> usize {
        self.mask.len()
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.reset();
        }
        self.mask.clear();
        self.len = 0;
    }

    /// Keeps only the given rows (indices into the current batch, in the new order): finished
    /// sequences stop costing work without recomputing the others' keys and values.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let b = self.batch_size();
        if let Some(&bad) = rows.iter().find(|&&r| r >= b) {
            return Err(ModelError::Input(format!(
                "row {bad} is not in a cache of {b} rows"
            )));
        }
        if self.len == 0 {
            return Ok(());
        }
        let index = Tensor::from_vec(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            rows.len(),
            &candle_core::Device::Cpu,
        )?;
        for layer in &mut self.layers {
            let (Some(k), Some(v)) = (layer.k()?, layer.v()?) else {
                continue;
            };
            let index = index.to_device(k.device())?;
            let capacity = layer.k_cache().max_seq_len();
            let mut fresh = candle_nn::kv_cache::KvCache::new(2, capacity);
            let (k, v) = (k.contiguous()?, v.contiguous()?);
            fresh.append(&k.index_select(&index, 0)?, &v.index_select(&index, 0)?)?;
            *layer = fresh;
        }
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        Ok(())
    }

    pub(crate) fn layer_mut(&mut self, l: usize) -> &mut candle_nn::kv_cache::KvCache {
        &mut self.layers[l]
    }

    pub(crate) fn mask_row(&self, row: usize) -> &[u8] {
        &self.mask[row]
    }

    pub(crate) fn push_mask(&mut self, mask: &[u8], b: usize, t: usize) {
        if self.mask.is_empty() {
            self.mask = vec![Vec::new(); b];
        }
        for (row, m) in self.mask.iter_mut().enumerate() {
            m.extend_from_slice(&mask[row * t..(row + 1) * t]);
        }
        self.len += t;
    }
}
