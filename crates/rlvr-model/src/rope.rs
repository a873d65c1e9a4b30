//! Rotary position embeddings: inverse frequencies for every supported `rope_type`, following
//! transformers' `modeling_rope_utils` (which follows the papers), and the cos/sin tables.

use candle_core::{DType, Device, Tensor};

use crate::config::RopeScaling;
use crate::error::Result;

/// Inverse frequencies (length `head_dim / 2`) and the factor cos/sin are multiplied by.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeFrequencies {
    pub inv_freq: Vec<f64>,
    pub attention_factor: f64,
}

impl RopeFrequencies {
    /// Rounds the inverse frequencies through `dtype` (bf16/f16; others leave them as they
    /// are). transformers stores `inv_freq` as a buffer that is cast with the model, so a
    /// checkpoint loaded in its bf16 `dtype` runs RoPE with bf16-rounded frequencies.
    pub fn rounded_to(mut self, dtype: DType) -> Self {
        for f in &mut self.inv_freq {
            let x = *f as f32;
            *f = match dtype {
                DType::BF16 => half::bf16::from_f32(x).to_f64(),
                DType::F16 => half::f16::from_f32(x).to_f64(),
                _ => continue,
            };
        }
        self
    }
}

fn default_inv_freq(base: f64, dim: usize) -> Vec<f64> {
    (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
        .collect()
}

/// Frequencies for a forward pass whose largest position is `max_position` (only `dynamic`
/// depends on it: its base grows once `max_position + 1` exceeds `max_position_embeddings`).
pub fn frequencies(
    scaling: &RopeScaling,
    theta: f64,
    head_dim: usize,
    max_position_embeddings: usize,
    max_position: usize,
) -> RopeFrequencies {
    let dim = head_dim;
    let plain = |inv_freq| RopeFrequencies {
        inv_freq,
        attention_factor: 1.0,
    };
    match *scaling {
        RopeScaling::Default => plain(default_inv_freq(theta, dim)),
        RopeScaling::Linear { factor } => plain(
            default_inv_freq(theta, dim)
                .into_iter()
                .map(|f| f / factor)
                .collect(),
        ),
        RopeScaling::Dynamic { factor } => {
            // transformers' dynamic NTK: base · ((factor · L / L0) − (factor − 1))^(d / (d − 2)),
            // with L = max(seq_len, L0). transformers keeps the largest length seen so far;
            // rlvr computes it per forward pass, which is the same for a fresh model.
            let l0 = max_position_embeddings as f64;
            let seq_len = ((max_position + 1) as f64).max(l0);
            let base = theta
                * ((factor * seq_len / l0) - (factor - 1.0)).powf(dim as f64 / (dim as f64 - 2.0));
            plain(default_inv_freq(base, dim))
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old_ctx,
        } => {
            let low_freq_wavelen = old_ctx / low_freq_factor;
            let high_freq_wavelen = old_ctx / high_freq_factor;
            let inv_freq = default_inv_freq(theta, dim)
                .into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_freq_wavelen {
                        f
                    } else if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        let smooth = (old_ctx / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
            plain(inv_freq)
        }
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            beta_slow,
            attention_factor,
            truncate,
        } => {
            let d = dim as f64;
            let correction_dim = |rotations: f64| {
                d * (original_max_position_embeddings / (rotations * 2.0 * std::f64::consts::PI))
                    .ln()
                    / (2.0 * theta.ln())
            };
            let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
            if truncate {
                low = low.floor();
                high = high.ceil();
            }
            let low = low.max(0.0);
            let high = high.min(d - 1.0);
            let high = if low == high { high + 0.001 } else { high };
            let inv_freq = (0..dim / 2)
                .map(|i| {
                    let pos_freq = theta.powf((2 * i) as f64 / d);
                    let extrapolation = 1.0 / pos_freq;
                    let interpolation = 1.0 / (factor * pos_freq);
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                    let extrapolation_factor = 1.0 - ramp;
                    interpolation * (1.0 - extrapolation_factor)
                        + extrapolation * extrapolation_factor
                })
                .collect();
            RopeFrequencies {
                inv_freq,
                attention_factor,
            }
        }
    }
}

/// cos and sin of shape `(B, T, head_dim / 2)` (in f32, like transformers) for the given
/// positions (row-major `B × T`), already multiplied by the attention factor.
pub fn cos_sin_half(
    freqs: &RopeFrequencies,
    positions: &[u32],
    batch: usize,
    seq: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = freqs.inv_freq.len();
    // Single-precision inverse frequencies and products, as transformers computes them.
    let inv: Vec<f32> = freqs.inv_freq.iter().map(|&f| f as f32).collect();
    let scale = freqs.attention_factor as f32;
    let mut cos = Vec::with_capacity(positions.len() * half);
    let mut sin = Vec::with_capacity(positions.len() * half);
    for &p in positions {
        for &f in &inv {
            let angle = p as f32 * f;
            cos.push(angle.cos() * scale);
            sin.push(angle.sin() * scale);
        }
    }
    Ok((
        Tensor::from_vec(cos, (batch, seq, half), device)?,
        Tensor::from_vec(sin, (batch, seq, half), device)?,
    ))
}

/// Applies RoPE differentiably (training path): `x · cos + rotate_half(x) · sin`, `x` of shape
/// `(B, H, T, D)`, cos/sin of shape `(B, T, D/2)`. CPU f32 uses the fused kernel with its
/// hand-written backward; elsewhere [`apply_composed`].
pub fn apply_differentiable(x: &Tensor, cos_half: &Tensor, sin_half: &Tensor) -> Result<Tensor> {
    if crate::fused::eligible(x) {
        return crate::fused::rope(x, cos_half, sin_half);
    }
    apply_composed(x, cos_half, sin_half)
}

/// RoPE from basic candle ops (any device and dtype; backward by candle).
pub fn apply_composed(x: &Tensor, cos_half: &Tensor, sin_half: &Tensor) -> Result<Tensor> {
    let d = x.dim(3)?;
    let dtype = x.dtype();
    let cos = Tensor::cat(&[cos_half, cos_half], 2)?
        .unsqueeze(1)?
        .to_dtype(dtype)?;
    let sin = Tensor::cat(&[sin_half, sin_half], 2)?
        .unsqueeze(1)?
        .to_dtype(dtype)?;
    let x1 = x.narrow(3, 0, d / 2)?;
    let x2 = x.narrow(3, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
    Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
}

/// Applies RoPE with candle's fused kernel (inference path; no backward).
pub fn apply_fused(x: &Tensor, cos_half: &Tensor, sin_half: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let cos = if cos_half.dtype() == dtype {
        cos_half.clone()
    } else {
        cos_half.to_dtype(dtype)?
    };
    let sin = if sin_half.dtype() == dtype {
        sin_half.clone()
    } else {
        sin_half.to_dtype(dtype)?
    };
    Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn default_matches_formula() {
        let f = frequencies(&RopeScaling::Default, 10000.0, 8, 512, 0);
        let expected = [
            1.0,
            10000f64.powf(-0.25),
            10000f64.powf(-0.5),
            10000f64.powf(-0.75),
        ];
        for (a, b) in f.inv_freq.iter().zip(expected) {
            assert!(close(*a, b), "{a} vs {b}");
        }
        assert_eq!(f.attention_factor, 1.0);
    }

    #[test]
    fn linear_divides_by_factor() {
        let base = frequencies(&RopeScaling::Default, 500000.0, 16, 512, 0);
        let lin = frequencies(&RopeScaling::Linear { factor: 4.0 }, 500000.0, 16, 512, 0);
        for (a, b) in lin.inv_freq.iter().zip(&base.inv_freq) {
            assert!(close(*a, b / 4.0));
        }
    }

    #[test]
    fn dynamic_grows_base_only_past_context() {
        let s = RopeScaling::Dynamic { factor: 2.0 };
        let short = frequencies(&s, 10000.0, 8, 16, 15);
        assert_eq!(
            short.inv_freq,
            frequencies(&RopeScaling::Default, 10000.0, 8, 16, 0).inv_freq
        );
        // L = 32, L0 = 16, factor 2: base · (2·2 − 1)^(8/6)
        let long = frequencies(&s, 10000.0, 8, 16, 31);
        let base = 10000.0 * 3f64.powf(8.0 / 6.0);
        let expected = default_inv_freq(base, 8);
        for (a, b) in long.inv_freq.iter().zip(expected) {
            assert!(close(*a, b));
        }
        assert!(long.inv_freq[1] < short.inv_freq[1]);
    }

    #[test]
    fn llama3_bands() {
        // head_dim 16, theta 500000, factor 8, low 1, high 4, original context 16:
        // wavelengths 2π/θ^(-2i/16); high_freq_wavelen = 4, low_freq_wavelen = 16.
        let s = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 16.0,
        };
        let base = default_inv_freq(500000.0, 16);
        let f = frequencies(&s, 500000.0, 16, 512, 0);
        for (i, (&got, &b)) in f.inv_freq.iter().zip(&base).enumerate() {
            let wavelen = 2.0 * std::f64::consts::PI / b;
            let expected = if wavelen < 4.0 {
                b
            } else if wavelen > 16.0 {
                b / 8.0
            } else {
                let smooth = (16.0 / wavelen - 1.0) / 3.0;
                (1.0 - smooth) * b / 8.0 + smooth * b
            };
            assert!(close(got, expected), "i={i}: {got} vs {expected}");
        }
        // band 0 (wavelength 2π) lies in the middle band; the last ones are divided by 8
        assert!(close(f.inv_freq[7], base[7] / 8.0));
        assert!(f.inv_freq[0] < base[0] && f.inv_freq[0] > base[0] / 8.0);
    }

    #[test]
    fn yarn_matches_published_formula() {
        // YaRN (Peng et al. 2023), as in transformers: dim 64, base 10000, factor 4,
        // original context 2048, beta_fast 32, beta_slow 1.
        let factor = 4.0f64;
        let s = RopeScaling::Yarn {
            factor,
            original_max_position_embeddings: 2048.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            attention_factor: 0.1 * factor.ln() + 1.0,
            truncate: true,
        };
        let f = frequencies(&s, 10000.0, 64, 8192, 0);
        let corr = |r: f64| {
            64.0 * (2048.0 / (r * 2.0 * std::f64::consts::PI)).ln() / (2.0 * 10000f64.ln())
        };
        let low = corr(32.0).floor(); // 8.06 → 8
        let high = corr(1.0).ceil(); // 20.1 → 21
        assert_eq!((low, high), (8.0, 21.0));
        for i in 0..32 {
            let pos = 10000f64.powf(2.0 * i as f64 / 64.0);
            let got = f.inv_freq[i];
            if (i as f64) <= low {
                assert!(close(got, 1.0 / pos), "extrapolated band {i}");
            } else if (i as f64) >= high {
                assert!(close(got, 1.0 / (factor * pos)), "interpolated band {i}");
            } else {
                let ramp = (i as f64 - low) / (high - low);
                let expected = (1.0 / (factor * pos)) * ramp + (1.0 / pos) * (1.0 - ramp);
                assert!(close(got, expected), "ramp band {i}");
            }
        }
        assert!((f.attention_factor - 1.138_629_436_111_989).abs() < 1e-12);
    }

    #[test]
    fn differentiable_and_fused_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = crate::fused::tests::noise(0.0, 1.0, (2, 3, 5, 8), 7);
        let freqs = frequencies(&RopeScaling::Default, 10000.0, 8, 512, 0);
        let positions: Vec<u32> = vec![0, 1, 2, 3, 4, 3, 4, 5, 6, 7];
        let (c, s) = cos_sin_half(&freqs, &positions, 2, 5, &dev)?;
        let a = apply_differentiable(&x, &c, &s)?;
        let b = apply_fused(&x, &c, &s)?;
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        Ok(())
    }
}
