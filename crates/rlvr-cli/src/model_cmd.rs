//! `rlvr model ...`: inspect a model directory, score token log-probs, decode greedily.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rlvr_model::{Batch, Mode, ModelDir};
use serde_json::{json, Value};

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    /// Default: the tiny Qwen2 fixture, `$RLVR_SHARED/fixtures/tiny-qwen2` or `../shared/fixtures/tiny-qwen2`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Compute dtype: f32, bf16 or f16 (weights are converted on load).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Run on CUDA device 0 (needs a build with `--features cuda`).
    #[arg(long)]
    cuda: bool,
}

impl ModelArgs {
    fn dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(crate::default_model_dir)
    }

    fn load(&self) -> Result<ModelDir> {
        let dtype = rlvr_model::parse_dtype(&self.dtype)
            .with_context(|| format!("--dtype {}: expected f32, bf16 or f16", self.dtype))?;
        let device = rlvr_model::device(self.cuda)?;
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
