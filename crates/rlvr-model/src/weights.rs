//! Reading tensors from a Hugging Face checkpoint: `model.safetensors`, or the shards listed
//! in `model.safetensors.index.json`; any of f32/bf16/f16 converted to the compute dtype.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{read_json, ModelError, Result};

/// Index file of sharded checkpoints.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// Memory-mapped checkpoint tensors, looked up by Hugging Face name.
pub struct Checkpoint {
    /// The file named in errors: `model.safetensors` or the index.
    pub path: PathBuf,
    /// The safetensors files read.
    pub files: Vec<PathBuf>,
    names: HashSet<String>,
    st: MmapedSafetensors,
}

impl Checkpoint {
    /// Opens the checkpoint of a model directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        let (path, files) = if single.exists() {
            (single.clone(), vec![single])
        } else if index.exists() {
            let v = read_json(&index)?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| {
                    ModelError::config(&index, "weight_map", "missing or not an object")
                })?;
            let mut shards = BTreeSet::new();
            for (name, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    ModelError::config(&index, format!("weight_map.{name}"), "expected a file name")
                })?;
                shards.insert(file.to_string());
            }
            let files: Vec<PathBuf> = shards.iter().map(|f| dir.join(f)).collect();
            for f in &files {
                if !f.exists() {
                    return Err(ModelError::config(
                        &index,
                        "weight_map",
                        format!("shard {} does not exist", f.display()),
                    ));
                }
            }
            (index, files)
        } else {
            return Err(ModelError::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {SINGLE_FILE} or {INDEX_FILE} in the model directory"),
                ),
            ));
        };
        // SAFETY: the files are mapped read-only; rlvr never writes a checkpoint in place
        // (saving goes to a temporary file that is renamed over the old one).
        let st =
            unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| ModelError::Safetensors {
                path: path.clone(),
                msg: format!("cannot read safetensors: {e}"),
            })?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Checkpoint {
            path,
            files,
            names,
            st,
        })
    }

    /// Whether the checkpoint holds a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// All tensor names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The stored dtype of a tensor.
    pub fn stored_dtype(&self, name: &str) -> Option<DType> {
        let view = self.st.get(name).ok()?;
        match view.dtype() {
            safetensors::Dtype::F32 => Some(DType::F32),
            safetensors::Dtype::BF16 => Some(DType::BF16),
            safetensors::Dtype::F16 => Some(DType::F16),
            safetensors::Dtype::F64 => Some(DType::F64),
            _ => None,
        }
    }

    /// Loads `name`, checks its shape, converts it to `dtype` on `device`.
    pub fn load(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !self.contains(name) {
            return Err(ModelError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            });
        }
        let t = self.st.load(name, &Device::Cpu)?;
        if t.dims() != shape {
            return Err(ModelError::TensorShape {
                path: self.path.clone(),
                tensor: name.to_string(),
                found: t.dims().to_vec(),
                expected: shape.to_vec(),
            });
        }
        match t.dtype() {
            DType::F32 | DType::BF16 | DType::F16 | DType::F64 => {}
            other => {
                return Err(ModelError::config(
                    &self.path,
                    name,
                    format!("unsupported tensor dtype {other:?} (supported: f32, bf16, f16)"),
                ))
            }
        }
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }
}
