//! The supervised warm-up of the built-in policy: next-token cross-entropy on worked
//! solutions of the arithmetic task (response tokens only), cached by a hash of everything
//! that determines the result, so a second run starts from the cached model at once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use rlvr_data::tasks::{ArithmeticTask, Split};
use rlvr_model::{Mode, ModelDir};
use rlvr_train::optim::{AdamW, LrSchedule, OptimConfig};

use crate::batch::{pack, response_logprobs};
use crate::builtin;
use crate::config::TrainConfig;
use crate::error::{LoopError, Result};
use crate::prompts::prompt_ids;

/// Version of the warm-up recipe: bump when the procedure changes so stale caches are unused.
const RECIPE: &str = "warmup-v1";

/// The cache directory: `warmup.cache_dir`, else `$RLVR_CACHE`, else `$XDG_CACHE_HOME/rlvr`,
/// else `~/.cache/rlvr`, else `.rlvr-cache`.
pub fn cache_root(cfg: &TrainConfig) -> PathBuf {
    if let Some(d) = &cfg.warmup.cache_dir {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("RLVR_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("rlvr");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("rlvr");
    }
    PathBuf::from(".rlvr-cache")
}

/// FNV-1a over a string: a stable cache key (not for security).
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The cache key of a warm-up.
pub fn cache_key(cfg: &TrainConfig) -> String {
    let w = &cfg.warmup;
    let key = serde_json::json!({
        "recipe": RECIPE,
        "seed": cfg.seed,
        "model": cfg.model.builtin,
        "arithmetic": cfg.data.arithmetic,
        "steps": w.steps,
        "batch_size": w.batch_size,
        "lr": w.lr,
        "direct_fraction": w.direct_fraction,
        "chat_template": cfg.data.chat_template,
    });
    format!("{:016x}", fnv1a(&key.to_string()))
}

/// What the warm-up did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WarmupReport {
    /// The model directory RL starts from.
    pub dir: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Seconds spent (0 when cached).
    pub seconds: f64,
    /// Mean loss of the last 10% of steps (None when cached).
    pub final_loss: Option<f64>,
}

/// Creates the built-in policy and warms it up (or takes it from the cache). Returns the
/// model directory RL starts from.
pub fn prepare_builtin(cfg: &TrainConfig, device: &Device, progress: bool) -> Result<WarmupReport> {
    let root = cache_root(cfg).join("warmup");
    let key = cache_key(cfg);
    let final_dir = root.join(&key);
    if cfg.warmup.cache && final_dir.join("model.safetensors").exists() {
        tracing::info!(dir = %final_dir.display(), "warm-up taken from the cache");
        return Ok(WarmupReport {
            dir: final_dir,
            cached: true,
            seconds: 0.0,
            final_loss: None,
        });
    }
    std::fs::create_dir_all(&root).map_err(|e| LoopError::io(&root, e))?;
    let tmp = root.join(format!(".{key}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    builtin::create(&tmp, &cfg.model.builtin, cfg.seed)?;
    if !cfg.warmup.enabled {
        publish(&tmp, &final_dir)?;
        return Ok(WarmupReport {
            dir: final_dir,
            cached: false,
            seconds: 0.0,
            final_loss: None,
        });
    }
    let started = Instant::now();
    let loss = train_sft(&tmp, cfg, device, progress)?;
    publish(&tmp, &final_dir)?;
    Ok(WarmupReport {
        dir: final_dir,
        cached: false,
        seconds: started.elapsed().as_secs_f64(),
        final_loss: Some(loss),
    })
}

fn publish(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        // Another process finished the same warm-up first: keep theirs.
        let _ = std::fs::remove_dir_all(tmp);
        return Ok(());
    }
    std::fs::rename(tmp, dir).map_err(|e| LoopError::io(dir, e))
}

/// Supervised training of the model in `dir` (saved back in place). Returns the mean loss
/// of the last 10% of steps.
fn train_sft(dir: &Path, cfg: &TrainConfig, device: &Device, progress: bool) -> Result<f64> {
    let md = ModelDir::load(dir, device, None)?;
    let task = ArithmeticTask::new(cfg.data.arithmetic.clone())
        .map_err(|e| LoopError::config("data.arithmetic", e.to_string()))?;
    let w = &cfg.warmup;
    let mut opt = AdamW::new(
        md.model.vars(),
        OptimConfig {
            lr: w.lr,
            weight_decay: 0.01,
            grad_clip: Some(1.0),
            schedule: LrSchedule::WarmupCosine {
                warmup_steps: (w.steps / 15).max(1),
                total_steps: w.steps,
                min_lr_ratio: 0.1,
            },
            ..OptimConfig::default()
        },
    )?;
    let eos = md
        .tokenizer
        .token_id("<|im_end|>")
        .or(md.tokenizer.eos_token_id());
    let pad = md.model.config().pad_token_id.unwrap_or(0);
    let bar = crate::progress::bar(w.steps as u64, "warm-up", progress);
    let tail = (w.steps / 10).max(1);
    let mut tail_loss = Vec::new();
    for step in 0..w.steps {
        let mut seqs = Vec::with_capacity(w.batch_size);
        for i in 0..w.batch_size {
            let pos = (step * w.batch_size + i) as u64;
            let p = task.problem(cfg.seed ^ 0x5f7_a11, pos, Split::Train);
            let ex = task.example(&p, String::new());
            let prompt = prompt_ids(&md.tokenizer, &ex, cfg.data.chat_template)?;
            // Deterministic choice of direct answers by a hash of the position.
            let u = (rlvr_data::rng::mix64(pos ^ 0xd1ec7) >> 11) as f64 / (1u64 << 53) as f64;
            let direct = u < w.direct_fraction;
            let text = if direct {
                p.direct_solution()
            } else {
                p.worked_solution()
            };
            let mut resp = md.tokenizer.encode(&text, false)?;
            resp.extend(eos);
            seqs.push((prompt, resp));
        }
        let rows: Vec<(&[u32], &[u32])> = seqs.iter().map(|(a, b)| (&a[..], &b[..])).collect();
        let packed = pack(&rows, pad, device)?;
        let lp = response_logprobs(&md.model, &packed, Mode::Train)?;
        let n = packed.mask_host.iter().sum::<f32>().max(1.0) as f64;
        let loss = (lp * &packed.mask)?.sum_all()?.affine(-1.0 / n, 0.0)?;
        let value = loss.to_scalar::<f32>()? as f64;
        let report = opt.try_step(loss.backward()?)?;
        if !report.applied {
            tracing::warn!(
                step,
                loss = value,
                grad_norm = report.grad_norm,
                "non-finite warm-up gradient: the step is skipped"
            );
        }
        if step + tail >= w.steps {
            tail_loss.push(value);
        }
        bar.set_message(format!("loss {value:.3}"));
        bar.inc(1);
        if step % 50 == 0 || step + 1 == w.steps {
            tracing::info!(step, loss = value, lr = opt.learning_rate(), "warm-up");
        }
    }
    bar.finish_and_clear();
    rlvr_model::save::save_model(&md.model, dir, None, None)?;
    Ok(tail_loss.iter().sum::<f64>() / tail_loss.len().max(1) as f64)
}
