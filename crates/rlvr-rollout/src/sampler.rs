//! Choosing one token from one row of logits, with its log-probabilities, and the per-row
//! random streams.
//!
//! Order of operations (transformers' warper order): divide by the temperature, keep the
//! top-k, keep the nucleus (top-p) of what is left, renormalise, draw by inverse CDF with one
//! uniform number from the row's stream. Two log-probs are recorded for the chosen token:
//!
//! - `logprob`: `log_softmax(logits / T)[token]`, the tempered distribution before filtering —
//!   what the trainer recomputes from the same logits (interfaces: "logits divided by the
//!   temperature");
//! - `sampler_logprob`: the log-probability under the distribution that actually drew the
//!   token, i.e. after top-k/top-p filtering and renormalisation (equal to `logprob` when no
//!   filter is on; `0` for greedy and top-k = 1).
//!
//! Greedy (temperature 0) takes the argmax (first index on ties, like `torch.argmax`) and
//! records `logprob = log_softmax(logits)[token]` (temperature 1) and `sampler_logprob = 0`.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::params::SamplingParams;

/// Candidates sorted first when top-p runs without top-k; a full sort only happens when the
/// nucleus is larger than this.
const NUCLEUS_PREFIX: usize = 256;

/// The chosen token and its log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// Under the tempered distribution (before top-k/top-p).
    pub logprob: f32,
    /// Under the filtered, renormalised distribution that drew the token.
    pub sampler_logprob: f32,
}

/// The random stream of one completion: ChaCha8 keyed by `(seed, prompt key, sample index)`,
/// so a completion draws the same numbers whatever batch it is generated in.
#[derive(Debug, Clone)]
pub struct RowRng(ChaCha8Rng);

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RowRng {
    pub fn new(seed: u64, prompt_key: u64, sample_index: u64) -> Self {
        let mut state = seed;
        let mut key = [0u8; 32];
        let words = [
            splitmix64(&mut state),
            splitmix64(&mut state) ^ prompt_key.wrapping_mul(0xD6E8_FEB8_6659_FD93),
            splitmix64(&mut state) ^ sample_index.wrapping_mul(0xA076_1D64_78BD_642F),
            splitmix64(&mut state),
        ];
        let mut mix = words[1] ^ words[2].rotate_left(17);
        for (chunk, w) in key.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&(w ^ splitmix64(&mut mix)).to_le_bytes());
        }
        RowRng(ChaCha8Rng::from_seed(key))
    }

    /// A uniform number in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// `log_softmax(row / temperature)` as a vector (f64 accumulation); for tests and checks.
pub fn log_softmax(row: &[f32], temperature: f64) -> Vec<f64> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let scaled: Vec<f64> = row.iter().map(|&x| x as f64 / t).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + scaled.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
    scaled.iter().map(|&x| x - lse).collect()
}

/// Draws tokens from rows of logits; holds scratch buffers reused across calls.
#[derive(Debug, Default)]
pub struct Sampler {
    idx: Vec<u32>,
}

impl Sampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// One token from `logits` (one row, length V) with `u` uniform in `[0, 1)` (unused when
    /// greedy). Returns `None` when the logits are not finite.
    pub fn sample(&mut self, logits: &[f32], params: &SamplingParams, u: f64) -> Option<Sampled> {
        let greedy = params.is_greedy();
        let t = if greedy { 1.0 } else { params.temperature };
        let inv_t = 1.0 / t;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() || logits.iter().any(|x| x.is_nan()) {
            return None;
        }
        let max_s = max as f64 * inv_t;
        // log Z of the tempered distribution.
        let z: f64 = logits
            .iter()
            .map(|&x| (x as f64 * inv_t - max_s).exp())
            .sum();
        let log_z = z.ln();
        let plain = |tok: usize| (logits[tok] as f64 * inv_t - max_s - log_z) as f32;

        if greedy {
            let tok = argmax(logits);
            return Some(Sampled {
                token: tok as u32,
                logprob: plain(tok),
                sampler_logprob: 0.0,
            });
        }
        let v = logits.len();
        let top_k = if params.top_k == 0 || params.top_k >= v {
            v
        } else {
            params.top_k
        };
        let filter_p = params.top_p < 1.0;
        if top_k == v && !filter_p {
            // The whole vocabulary in id order.
            let target = u * z;
            let mut cum = 0.0;
            let mut chosen = None;
            for (i, &x) in logits.iter().enumerate() {
                let w = (x as f64 * inv_t - max_s).exp();
                if w > 0.0 {
                    cum += w;
                    chosen = Some(i);
                    if cum > target {
                        break;
                    }
                }
            }
            let tok = chosen.expect("the max logit has weight 1");
            let lp = plain(tok);
            return Some(Sampled {
                token: tok as u32,
                logprob: lp,
                sampler_logprob: lp,
            });
        }

        // Candidates sorted by logit (descending, lower id first on ties).
        let desc = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        self.idx.clear();
        self.idx.extend(0..v as u32);
        let weight = |i: u32| (logits[i as usize] as f64 * inv_t - max_s).exp();
        // `p_pass`: top-p still has to run over the sorted `idx[..kept]`.
        let (mut kept, p_pass) = if top_k < v {
            self.idx.select_nth_unstable_by(top_k - 1, desc);
            self.idx.truncate(top_k);
            self.idx.sort_unstable_by(desc);
            (top_k, filter_p)
        } else {
            // top-p alone: sort a prefix first, the rest only if the nucleus needs it.
            let prefix = NUCLEUS_PREFIX.min(v);
            if prefix < v {
                self.idx.select_nth_unstable_by(prefix - 1, desc);
            }
            self.idx[..prefix].sort_unstable_by(desc);
            let mut cum = 0.0;
            let mut found = None;
            for (r, &i) in self.idx[..prefix].iter().enumerate() {
                if r > 0 && cum / z >= params.top_p {
                    found = Some(r);
                    break;
                }
                cum += weight(i);
            }
            match found {
                Some(r) => (r, false),
                None if prefix == v => (v, false),
                None => {
                    self.idx.sort_unstable_by(desc);
                    (v, true)
                }
            }
        };
        if p_pass {
            // Nucleus of the distribution renormalised over `idx[..kept]`.
            let zk: f64 = self.idx[..kept].iter().map(|&i| weight(i)).sum();
            let mut cum = 0.0;
            for (r, &i) in self.idx[..kept].iter().enumerate() {
                if r > 0 && cum / zk >= params.top_p {
                    kept = r;
                    break;
                }
                cum += weight(i);
            }
        }
        let kept_idx = &self.idx[..kept];
        let zf: f64 = kept_idx.iter().map(|&i| weight(i)).sum();
        let target = u * zf;
        let mut cum = 0.0;
        let mut tok = kept_idx[0];
        for &i in kept_idx {
            let w = weight(i);
            if w > 0.0 {
                cum += w;
                tok = i;
                if cum > target {
                    break;
                }
            }
        }
        let w = weight(tok);
        Some(Sampled {
            token: tok,
            logprob: plain(tok as usize),
            sampler_logprob: (w.ln() - zf.ln()) as f32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f64, top_p: f64, top_k: usize) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_p,
            top_k,
            ..Default::default()
        }
    }

    /// Logits with probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (ids shuffled).
    fn dyadic() -> Vec<f32> {
        let p = [0.0625f64, 0.5, 0.125, 0.0625, 0.25];
        p.iter().map(|x| x.ln() as f32).collect()
    }

    #[test]
    fn greedy_is_argmax_with_plain_logprob() {
        let l = dyadic();
        let s = Sampler::new()
            .sample(&l, &params(0.0, 1.0, 0), 0.9)
            .unwrap();
        assert_eq!(s.token, 1);
        assert!((s.logprob - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(s.sampler_logprob, 0.0);
    }

    #[test]
    fn top_p_keeps_the_exact_nucleus() {
        let l = dyadic();
        let mut sm = Sampler::new();
        // top_p 0.75: keep 0.5 and 0.25 (mass above the third token is 0.75, not < 0.75).
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..1000 {
            let u = k as f64 / 1000.0;
            let s = sm.sample(&l, &params(1.0, 0.75, 0), u).unwrap();
            seen.insert(s.token);
            let expect = if s.token == 1 {
                2.0 / 3.0
            } else {
                1.0 / 3.0f64
            };
            assert!((s.sampler_logprob as f64 - expect.ln()).abs() < 1e-6);
            let plain = if s.token == 1 { 0.5f64 } else { 0.25 };
            assert!((s.logprob as f64 - plain.ln()).abs() < 1e-6);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 4]);
        // u below 2/3 → token 1, above → token 4 (descending order inverse CDF).
        assert_eq!(sm.sample(&l, &params(1.0, 0.75, 0), 0.66).unwrap().token, 1);
        assert_eq!(sm.sample(&l, &params(1.0, 0.75, 0), 0.67).unwrap().token, 4);
        // top_p 0.76: the 0.125 token joins.
        let s = sm.sample(&l, &params(1.0, 0.76, 0), 0.99).unwrap();
        assert_eq!(s.token, 2);
        assert!((s.sampler_logprob as f64 - (0.125f64 / 0.875).ln()).abs() < 1e-6);
        // Tiny top_p keeps only the best token.
        let s = sm.sample(&l, &params(1.0, 1e-9, 0), 0.99).unwrap();
        assert_eq!((s.token, s.sampler_logprob), (1, 0.0));
    }

    #[test]
    fn top_p_over_a_large_vocabulary_needs_the_full_sort() {
        // 1000 equal logits: the nucleus of 0.9 is 900 tokens (beyond the sorted prefix).
        let l = vec![0.0f32; 1000];
        let mut sm = Sampler::new();
        let s = sm.sample(&l, &params(1.0, 0.9, 0), 0.999).unwrap();
        assert_eq!(s.token, 899);
        assert!((s.sampler_logprob as f64 - (1.0f64 / 900.0).ln()).abs() < 1e-5);
        assert!((s.logprob as f64 - (1.0f64 / 1000.0).ln()).abs() < 1e-5);
    }

    #[test]
    fn top_k_then_top_p_renormalises_in_between() {
        let l = dyadic();
        let mut sm = Sampler::new();
        // top-k 3 keeps 0.5, 0.25, 0.125 (renormalised 4/7, 2/7, 1/7); top-p 0.8 then keeps
        // the first two (mass above the third: 6/7 ≥ 0.8).
        for k in 0..100 {
            let s = sm
                .sample(&l, &params(1.0, 0.8, 3), k as f64 / 100.0)
                .unwrap();
            assert!(s.token == 1 || s.token == 4);
        }
        let s = sm.sample(&l, &params(1.0, 1.0, 3), 0.999).unwrap();
        assert_eq!(s.token, 2);
        assert!((s.sampler_logprob as f64 - (1.0f64 / 7.0).ln()).abs() < 1e-6);
        // top-k 1 is greedy.
        let s = sm.sample(&l, &params(0.7, 1.0, 1), 0.999).unwrap();
        assert_eq!((s.token, s.sampler_logprob), (1, 0.0));
    }

    #[test]
    fn temperature_scales_logprobs_and_frequencies_match() {
        let l: Vec<f32> = vec![1.0, 2.0, -0.5, 0.3];
        let mut sm = Sampler::new();
        let t = 0.6;
        let expect = log_softmax(&l, t);
        let mut rng = RowRng::new(3, 0, 0);
        let mut counts = [0usize; 4];
        let n = 20000;
        for _ in 0..n {
            let s = sm.sample(&l, &params(t, 1.0, 0), rng.uniform()).unwrap();
            assert!((s.logprob as f64 - expect[s.token as usize]).abs() < 1e-6);
            assert_eq!(s.logprob, s.sampler_logprob);
            counts[s.token as usize] += 1;
        }
        for (c, lp) in counts.iter().zip(&expect) {
            let freq = *c as f64 / n as f64;
            assert!((freq - lp.exp()).abs() < 0.015, "{counts:?} vs {expect:?}");
        }
    }

    #[test]
    fn non_finite_logits_are_refused() {
        let mut sm = Sampler::new();
        assert!(sm
            .sample(&[0.0, f32::NAN], &params(1.0, 1.0, 0), 0.5)
            .is_none());
        assert!(sm
            .sample(&[f32::NEG_INFINITY; 3], &params(1.0, 1.0, 0), 0.5)
            .is_none());
    }

    #[test]
    fn streams_differ_by_key_and_repeat() {
        let draw = |s, p, i| {
            let mut r = RowRng::new(s, p, i);
            (0..4).map(|_| r.uniform()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 2, 4));
        assert_ne!(draw(1, 2, 3), draw(1, 3, 3));
        assert_ne!(draw(1, 2, 3), draw(2, 2, 3));
        assert_ne!(draw(0, 0, 1), draw(0, 1, 0));
    }
}
