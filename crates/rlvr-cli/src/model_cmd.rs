//! `rlvr model ...`: inspect a model directory, score token log-probs, decode greedily.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rlvr_model::{Batch, Mode, ModelDir};
use serde_json::{json, Value};

/// `--model`, `--dtype`, `--device`: shared by every command that loads a model.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    /// Default: the tiny Qwen2 fixture, `$RLVR_SHARED/fixtures/tiny-qwen2` or `../shared/fixtures/tiny-qwen2`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Compute dtype: f32, bf16 or f16 (weights are converted on load).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Compute device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: rlvr_model::DeviceSpec,
}

impl ModelArgs {
    fn dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(crate::default_model_dir)
    }

    /// Loads the model directory with the requested dtype and device.
    pub fn load(&self) -> Result<ModelDir> {
        let dtype = rlvr_model::parse_dtype(&self.dtype)
            .with_context(|| format!("--dtype {}: expected f32, bf16 or f16", self.dtype))?;
        let device = self.device.open()?;
        let dir = self.dir();
        let start = std::time::Instant::now();
        let m = ModelDir::load(&dir, &device, Some(dtype))
            .with_context(|| format!("loading model {}", dir.display()))?;
        tracing::info!("loaded {} in {:.2?}", dir.display(), start.elapsed());
        Ok(m)
    }
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Architecture, parameter count, dtype, vocabulary and special tokens of a model directory.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per-token log-probs: each input line `{"ids": [..]}` or `{"text": ".."}` gives an output
    /// line `{"ids": [..], "logprobs": [..]}` with `logprobs[i] = log p(ids[i+1] | ids[..=i])`.
    /// `text` is tokenized with the tokenizer's special tokens (e.g. a BOS) added.
    Logprobs {
        #[command(flatten)]
        model: ModelArgs,
        /// JSONL input file (`-` for standard input).
        #[arg(long)]
        input: PathBuf,
        /// Sequences scored per forward pass.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
    },
    /// Greedy continuation of a prompt (the chat template is applied with `--chat`).
    Greedy {
        #[command(flatten)]
        model: ModelArgs,
        /// The prompt text (a user message with `--chat`).
        #[arg(long)]
        prompt: String,
        /// Wrap the prompt as a user message in the model's chat template.
        #[arg(long)]
        chat: bool,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
    },
    /// Greedy decoding throughput and train-step time on random inputs (JSON on stdout).
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opts: BenchOpts,
    },
}

/// Deterministic pseudo-random numbers for benchmark inputs (splitmix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> u32 {
        (self.next() % n as u64) as u32
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Decoding throughput and train-step time on random inputs, as one JSON object (the shapes of
/// `../shared/notes/baselines.md`; `bench/vs_pytorch.sh` runs PyTorch on the same shapes).
fn bench(args: &ModelArgs, opts: &BenchOpts) -> Result<()> {
    use candle_nn::Optimizer;
    let m = args.load()?;
    let vocab = m.model.config().vocab_size;
    let mut rng = SplitMix(42);
    let repeats = opts.repeats.max(1);
    let mut sample = serde_json::Map::new();
    for &b in &opts.batch {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|_| (0..opts.prompt_len).map(|_| rng.below(vocab)).collect())
            .collect();
        m.model.greedy(&prompts, 8, &[])?; // warm-up
        let mut times = Vec::new();
        for _ in 0..repeats {
            let start = std::time::Instant::now();
            let out = m.model.greedy(&prompts, opts.new_tokens, &[])?;
            let secs = start.elapsed().as_secs_f64();
            let produced: usize = out.iter().map(Vec::len).sum();
            times.push(produced as f64 / secs);
        }
        sample.insert(b.to_string(), json!(median(times)));
    }

    let (tb, tt) = (opts.train_batch, opts.train_seq);
    let ids: Vec<Vec<u32>> = (0..tb)
        .map(|_| (0..tt).map(|_| rng.below(vocab)).collect())
        .collect();
    let batch = Batch::right_padded(&ids, 0, m.model.device())?;
    let weights: Vec<f32> = (0..tb * (tt - 1))
        .map(|_| rng.below(2000) as f32 / 1000.0 - 1.0)
        .collect();
    let weights = candle_core::Tensor::from_vec(weights, (tb, tt - 1), m.model.device())?;
    let mut opt = candle_nn::AdamW::new(
        m.model.vars(),
        candle_nn::ParamsAdamW {
            lr: 1e-6,
            ..Default::default()
        },
    )?;
    let (mut times, mut fwd, mut bwd) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeats + 1 {
        let start = std::time::Instant::now();
        let lp = m.model.token_logprobs(&batch, Mode::Train)?;
        let loss = ((lp * &weights)?.mean_all()?.neg())?;
        loss.to_scalar::<f32>()?;
        let t_fwd = start.elapsed();
        let grads = loss.backward()?;
        let t_bwd = start.elapsed();
        opt.step(&grads)?;
        if r > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
            fwd.push(t_fwd.as_secs_f64() * 1e3);
            bwd.push((t_bwd - t_fwd).as_secs_f64() * 1e3);
        }
    }
    let result = json!({
        "impl": "rlvr",
        "model": m.dir.display().to_string(),
        "parameters": m.model.num_parameters(),
        "threads": candle_core::utils::get_num_threads(),
        "prompt_len": opts.prompt_len,
        "new_tokens": opts.new_tokens,
        "sample_tok_s": sample,
        "train_batch": tb,
        "train_seq": tt,
        "train_step_ms": median(times),
        "train_forward_ms": median(fwd),
        "train_backward_ms": median(bwd),
        "repeats": repeats,
    });
    println!("{result}");
    Ok(())
}

#[derive(Args)]
pub struct BenchOpts {
    /// Prompt length (random ids) for decoding.
    #[arg(long, default_value_t = 32)]
    prompt_len: usize,
    /// Tokens decoded per prompt.
    #[arg(long, default_value_t = 256)]
    new_tokens: usize,
    /// Decoding batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batch: Vec<usize>,
    /// Train step: sequences.
    #[arg(long, default_value_t = 8)]
    train_batch: usize,
    /// Train step: tokens per sequence.
    #[arg(long, default_value_t = 128)]
    train_seq: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Inspect { model, json } => inspect(&model, json),
        ModelCommand::Logprobs {
            model,
            input,
            batch_size,
        } => logprobs(&model, &input, batch_size),
        ModelCommand::Greedy {
            model,
            prompt,
            chat,
            max_new_tokens,
        } => greedy(&model, &prompt, chat, max_new_tokens),
        ModelCommand::Bench { model, opts } => bench(&model, &opts),
    }
}

fn inspect(args: &ModelArgs, as_json: bool) -> Result<()> {
    let m = args.load()?;
    let cfg = m.model.config();
    let special: Vec<Value> = m
        .tokenizer
        .special_tokens()
        .into_iter()
        .map(|(id, t)| json!({"id": id, "token": t}))
        .collect();
    let info = json!({
        "dir": m.dir.display().to_string(),
        "architecture": cfg.family.architecture(),
        "model_type": cfg.family.model_type(),
        "parameters": m.model.num_parameters(),
        "stored_dtype": rlvr_model::dtype_name(m.stored_dtype),
        "compute_dtype": rlvr_model::dtype_name(m.model.dtype()),
        "device": format!("{:?}", m.model.device()),
        "vocab_size": cfg.vocab_size,
        "tokenizer_vocab_size": m.tokenizer.vocab_size(),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "layers": cfg.num_hidden_layers,
        "attention_heads": cfg.num_attention_heads,
        "kv_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "rope": {"type": cfg.rope_scaling.name(), "theta": cfg.rope_theta},
        "max_position_embeddings": cfg.max_position_embeddings,
        "special_tokens": special,
        "bos_token": m.tokenizer.bos_token,
        "eos_token": m.tokenizer.eos_token,
        "pad_token": m.tokenizer.pad_token,
        "stop_ids": m.stop_ids(),
        "chat_template": m.tokenizer.chat_template().map(|t| t.source_name().to_string()),
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("model        {}", m.dir.display());
    println!(
        "architecture {} ({})",
        cfg.family.architecture(),
        cfg.family.model_type()
    );
    println!(
        "parameters   {} ({:.2}M)",
        m.model.num_parameters(),
        m.model.num_parameters() as f64 / 1e6
    );
    println!(
        "dtype        stored {}, computing in {} on {:?}",
        rlvr_model::dtype_name(m.stored_dtype),
        rlvr_model::dtype_name(m.model.dtype()),
        m.model.device()
    );
    println!(
        "shape        hidden {}, intermediate {}, {} layers, {} heads / {} kv heads, head_dim {}",
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim
    );
    println!(
        "rope         {} (theta {}), max positions {}",
        cfg.rope_scaling.name(),
        cfg.rope_theta,
        cfg.max_position_embeddings
    );
    println!(
        "embeddings   {}",
        if cfg.tie_word_embeddings {
            "tied"
        } else {
            "untied"
        }
    );
    println!(
        "vocab        {} (tokenizer: {})",
        cfg.vocab_size,
        m.tokenizer.vocab_size()
    );
    let specials: Vec<String> = m
        .tokenizer
        .special_tokens()
        .into_iter()
        .map(|(id, t)| format!("{t}={id}"))
        .collect();
    println!("special      {}", specials.join(" "));
    println!(
        "bos/eos/pad  {:?} / {:?} / {:?}; stop ids {:?}",
        m.tokenizer.bos_token,
        m.tokenizer.eos_token,
        m.tokenizer.pad_token,
        m.stop_ids()
    );
    println!(
        "chat         {}",
        m.tokenizer
            .chat_template()
            .map_or("no chat template".to_string(), |t| t
                .source_name()
                .to_string())
    );
    Ok(())
}

/// One parsed input line of `rlvr model logprobs`.
fn parse_line(m: &ModelDir, source: &str, lineno: usize, line: &str) -> Result<Vec<u32>> {
    let at = || format!("{source}:{lineno}");
    let v: Value = serde_json::from_str(line).with_context(|| format!("{}: invalid JSON", at()))?;
    let ids = if let Some(ids) = v.get("ids") {
        let arr = ids
            .as_array()
            .with_context(|| format!("{}: field `ids`: expected a list of token ids", at()))?;
        arr.iter()
            .map(|x| {
                x.as_u64()
                    .filter(|&x| x <= u32::MAX as u64)
                    .map(|x| x as u32)
                    .with_context(|| format!("{}: field `ids`: {x} is not a token id", at()))
            })
            .collect::<Result<Vec<u32>>>()?
    } else if let Some(text) = v.get("text") {
        let text = text
            .as_str()
            .with_context(|| format!("{}: field `text`: expected a string", at()))?;
        m.tokenizer.encode(text, true).with_context(at)?
    } else {
        bail!("{}: expected an object with `ids` or `text`", at());
    };
    if ids.is_empty() {
        bail!("{}: empty sequence", at());
    }
    let vocab = m.model.config().vocab_size;
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        bail!(
            "{}: field `ids`: token id {bad} is outside the vocabulary (size {vocab})",
            at()
        );
    }
    Ok(ids)
}

fn logprobs(args: &ModelArgs, input: &Path, batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let m = args.load()?;
    let source = input.display().to_string();
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(input).with_context(|| format!("{source}: cannot open"))?,
        ))
    };
    let mut seqs = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{source}:{}: cannot read", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        seqs.push(parse_line(&m, &source, i + 1, &line)?);
    }
    let pad = m
        .tokenizer
        .pad_token_id()
        .or(m.model.config().pad_token_id)
        .unwrap_or(0);
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let start = std::time::Instant::now();
    let mut tokens = 0usize;
    for chunk in seqs.chunks(batch_size) {
        let results: Vec<Vec<f32>> = if chunk.iter().all(|s| s.len() < 2) {
            chunk.iter().map(|_| Vec::new()).collect()
        } else {
            let batch = Batch::right_padded(chunk, pad, m.model.device())?;
            let lp = m
                .model
                .token_logprobs(&batch, Mode::Infer)?
                .to_vec2::<f32>()?;
            chunk
                .iter()
                .zip(lp)
                .map(|(s, row)| row[..s.len() - 1].to_vec())
                .collect()
        };
        for (ids, lps) in chunk.iter().zip(results) {
            tokens += ids.len();
            serde_json::to_writer(&mut out, &json!({"ids": ids, "logprobs": lps}))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    tracing::info!(
        "scored {} sequences ({tokens} tokens) in {:.2?}",
        seqs.len(),
        start.elapsed()
    );
    Ok(())
}

fn greedy(args: &ModelArgs, prompt: &str, chat: bool, max_new_tokens: usize) -> Result<()> {
    let m = args.load()?;
    let ids = if chat {
        m.tokenizer
            .encode_chat(&[json!({"role": "user", "content": prompt})], true)?
    } else {
        m.tokenizer.encode(prompt, true)?
    };
    let out = m
        .model
        .greedy(std::slice::from_ref(&ids), max_new_tokens, &m.stop_ids())?;
    let text = m.tokenizer.decode(&out[0], false)?;
    println!(
        "{}",
        serde_json::to_string(&json!({"prompt_ids": ids, "new_ids": out[0], "text": text}))?
    );
    Ok(())
}
