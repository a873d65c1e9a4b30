//! [`ScalarHeadModel`]: a [`CausalLm`] backbone with a scalar head — the one home of the PPO
//! critic (a value per token) and the reward model (a score read at chosen positions).
//!
//! The head is `score.weight`, `[1, hidden]`, no bias: Hugging Face's
//! `*ForSequenceClassification` with `num_labels = 1`. The file format is an ordinary HF model
//! directory: `config.json` (the backbone's fields, `architectures:
//! ["<Family>ForSequenceClassification"]`, `num_labels: 1`, `id2label`/`label2id`, the saved
//! dtype, plus whatever entries the owner adds), `model.safetensors` (the backbone without
//! `lm_head.weight`, which sequence classifiers do not have, and `score.weight`) and the
//! tokenizer/generation files copied from the directory the model came from.
//!
//! Loading accepts that format, a `*ForSequenceClassification` checkpoint from transformers,
//! a causal LM (the head is then initialised, see [`HeadInit`]) and the PPO critic directories
//! rlvr wrote before this format (`value_head.safetensors` holding `value_head.weight`,
//! `[hidden, 1]`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use serde_json::{json, Map, Value};

use crate::config::ModelConfig;
use crate::error::{read_json, ModelError, Result};
use crate::save::{write_atomic, write_weights, COPIED_FILES};
use crate::transformer::{Batch, CausalLm, Mode};
use crate::weights::{Checkpoint, SINGLE_FILE};

/// Name of the scalar head, as in transformers' sequence classifiers.
pub const HEAD: &str = "score.weight";
/// The untied LM head a scalar-head model neither uses, trains nor saves.
const LM_HEAD: &str = "lm_head.weight";
/// The head file of the PPO critic directories written before this format.
pub const LEGACY_HEAD_FILE: &str = "value_head.safetensors";
/// The tensor in [`LEGACY_HEAD_FILE`] (`[hidden, 1]`).
pub const LEGACY_HEAD: &str = "value_head.weight";

/// How the head starts when the checkpoint has none.
#[derive(Clone, Copy)]
pub enum HeadInit<'a> {
    /// Zeros: every value is 0 at first (the PPO critic).
    Zeros,
    /// The values `f(hidden, initializer_range)` (`initializer_range` from `config.json`, else
    /// 0.02); the reward model draws them from a seeded normal.
    With(&'a dyn Fn(usize, f64) -> Vec<f32>),
}

/// Where the head of a loaded model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSource {
    /// `score.weight` in the checkpoint.
    Checkpoint,
    /// A critic directory of the earlier format (`value_head.safetensors`).
    Legacy,
    /// Initialised by [`HeadInit`]: the checkpoint had no head.
    Initialised,
}

/// A backbone plus a scalar head `score.weight` (`[1, hidden]`).
pub struct ScalarHeadModel {
    backbone: CausalLm,
    head: Var,
    head_source: HeadSource,
    source_dir: Option<PathBuf>,
}

impl ScalarHeadModel {
    /// A model from a loaded backbone and a fresh head (`source_dir`: where tokenizer files
    /// are copied from when saving).
    pub fn from_backbone(
        backbone: CausalLm,
        init: HeadInit<'_>,
        source_dir: Option<&Path>,
    ) -> Result<Self> {
        let head = init_head(&backbone, init)?;
        Ok(ScalarHeadModel {
            head: Var::from_tensor(&head)?,
            backbone,
            head_source: HeadSource::Initialised,
            source_dir: source_dir.map(Path::to_path_buf),
        })
    }

    /// Loads a model directory (see the module docs for what is accepted) in `dtype` (default
    /// f32). A `num_labels` (or `id2label`) other than 1 is refused.
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: Option<DType>,
        init: HeadInit<'_>,
    ) -> Result<Self> {
        let dtype = dtype.unwrap_or(DType::F32);
        let config_path = dir.join("config.json");
        let mut raw = read_json(&config_path)?;
        // The backbone is parsed as its causal-LM twin (`Qwen2ForSequenceClassification` →
        // `Qwen2ForCausalLM`); saving names the classifier again.
        if let Some(Value::Array(archs)) = raw.get_mut("architectures") {
            for a in archs.iter_mut() {
                if let Some(base) = a
                    .as_str()
                    .and_then(|s| s.strip_suffix("ForSequenceClassification"))
                {
                    *a = Value::String(format!("{base}ForCausalLM"));
                }
            }
        }
        let cfg = ModelConfig::from_value(raw, &config_path)?;
        let num_labels = cfg
            .raw
            .get("num_labels")
            .and_then(Value::as_u64)
            .or_else(|| {
                cfg.raw
                    .get("id2label")
                    .and_then(Value::as_object)
                    .map(|m| m.len() as u64)
            });
        if let Some(n) = num_labels.filter(|&n| n != 1) {
            return Err(ModelError::config(
                &config_path,
                "num_labels",
                format!("a scalar-head model has one label, this config has {n}"),
            ));
        }
        let ckpt = Checkpoint::open(dir)?;
        let (hidden, vocab) = (cfg.hidden_size, cfg.vocab_size);
        let backbone = CausalLm::from_tensors(cfg, device, dtype, |name, shape| {
            if name == LM_HEAD && !ckpt.contains(name) {
                // Sequence classifiers have no LM head; a scalar-head model never uses it.
                return Ok(Tensor::zeros((vocab, hidden), dtype, device)?);
            }
            ckpt.load(name, shape, dtype, device)
        })?;
        let legacy = dir.join(LEGACY_HEAD_FILE);
        let (head, head_source) = if ckpt.contains(HEAD) {
            (
                ckpt.load(HEAD, &[1, hidden], dtype, device)?,
                HeadSource::Checkpoint,
            )
        } else if legacy.exists() {
            (
                read_legacy_head(&legacy, hidden, device)?.to_dtype(dtype)?,
                HeadSource::Legacy,
            )
        } else {
            (init_head(&backbone, init)?, HeadSource::Initialised)
        };
        Ok(ScalarHeadModel {
            backbone,
            head: Var::from_tensor(&head)?,
            head_source,
            source_dir: Some(dir.to_path_buf()),
        })
    }

    /// The transformer under the head.
    pub fn backbone(&self) -> &CausalLm {
        &self.backbone
    }

    /// The head `score.weight`, `[1, hidden]`.
    pub fn head(&self) -> &Var {
        &self.head
    }

    /// Where the head came from.
    pub fn head_source(&self) -> HeadSource {
        self.head_source
    }

    /// The directory the model was loaded from (tokenizer files are copied from it on save).
    pub fn source_dir(&self) -> Option<&Path> {
        self.source_dir.as_deref()
    }

    /// The trained variables with their HF names: the backbone without an untied
    /// `lm_head.weight`, then `score.weight`. The order of [`vars`](Self::vars).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.backbone
            .named_vars()
            .iter()
            .filter(|(n, _)| n != LM_HEAD)
            .cloned()
            .chain(std::iter::once((HEAD.to_string(), self.head.clone())))
            .collect()
    }

    /// Every trainable parameter (backbone, then head) for an optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The names of [`vars`](Self::vars), in order (for the optimiser's state file).
    pub fn var_names(&self) -> Vec<String> {
        self.named_vars().into_iter().map(|(n, _)| n).collect()
    }

    /// Every saved tensor with its HF name (detached), as [`named_vars`](Self::named_vars).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect()
    }

    /// The head applied to hidden states `(..., hidden)`: `(...)`. `Mode::Train` keeps the
    /// graph through the head.
    pub fn head_of(&self, hidden: &Tensor, mode: Mode) -> Result<Tensor> {
        let w = match mode {
            Mode::Train => self.head.as_tensor().clone(),
            _ => self.head.as_tensor().detach(),
        };
        let dims = hidden.dims().to_vec();
        let (&h, lead) = dims
            .split_last()
            .ok_or_else(|| ModelError::Input("hidden states without dimensions".into()))?;
        let rows: usize = lead.iter().product();
        let out = hidden
            .reshape((rows, h))?
            .matmul(&w.to_dtype(hidden.dtype())?.t()?)?
            .reshape(lead)?;
        Ok(out)
    }

    /// The value of every position of a batch, `(B, T)` (the critic reads the positions that
    /// predict each response token).
    pub fn values(&self, batch: &Batch, mode: Mode) -> Result<Tensor> {
        let hidden = self.backbone.hidden_states(batch, None, mode)?;
        self.head_of(&hidden, mode)
    }

    /// The backbone's hidden states `(B, T, hidden)` of a batch and the head read at the
    /// positions `reads[b]` of each row `b`, `(N,)` in row order (the reward model's scores).
    pub fn scores_at(
        &self,
        batch: &Batch,
        reads: &[Vec<usize>],
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let hidden = self.backbone.hidden_states(batch, None, mode)?;
        let (b, t, h) = hidden.dims3()?;
        if reads.len() != b {
            return Err(ModelError::Input(format!(
                "{} read lists for a batch of {b}",
                reads.len()
            )));
        }
        let mut idx = Vec::new();
        for (row, r) in reads.iter().enumerate() {
            for &p in r {
                if p >= t {
                    return Err(ModelError::Input(format!(
                        "read position {p} outside a batch of width {t}"
                    )));
                }
                idx.push((row * t + p) as u32);
            }
        }
        let n = idx.len();
        let idx = Tensor::from_vec(idx, n, hidden.device())?;
        let picked = hidden.reshape((b * t, h))?.index_select(&idx, 0)?;
        let scores = self.head_of(&picked, mode)?;
        Ok((hidden, scores))
    }

    /// The `config.json` this model saves: the backbone's fields, the sequence-classification
    /// architecture, one label, the saved dtype, then `extra` (inserted last, so it may
    /// override any of them).
    pub fn config_json(&self, extra: &Map<String, Value>) -> Value {
        let cfg = self.backbone.config();
        let mut raw = cfg.raw.clone();
        if let Value::Object(obj) = &mut raw {
            let arch = cfg
                .family
                .architecture()
                .replace("ForCausalLM", "ForSequenceClassification");
            obj.insert("architectures".into(), json!([arch]));
            obj.insert("num_labels".into(), json!(1));
            obj.insert("id2label".into(), json!({"0": "LABEL_0"}));
            obj.insert("label2id".into(), json!({"LABEL_0": 0}));
            let name = json!(crate::dtype_name(self.backbone.dtype()));
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
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        raw
    }

    /// Writes the model into `dir` (created): `model.safetensors` (in the model's dtype,
    /// `format: pt`), `config.json` ([`config_json`](Self::config_json) with `extra`) and the
    /// tokenizer/generation files of the source directory. Each file is written to a
    /// temporary name and renamed into place; a directory-level swap is the caller's.
    pub fn save(&self, dir: &Path, extra: &Map<String, Value>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let tensors: Vec<(String, Tensor)> = self
            .named_tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.contiguous()?)))
            .collect::<Result<_>>()?;
        write_weights(&dir.join(SINGLE_FILE), &tensors)?;
        let cfg_path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.config_json(extra)).expect("JSON serializes");
        write_atomic(&cfg_path, |tmp| {
            std::fs::write(tmp, text + "\n").map_err(|e| ModelError::io(tmp, e))
        })?;
        // A head file of the earlier critic format would shadow nothing but mislead.
        let legacy = dir.join(LEGACY_HEAD_FILE);
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(|e| ModelError::io(&legacy, e))?;
        }
        if let Some(src) = &self.source_dir {
            if src.canonicalize().ok() != dir.canonicalize().ok() {
                for f in COPIED_FILES {
                    let from = src.join(f);
                    if from.exists() {
                        write_atomic(&dir.join(f), |tmp| {
                            std::fs::copy(&from, tmp)
                                .map(|_| ())
                                .map_err(|e| ModelError::io(&from, e))
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn init_head(backbone: &CausalLm, init: HeadInit<'_>) -> Result<Tensor> {
    let cfg = backbone.config();
    let (hidden, device, dtype) = (cfg.hidden_size, backbone.device(), backbone.dtype());
    Ok(match init {
        HeadInit::Zeros => Tensor::zeros((1, hidden), dtype, device)?,
        HeadInit::With(f) => {
            let std = cfg
                .raw
                .get("initializer_range")
                .and_then(Value::as_f64)
                .unwrap_or(0.02);
            let data = f(hidden, std);
            if data.len() != hidden {
                return Err(ModelError::Input(format!(
                    "head initialiser gave {} values for hidden size {hidden}",
                    data.len()
                )));
            }
            Tensor::from_vec(data, (1, hidden), device)?.to_dtype(dtype)?
        }
    })
}

fn read_legacy_head(path: &Path, hidden: usize, device: &Device) -> Result<Tensor> {
    let bad = |msg: String| ModelError::Safetensors {
        path: path.to_path_buf(),
        msg,
    };
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| bad(e.to_string()))?;
    let head = tensors
        .get(LEGACY_HEAD)
        .ok_or_else(|| ModelError::MissingTensor {
            path: path.to_path_buf(),
            tensor: LEGACY_HEAD.into(),
        })?;
    if head.dims() != [hidden, 1] {
        return Err(ModelError::TensorShape {
            path: path.to_path_buf(),
            tensor: LEGACY_HEAD.into(),
            found: head.dims().to_vec(),
            expected: vec![hidden, 1],
        });
    }
    Ok(head.t()?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny Qwen2 directory (random weights, no tokenizer).
    fn tiny(dir: &Path, tied: bool) {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = json!({
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "vocab_size": 40,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 64,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": tied,
            "torch_dtype": "float32",
        });
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        let mc = ModelConfig::from_value(cfg, &dir.join("config.json")).unwrap();
        let mut k = 0u32;
        let model = CausalLm::from_tensors(mc, &Device::Cpu, DType::F32, |_, shape| {
            k += 1;
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| ((i as f32 + k as f32 * 7.0) * 0.731).sin() * 0.1)
                .collect();
            Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
        })
        .unwrap();
        crate::save::save_model(&model, dir, None, None).unwrap();
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn save_and_load_round_trip_in_the_sequence_classification_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        tiny(&base, false);
        let m = ScalarHeadModel::load(&base, &Device::Cpu, None, HeadInit::Zeros).unwrap();
        assert_eq!(m.head_source(), HeadSource::Initialised);
        assert!(flat(m.head().as_tensor()).iter().all(|&x| x == 0.0));
        assert!(!m.var_names().contains(&LM_HEAD.to_string()));
        assert_eq!(m.var_names().last().unwrap(), HEAD);
        let head: Vec<f32> = (0..16).map(|i| i as f32 * 0.05 - 0.4).collect();
        m.head()
            .set(&Tensor::from_vec(head.clone(), (1, 16), &Device::Cpu).unwrap())
            .unwrap();
        let out = tmp.path().join("out");
        let mut extra = Map::new();
        extra.insert("rlvr_test".into(), json!({"a": 1}));
        m.save(&out, &extra).unwrap();
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            cfg["architectures"],
            json!(["Qwen2ForSequenceClassification"])
        );
        assert_eq!(cfg["num_labels"], json!(1));
        assert_eq!(cfg["rlvr_test"], json!({"a": 1}));
        let saved = candle_core::safetensors::load(out.join(SINGLE_FILE), &Device::Cpu).unwrap();
        assert_eq!(saved[HEAD].dims(), &[1, 16]);
        assert!(!saved.contains_key(LM_HEAD));

        let back = ScalarHeadModel::load(
            &out,
            &Device::Cpu,
            None,
            HeadInit::With(&|_, _| panic!("the head is in the checkpoint")),
        )
        .unwrap();
        assert_eq!(back.head_source(), HeadSource::Checkpoint);
        for ((n1, t1), (n2, t2)) in m.named_tensors().iter().zip(back.named_tensors()) {
            assert_eq!(n1, &n2);
            assert_eq!(flat(t1), flat(&t2), "{n1}");
        }
        let batch = Batch::right_padded(&[vec![1, 2, 3, 4], vec![5, 6]], 0, &Device::Cpu).unwrap();
        let v1 = m.values(&batch, Mode::Infer).unwrap();
        let v2 = back.values(&batch, Mode::Infer).unwrap();
        assert_eq!(v1.dims(), &[2, 4]);
        assert_eq!(flat(&v1), flat(&v2));
        // Scores at positions are the values there.
        let (_, s) = back
            .scores_at(&batch, &[vec![3, 0], vec![1]], Mode::Infer)
            .unwrap();
        let v: Vec<Vec<f32>> = v1.to_vec2().unwrap();
        assert_eq!(flat(&s), vec![v[0][3], v[0][0], v[1][1]]);
        assert!(back
            .scores_at(&batch, &[vec![4], vec![1]], Mode::Infer)
            .is_err());

        // Two labels are refused, naming the field.
        let mut bad = cfg.clone();
        bad["num_labels"] = json!(2);
        std::fs::write(out.join("config.json"), bad.to_string()).unwrap();
        let e = ScalarHeadModel::load(&out, &Device::Cpu, None, HeadInit::Zeros)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("num_labels"), "{e}");
    }

    #[test]
    fn a_seeded_initialiser_and_the_earlier_critic_layout_load() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        tiny(&base, true);
        let init = |h: usize, std: f64| -> Vec<f32> {
            assert_eq!(std, 0.02);
            (0..h).map(|i| i as f32).collect()
        };
        let m = ScalarHeadModel::load(&base, &Device::Cpu, None, HeadInit::With(&init)).unwrap();
        assert_eq!(flat(m.head().as_tensor()), init(16, 0.02));
        // The earlier critic directory: a causal LM plus `value_head.safetensors` [h, 1].
        let head: Vec<f32> = (0..16).map(|i| 0.01 * i as f32).collect();
        let t = Tensor::from_vec(head.clone(), (16, 1), &Device::Cpu).unwrap();
        safetensors::serialize_to_file([(LEGACY_HEAD, &t)], None, &base.join(LEGACY_HEAD_FILE))
            .unwrap();
        let old = ScalarHeadModel::load(&base, &Device::Cpu, None, HeadInit::Zeros).unwrap();
        assert_eq!(old.head_source(), HeadSource::Legacy);
        assert_eq!(flat(old.head().as_tensor()), head);
        // Saving over it writes the new layout and drops the old head file.
        old.save(&base, &Map::new()).unwrap();
        assert!(!base.join(LEGACY_HEAD_FILE).exists());
        let new = ScalarHeadModel::load(&base, &Device::Cpu, None, HeadInit::Zeros).unwrap();
        assert_eq!(new.head_source(), HeadSource::Checkpoint);
        assert_eq!(flat(new.head().as_tensor()), head);
        // A damaged head file is an error naming it.
        let dir2 = tmp.path().join("old2");
        tiny(&dir2, true);
        std::fs::write(dir2.join(LEGACY_HEAD_FILE), b"nope").unwrap();
        let e = ScalarHeadModel::load(&dir2, &Device::Cpu, None, HeadInit::Zeros)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(LEGACY_HEAD_FILE), "{e}");
    }
}
