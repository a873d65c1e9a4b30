//! Where computation runs: `cpu`, `cuda` or `cuda:N`, as every command's `--device` flag and
//! the training config's `model.device` spell it. Batches are built on the host and moved to
//! the device once ([`crate::Batch`], the trainers' `Tensor::from_vec(.., device)`).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// A compute device by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The host CPU (the default).
    #[default]
    Cpu,
    /// CUDA device N (`cuda` is `cuda:0`); needs a build with the `cuda` feature.
    Cuda(usize),
}

impl DeviceSpec {
    /// Opens the device. Without the `cuda` feature, or without a GPU or driver, a CUDA device
    /// is a [`ModelError::Device`] that says which and what to do.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(ModelError::Device {
                        spec: self.to_string(),
                        msg: "this rlvr was built without CUDA; rebuild with \
                              `eval \"$(bash scripts/cuda-toolchain.sh)\"; cargo build --release \
                              -p rlvr-cli --features cuda`"
                            .into(),
                    });
                }
                Device::new_cuda(n).map_err(|e| ModelError::Device {
                    spec: self.to_string(),
                    msg: format!("cannot open it (no such GPU, or no CUDA driver): {e}"),
                })
            }
        }
    }

    /// Whether this is a CUDA device.
    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |msg: &str| ModelError::Device {
            spec: s.to_string(),
            msg: msg.to_string(),
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => {
                let n = other
                    .strip_prefix("cuda:")
                    .ok_or_else(|| bad("expected cpu, cuda or cuda:N"))?;
                n.parse()
                    .map(DeviceSpec::Cuda)
                    .map_err(|_| bad("expected cuda:N with N a GPU index (0, 1, ...)"))
            }
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One candle kernel module exercised on a device: the largest |device − CPU| over its ops.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTouch {
    /// candle-kernels' module (`affine`, `binary`, ..., plus `matmul` for cuBLAS and `nn` for
    /// candle-nn's fused softmax / RMSNorm / RoPE).
    pub module: &'static str,
    /// Largest absolute difference from the CPU over the module's ops (NaN: an op failed).
    pub max_abs_diff: f64,
    /// The error of an op that failed, if any.
    pub error: Option<String>,
}

/// Runs ops from every candle kernel module (affine, binary, cast, conv, fill, indexing,
/// quantized, reduce, sort, ternary, unary), cuBLAS matmul and candle-nn's fused inference
/// ops on `device` and compares each with the CPU. On CUDA each module's PTX is loaded (JIT)
/// at its first op, so a PTX/driver mismatch shows here, module by module.
pub fn touch_kernels(device: &Device) -> Vec<KernelTouch> {
    type Op = fn(&Device) -> candle_core::Result<Vec<Tensor>>;
    let ops: [(&'static str, Op); 13] = [
        ("affine", |d| Ok(vec![x(d)?.affine(2.0, -1.0)?])),
        ("binary", |d| {
            let (a, b) = (x(d)?, x(d)?.exp()?);
            Ok(vec![(&a + &b)?, (&a * &b)?, (&a / &b)?, a.maximum(&b)?])
        }),
        ("cast", |d| {
            let a = x(d)?;
            Ok(vec![
                a.to_dtype(DType::BF16)?.to_dtype(DType::F32)?,
                a.to_dtype(DType::F16)?.to_dtype(DType::F32)?,
                a.to_dtype(DType::F64)?.to_dtype(DType::F32)?,
            ])
        }),
        ("conv", |d| {
            let a = x(d)?.reshape((1, 4, 16))?;
            let k = x(d)?.narrow(1, 0, 6)?.reshape((2, 4, 3))?;
            Ok(vec![a.conv1d(&k, 1, 1, 1, 1)?])
        }),
        ("fill", |d| {
            Ok(vec![
                Tensor::ones((4, 16), DType::F32, d)?,
                Tensor::full(0.5f32, (4, 16), d)?,
            ])
        }),
        ("indexing", |d| {
            let a = x(d)?;
            let ids = Tensor::new(&[3u32, 0, 2, 2], d)?;
            let sel = a.index_select(&ids, 0)?;
            let g = a.gather(&Tensor::new(&[[1u32], [0], [15], [7]], d)?, 1)?;
            let added = Tensor::zeros((4, 16), DType::F32, d)?.index_add(&ids, &a, 0)?;
            Ok(vec![sel, g, added])
        }),
        ("quantized", |d| {
            use candle_core::quantized::{GgmlDType, QTensor};
            let a = x(d)?.reshape((2, 32))?;
            Ok(vec![QTensor::quantize(&a, GgmlDType::Q8_0)?.dequantize(d)?])
        }),
        ("reduce", |d| {
            let a = x(d)?;
            Ok(vec![
                a.sum_keepdim(1)?,
                a.max_keepdim(1)?,
                a.min_keepdim(0)?,
                a.argmax_keepdim(1)?.to_dtype(DType::F32)?,
            ])
        }),
        ("sort", |d| {
            Ok(vec![x(d)?
                .arg_sort_last_dim(false)?
                .to_dtype(DType::F32)?])
        }),
        ("ternary", |d| {
            let a = x(d)?;
            Ok(vec![a.ge(0.0)?.where_cond(&a, &a.neg()?)?])
        }),
        ("unary", |d| {
            let a = x(d)?;
            Ok(vec![
                a.exp()?,
                a.tanh()?,
                a.abs()?.sqrt()?,
                a.silu()?,
                a.sqr()?,
            ])
        }),
        ("matmul", |d| {
            let a = x(d)?;
            Ok(vec![a.matmul(&a.t()?)?])
        }),
        ("nn", |d| {
            let a = x(d)?;
            let w = Tensor::ones(16, DType::F32, d)?;
            let q = a.reshape((1, 1, 4, 16))?;
            let cs = x(d)?.narrow(1, 0, 8)?;
            Ok(vec![
                candle_nn::ops::softmax_last_dim(&a)?,
                candle_nn::ops::rms_norm(&a, &w, 1e-6)?,
                candle_nn::rotary_emb::rope(&q.contiguous()?, &cs.cos()?, &cs.sin()?)?,
            ])
        }),
    ];
    ops.iter()
        .map(|(module, op)| {
            let compare = || -> candle_core::Result<f64> {
                let (on_dev, on_cpu) = (op(device)?, op(&Device::Cpu)?);
                let mut worst = 0f64;
                for (a, b) in on_dev.iter().zip(&on_cpu) {
                    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
                    let diff = (a - b.to_dtype(DType::F64)?)?.abs()?.max_all()?;
                    worst = worst.max(diff.to_scalar::<f64>()?);
                }
                Ok(worst)
            };
            match compare() {
                Ok(d) => KernelTouch {
                    module,
                    max_abs_diff: d,
                    error: None,
                },
                Err(e) => KernelTouch {
                    module,
                    max_abs_diff: f64::NAN,
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}

/// A fixed (4, 16) test tensor with values in [−2, 2).
fn x(d: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..64)
        .map(|i| ((i * 37 % 64) as f32) / 16.0 - 2.0)
        .collect();
    Tensor::from_vec(v, (4, 16), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("CUDA:3", DeviceSpec::Cuda(3)),
            ("gpu", DeviceSpec::Cuda(0)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
            assert_eq!(d.to_string().parse::<DeviceSpec>().unwrap(), d);
        }
        for bad in ["", "tpu", "cuda:", "cuda:-1", "cuda:x", "metal"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains("expected"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&DeviceSpec::Cuda(1)).unwrap();
        assert_eq!(json, "\"cuda:1\"");
        assert!(serde_json::from_str::<DeviceSpec>("\"npu\"").is_err());
    }

    #[test]
    fn cpu_opens_and_a_missing_gpu_is_a_clear_error() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        // No build of CI has a GPU: with or without the cuda feature, cuda:0 is refused with
        // a message naming the device (RLVR_REQUIRE_CUDA=1 marks a machine that has one).
        if std::env::var("RLVR_REQUIRE_CUDA").as_deref() != Ok("1") {
            if let Err(e) = DeviceSpec::Cuda(0).open() {
                let msg = e.to_string();
                assert!(msg.starts_with("device `cuda:0`"), "{msg}");
            }
        }
    }

    #[test]
    fn every_kernel_module_runs_on_the_cpu() {
        let t = touch_kernels(&Device::Cpu);
        assert_eq!(t.len(), 13);
        for k in &t {
            assert_eq!(k.error, None, "{}", k.module);
            assert_eq!(k.max_abs_diff, 0.0, "{}", k.module);
        }
    }
}
