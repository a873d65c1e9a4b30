//! Moving small (B, T) tensors to and from the host in f64, and verl's masked statistics.
//!
//! Advantage estimators run without gradients on at most a few thousand numbers, so they are
//! computed on the host in f64 (whatever the input dtype) and returned in the input's dtype
//! and device.

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, TrainError};

/// verl's ε in `masked_mean` (`Σ x·m / (Σ m + 1e-8)`) and in `masked_whiten`
/// (`(x − mean) · 1/√(var + 1e-8)`).
pub const VERL_MASK_EPS: f64 = 1e-8;

/// A row-major (B, T) matrix of f64 on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    /// Row-major values, `b * t` of them.
    pub data: Vec<f64>,
    /// Number of rows (sequences).
    pub b: usize,
    /// Number of columns (padded response length).
    pub t: usize,
}

impl Mat {
    /// A (b, t) matrix of zeros.
    pub fn zeros(b: usize, t: usize) -> Self {
        Mat {
            data: vec![0.0; b * t],
            b,
            t,
        }
    }

    /// From rows of equal length (error on ragged rows).
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let b = rows.len();
        let t = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != t) {
            return Err(TrainError::Shape("rows of different lengths".into()));
        }
        Ok(Mat {
            data: rows.concat(),
            b,
            t,
        })
    }

    /// Reads a rank-2 tensor (any float dtype) as f64.
    pub fn from_tensor(x: &Tensor, what: &str) -> Result<Self> {
        let (b, t) = x.dims2().map_err(|_| {
            TrainError::Shape(format!("{what}: expected (B, T), got {:?}", x.dims()))
        })?;
        let data = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        Ok(Mat { data, b, t })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.t..(i + 1) * self.t]
    }

    /// Element (i, j).
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.t + j]
    }

    /// Mutable element (i, j).
    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut f64 {
        &mut self.data[i * self.t + j]
    }

    /// The rows as vectors.
    pub fn rows(&self) -> Vec<Vec<f64>> {
        (0..self.b).map(|i| self.row(i).to_vec()).collect()
    }

    /// Errors unless `other` has the same shape.
    pub fn check_same(&self, other: &Mat, what: &str) -> Result<()> {
        if (self.b, self.t) != (other.b, other.t) {
            return Err(TrainError::Shape(format!(
                "{what}: ({}, {}) vs ({}, {})",
                self.b, self.t, other.b, other.t
            )));
        }
        Ok(())
    }

    /// Elementwise product.
    pub fn mul(&self, other: &Mat) -> Mat {
        Mat {
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(a, b)| a * b)
                .collect(),
            b: self.b,
            t: self.t,
        }
    }

    /// As a tensor of `dtype` on `device`.
    pub fn to_tensor(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.data, (self.b, self.t), device)?.to_dtype(dtype)?)
    }
}

/// Reads a rank-1 tensor as f64.
pub fn vec_from_tensor(x: &Tensor, what: &str) -> Result<Vec<f64>> {
    let n = x
        .dims1()
        .map_err(|_| TrainError::Shape(format!("{what}: expected (B,), got {:?}", x.dims())))?;
    let v = x.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    debug_assert_eq!(v.len(), n);
    Ok(v)
}

/// verl's `masked_mean` over all elements: `Σ x·m / (Σ m + 1e-8)`.
pub fn masked_mean(x: &Mat, mask: &Mat) -> f64 {
    let s: f64 = x.data.iter().zip(&mask.data).map(|(a, m)| a * m).sum();
    let n: f64 = mask.data.iter().sum();
    s / (n + VERL_MASK_EPS)
}

/// verl's `masked_var` (unbiased): `masked_mean((x − mean)²) · Σm / (Σm − 1)`.
/// Errors when fewer than two positions are unmasked.
pub fn masked_var(x: &Mat, mask: &Mat) -> Result<f64> {
    let mean = masked_mean(x, mask);
    let centered = Mat {
        data: x.data.iter().map(|a| (a - mean) * (a - mean)).collect(),
        b: x.b,
        t: x.t,
    };
    let var = masked_mean(&centered, mask);
    let n: f64 = mask.data.iter().sum();
    if n < 2.0 {
        return Err(TrainError::Empty(format!(
            "whitening needs at least two unmasked positions, got {n}"
        )));
    }
    Ok(var * (n / (n - 1.0)))
}

/// verl's `masked_whiten`: `(x − mean) · 1/√(var + 1e-8)` over the masked positions of the
/// whole batch (mean and unbiased variance from [`masked_mean`]/[`masked_var`]); padded
/// positions are transformed too (callers multiply by the mask where verl does).
pub fn masked_whiten(x: &Mat, mask: &Mat) -> Result<Mat> {
    x.check_same(mask, "masked_whiten")?;
    let mean = masked_mean(x, mask);
    let var = masked_var(x, mask)?;
    let inv = 1.0 / (var + VERL_MASK_EPS).sqrt();
    Ok(Mat {
        data: x.data.iter().map(|a| (a - mean) * inv).collect(),
        b: x.b,
        t: x.t,
    })
}

/// verl's `masked_mean` of a tensor as an f64 (metrics: clip fractions, approx KL).
pub fn masked_mean_tensor(x: &Tensor, mask: &Tensor) -> Result<f64> {
    let s = (x.to_dtype(DType::F64)? * mask.to_dtype(DType::F64)?)?
        .sum_all()?
        .to_scalar::<f64>()?;
    let n = mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    Ok(s / (n + VERL_MASK_EPS))
}

/// Errors unless `a` and `b` have the same shape.
pub fn same_shape(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(TrainError::Shape(format!(
            "{what}: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}
