//! The model on a CUDA device against the CPU, when a GPU opens. On a machine without one
//! (CI: the `cuda` feature built against link stubs) the test says so and passes, unless
//! `RLVR_REQUIRE_CUDA=1` marks a machine that must have one. The full comparison on the
//! fixtures is `rlvr selftest device --device cuda`.

use candle_core::{DType, Device, Tensor};
use rlvr_model::device::touch_kernels;
use rlvr_model::{Batch, CausalLm, DeviceSpec, Mode, ModelConfig};

fn gpu() -> Option<Device> {
    match DeviceSpec::Cuda(0).open() {
        Ok(d) => Some(d),
        Err(e) => {
            assert_ne!(
                std::env::var("RLVR_REQUIRE_CUDA").as_deref(),
                Ok("1"),
                "RLVR_REQUIRE_CUDA=1 but {e}"
            );
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn tiny() -> ModelConfig {
    let raw = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 97, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": true
    });
    ModelConfig::from_value(raw, std::path::Path::new("config.json")).unwrap()
}

fn model(device: &Device) -> CausalLm {
    CausalLm::from_tensors(tiny(), device, DType::F32, |name, shape| {
        // the same pseudo-random weights on every device
        let n: usize = shape.iter().product();
        let seed = name
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        let v: Vec<f32> = (0..n)
            .map(|i| {
                let x = (i as u64 ^ seed).wrapping_mul(0x9E3779B97F4A7C15) >> 40;
                (x as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        Ok(Tensor::from_vec(v, shape, device)?)
    })
    .unwrap()
}

#[test]
fn every_kernel_module_and_a_forward_pass_agree_with_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for k in touch_kernels(&gpu) {
        assert!(k.error.is_none(), "{}: {:?}", k.module, k.error);
        assert!(k.max_abs_diff <= 1e-3, "{}: {}", k.module, k.max_abs_diff);
    }
    let ids = vec![vec![1u32, 5, 9, 13, 2, 40], vec![3, 4, 5, 6, 7, 8]];
    let (cpu, dev) = (model(&Device::Cpu), model(&gpu));
    let lp_cpu = cpu
        .token_logprobs(
            &Batch::right_padded(&ids, 0, &Device::Cpu).unwrap(),
            Mode::Train,
        )
        .unwrap();
    let lp_gpu = dev
        .token_logprobs(&Batch::right_padded(&ids, 0, &gpu).unwrap(), Mode::Train)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap();
    let d: f32 = (lp_cpu - &lp_gpu)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d <= 1e-4, "log-probs differ by {d}");
    // every parameter gets a gradient on the device
    let loss = dev
        .token_logprobs(&Batch::right_padded(&ids, 0, &gpu).unwrap(), Mode::Train)
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    for (name, v) in dev.named_vars() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient: {name}"));
        let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(n > 0.0 && n.is_finite(), "{name}: |g|² = {n}");
    }
}
