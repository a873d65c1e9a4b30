//! Bad model directories give errors that name the file and the field or tensor at fault.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use rlvr_conformance::require_shared;
use rlvr_model::{ModelDir, ModelError};
use serde_json::{json, Value};

/// A writable copy of a fixture directory.
fn copy_fixture(name: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let src = require_shared(&format!("fixtures/{name}"))?;
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(name);
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        let mut perms = std::fs::metadata(&to).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&to, perms).unwrap();
    }
    Some((tmp, dst))
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> String {
    match ModelDir::load(dir, &Device::Cpu, Some(DType::F32)) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_architecture() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    edit_json(&dir.join("config.json"), |c| {
        c["model_type"] = json!("gpt2")
    });
    let e = load_err(&dir);
    assert!(
        e.contains("config.json") && e.contains("model_type") && e.contains("gpt2"),
        "{e}"
    );
}

#[test]
fn unsupported_rope_type_and_option() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    edit_json(&dir.join("config.json"), |c| {
        c["rope_parameters"]["rope_type"] = json!("longrope")
    });
    let e = load_err(&dir);
    assert!(
        e.contains("config.json")
            && e.contains("rope_parameters.rope_type")
            && e.contains("longrope"),
        "{e}"
    );

    let Some((_t, dir)) = copy_fixture("tiny-llama") else {
        return;
    };
    edit_json(
        &dir.join("config.json"),
        |c| {
            c["rope_scaling"] =
                json!({"rope_type": "linear", "factor": 2.0, "mrope_section": [1, 2]})
        },
    );
    let e = load_err(&dir);
    assert!(
        e.contains("rope_scaling.mrope_section") && e.contains("unsupported"),
        "{e}"
    );

    let Some((_t, dir)) = copy_fixture("tiny-llama") else {
        return;
    };
    edit_json(&dir.join("config.json"), |c| {
        c["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0})
    });
    let e = load_err(&dir);
    assert!(e.contains("rope_scaling.low_freq_factor"), "{e}");
}

#[test]
fn unsupported_options() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    edit_json(&dir.join("config.json"), |c| {
        c["use_sliding_window"] = json!(true);
        c["sliding_window"] = json!(4096)
    });
    let e = load_err(&dir);
    assert!(e.contains("use_sliding_window"), "{e}");

    let Some((_t, dir)) = copy_fixture("tiny-llama") else {
        return;
    };
    edit_json(&dir.join("config.json"), |c| {
        c["hidden_act"] = json!("gelu")
    });
    let e = load_err(&dir);
    assert!(e.contains("hidden_act") && e.contains("gelu"), "{e}");
}

#[test]
fn invalid_json_names_line_and_column() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    std::fs::write(
        dir.join("config.json"),
        "{\n  \"model_type\": \"qwen2\",\n  oops\n}",
    )
    .unwrap();
    let e = load_err(&dir);
    assert!(e.contains("config.json:3:"), "{e}");
}

#[test]
fn missing_and_misshapen_tensors() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let up = tensors.remove("model.layers.1.mlp.up_proj.weight").unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("model.safetensors") && e.contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );
    assert!(e.contains("missing tensor"), "{e}");

    tensors.insert(
        "model.layers.1.mlp.up_proj.weight".into(),
        up.t().unwrap().contiguous().unwrap(),
    );
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn qwen2_bias_is_required() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors
        .remove("model.layers.0.self_attn.k_proj.bias")
        .unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("model.layers.0.self_attn.k_proj.bias"), "{e}");
}

#[test]
fn missing_shard_is_named() {
    let Some((_t, dir)) = copy_fixture("tiny-llama-bf16-sharded") else {
        return;
    };
    std::fs::remove_file(dir.join("model-00002-of-00003.safetensors")).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("model.safetensors.index.json")
            && e.contains("model-00002-of-00003.safetensors"),
        "{e}"
    );
}

#[test]
fn no_checkpoint_at_all() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn eos_list_in_generation_config() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    edit_json(&dir.join("generation_config.json"), |g| {
        g["eos_token_id"] = json!([2, 0])
    });
    let m = ModelDir::load(&dir, &Device::Cpu, None).unwrap();
    assert_eq!(m.generation.eos_token_ids, vec![2, 0]);
    assert_eq!(m.stop_ids(), vec![0, 2]);
    // Greedy decoding stops at either id.
    let prompt = m.tokenizer.encode("Natalia sold clips", false).unwrap();
    let out = m.model.greedy(&[prompt], 50, &[454]).unwrap();
    assert!(out[0].len() <= 50);
    if out[0].len() < 50 {
        assert_eq!(*out[0].last().unwrap(), 454);
    }
    edit_json(&dir.join("generation_config.json"), |g| {
        g["eos_token_id"] = json!("two")
    });
    let e = load_err(&dir);
    assert!(
        e.contains("generation_config.json") && e.contains("eos_token_id"),
        "{e}"
    );
}

#[test]
fn out_of_vocabulary_ids_are_an_input_error() {
    let Some((_t, dir)) = copy_fixture("tiny-qwen2") else {
        return;
    };
    let m = ModelDir::load(&dir, &Device::Cpu, None).unwrap();
    let batch = rlvr_model::Batch::right_padded(&[vec![1, 2, 100_000]], 0, &Device::Cpu).unwrap();
    match m.model.token_logprobs(&batch, rlvr_model::Mode::Infer) {
        Err(ModelError::Input(msg)) => assert!(msg.contains("100000"), "{msg}"),
        other => panic!(
            "expected an input error, got {:?}",
            other.map(|t| t.dims().to_vec())
        ),
    }
}

#[test]
fn save_over_existing_directory_keeps_a_loadable_model() {
    let Some((_t, dir)) = copy_fixture("tiny-llama-bf16-sharded") else {
        return;
    };
    let m = ModelDir::load(&dir, &Device::Cpu, None).unwrap();
    // Save in place (bf16 → bf16): the index is replaced by a single file; the model still loads
    // and computes the same log-probs.
    rlvr_model::save::save_model(&m.model, &dir, Some(DType::BF16), Some(&dir)).unwrap();
    assert!(!dir.join("model.safetensors.index.json").exists());
    let back = ModelDir::load(&dir, &Device::Cpu, None).unwrap();
    assert_eq!(back.stored_dtype, DType::BF16);
    let batch = rlvr_model::Batch::right_padded(&[vec![1, 5, 9, 30, 2]], 0, &Device::Cpu).unwrap();
    let a = m
        .model
        .token_logprobs(&batch, rlvr_model::Mode::Infer)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let b = back
        .model
        .token_logprobs(&batch, rlvr_model::Mode::Infer)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(a, b);
}
