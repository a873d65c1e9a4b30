//! Saving a model as a Hugging Face directory: `model.safetensors` (HF names, `format: pt`
//! metadata), `config.json` (every field of the loaded one, dtype updated) and the tokenizer
//! and generation files copied from the source directory. Every file is written to a
//! temporary name in the target directory and renamed into place.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::transformer::CausalLm;
use crate::weights::{INDEX_FILE, SINGLE_FILE};

/// Files copied unchanged from the source model directory when present.
pub const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
];

/// Writes `tensors` to `path` as one safetensors file (`format: pt`, as transformers writes
/// it), atomically.
pub(crate) fn write_weights(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    write_atomic(path, |tmp| {
        safetensors::serialize_to_file(
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            Some(metadata),
            tmp,
        )
        .map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    })
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result =
        write(&tmp).and_then(|_| std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves `model` to `out` (created if needed) in `dtype` (default: the model's), copying
/// tokenizer/generation files from `source_dir` when given.
pub fn save_model(
    model: &CausalLm,
    out: &Path,
    dtype: Option<DType>,
    source_dir: Option<&Path>,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    let dtype = dtype.unwrap_or(model.dtype());

    let mut tensors = Vec::new();
    for (name, var) in model.named_vars() {
        tensors.push((
            name.clone(),
            var.as_tensor().detach().to_dtype(dtype)?.contiguous()?,
        ));
    }
    write_weights(&out.join(SINGLE_FILE), &tensors)?;

    let mut cfg = model.config().raw.clone();
    if let Value::Object(obj) = &mut cfg {
        let name = Value::from(crate::dtype_name(dtype));
        let mut set = false;
        for key in ["dtype", "torch_dtype"] {
            if obj.contains_key(key) {
                obj.insert(key.into(), name.clone());
                set = true;
            }
        }
        if !set {
            obj.insert("torch_dtype".into(), name);
        }
    }
    let cfg_path = out.join("config.json");
    let text = serde_json::to_string_pretty(&cfg).expect("a JSON value serializes");
    write_atomic(&cfg_path, |tmp| {
        std::fs::write(tmp, text + "\n").map_err(|e| ModelError::io(tmp, e))
    })?;

    if let Some(src) = source_dir {
        let same = src.canonicalize().ok() == out.canonicalize().ok();
        if !same {
            for f in COPIED_FILES {
                let from = src.join(f);
                if from.exists() {
                    write_atomic(&out.join(f), |tmp| {
                        std::fs::copy(&from, tmp)
                            .map(|_| ())
                            .map_err(|e| ModelError::io(&from, e))
                    })?;
                }
            }
        }
    }
    // A sharded index left by an earlier save would shadow nothing (the single file wins on
    // load) but would mislead other tools: remove it now that the new weights are in place.
    let index = out.join(INDEX_FILE);
    if index.exists() {
        std::fs::remove_file(&index).map_err(|e| ModelError::io(&index, e))?;
    }
    Ok(())
}
