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

/// Configs as real Hub checkpoints write them (v4 style, bf16, EOS lists, rope scaling
/// variants) parse into the right settings; the tiny fixture's weights stand in.
#[test]
fn real_world_config_shapes() {
    use rlvr_model::{ModelConfig, RopeScaling};
    let path = Path::new("config.json");
    // Llama 3.2 1B (v4): llama3 scaling, tied embeddings, three EOS ids, bf16.
    let llama32 = json!({
        "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
        "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
        "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
        "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
        "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
    });
    let c = ModelConfig::from_value(llama32, path).unwrap();
    assert_eq!(c.eos_token_ids, vec![128001, 128008, 128009]);
    assert_eq!(c.bos_token_id, Some(128000));
    assert_eq!((c.head_dim, c.kv_groups()), (64, 4));
    assert!(c.tie_word_embeddings && !c.qkv_bias && !c.mlp_bias);
    assert_eq!(c.rope_dtype, DType::BF16);
    assert!(
        matches!(c.rope_scaling, RopeScaling::Llama3 { factor, original_max_position_embeddings, .. }
        if factor == 32.0 && original_max_position_embeddings == 8192.0)
    );
    // 1.24B parameters, the published size of Llama 3.2 1B.
    assert_eq!(c.num_parameters(), 1_235_814_400);

    // Qwen2.5 7B with the YaRN block its model card recommends (v4 `type` key).
    let qwen25 = json!({
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584,
        "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 32768,
        "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 28,
        "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
        "use_sliding_window": false, "vocab_size": 152064,
        "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}
    });
    let c = ModelConfig::from_value(qwen25, path).unwrap();
    assert!(c.qkv_bias && !c.o_bias && !c.tie_word_embeddings);
    assert_eq!(c.head_dim, 128);
    match c.rope_scaling {
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            attention_factor,
            ..
        } => {
            assert_eq!((factor, original_max_position_embeddings), (4.0, 32768.0));
            assert!((attention_factor - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-12);
        }
        other => panic!("{other:?}"),
    }
    // 7.62B parameters, the published size of Qwen2.5 7B.
    assert_eq!(c.num_parameters(), 7_615_616_512);

    // Qwen3 (v5 style rope_parameters, explicit head_dim, q/k norms).
    let qwen3 = json!({
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "head_dim": 128,
        "hidden_size": 1024, "intermediate_size": 3072, "max_position_embeddings": 40960,
        "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "dtype": "bfloat16",
        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
        "tie_word_embeddings": true, "vocab_size": 151936, "use_sliding_window": false
    });
    let c = ModelConfig::from_value(qwen3, path).unwrap();
    assert!(c.qk_norm && c.rope_theta == 1_000_000.0);
    // Qwen3-0.6B: 596M parameters with tied embeddings.
    assert_eq!(c.num_parameters(), 596_049_920);
}
