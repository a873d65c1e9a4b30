//! `rlvr sample`: G completions per prompt with the rollout engine, JSONL in, JSONL out.
//!
//! Input lines: `{"prompt": "text"}`, `{"messages": [{"role": .., "content": ..}, ..]}` (the
//! model's chat template with the generation prompt) or `{"ids": [..]}`; other fields are
//! ignored. With `--chat`, `prompt` text is sent as one user message. Blank lines are skipped;
//! a malformed line is an error naming `FILE:LINE`.
//!
//! Output: one line per completion, ordered by input line then sample:
//! `{"line", "prompt_index", "sample_index", "prompt_len", "tokens", "text", "logprobs",
//! "sampler_logprobs", "finish_reason", "stop_string", "stop_offset", "truncated"}`. Prompts
//! longer than `--max-prompt-len` produce no output line; they are counted on stderr.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use rlvr_model::ModelDir;
use rlvr_rollout::{EngineOptions, Prompt, RolloutEngine, SamplingParams};
use serde_json::{json, Value};

#[derive(Args)]
pub struct SampleArgs {
    #[command(flatten)]
    model: crate::model_cmd::ModelArgs,
    /// JSONL prompts (`-` for standard input).
    #[arg(long)]
    input: PathBuf,
    /// Output JSONL file (default: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Completions per prompt (G).
    #[arg(long, default_value_t = 1)]
    n: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Keep the k most probable tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Stop string (repeatable), matched on the decoded text.
    #[arg(long)]
    stop: Vec<String>,
    /// Extra stop token id (repeatable), besides the model's EOS ids.
    #[arg(long)]
    stop_id: Vec<u32>,
    /// Do not stop on the model's EOS ids.
    #[arg(long)]
    ignore_eos: bool,
    /// Prompts longer than this many tokens are skipped and counted.
    #[arg(long)]
    max_prompt_len: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Send `prompt` text as a user message through the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Rows (prompt × sample) decoded together.
    #[arg(long, default_value_t = 64)]
    batch_rows: usize,
    /// Drop finished rows from the batch and its KV cache once at most this fraction of a batch
    /// is still generating (0 = never; finished rows are then fed padding).
    #[arg(long, default_value_t = 0.5)]
    compact_ratio: f32,
}

/// Token ids of one input line.
fn prompt_ids(md: &ModelDir, v: &Value, chat: bool) -> Result<Vec<u32>> {
    let obj = v.as_object().context("expected a JSON object")?;
    if let Some(ids) = obj.get("ids") {
        let arr = ids.as_array().context("`ids` must be an array")?;
        let vocab = md.model.config().vocab_size as u64;
        return arr
            .iter()
            .map(|x| match x.as_u64() {
                Some(i) if i < vocab => Ok(i as u32),
                _ => {
                    bail!("`ids` must hold token ids below the vocabulary size {vocab}, found {x}")
                }
            })
            .collect();
    }
    if let Some(msgs) = obj.get("messages") {
        let msgs = msgs.as_array().context("`messages` must be an array")?;
        return Ok(md.tokenizer.encode_chat(msgs, true)?);
    }
    if let Some(p) = obj.get("prompt") {
        return match p {
            Value::String(text) if chat => Ok(md
                .tokenizer
                .encode_chat(&[json!({"role": "user", "content": text})], true)?),
            Value::String(text) => Ok(md.tokenizer.encode(text, true)?),
            Value::Array(msgs) => Ok(md.tokenizer.encode_chat(msgs, true)?),
            _ => bail!("`prompt` must be a string or a list of messages"),
        };
    }
    bail!("expected a `prompt`, `messages` or `ids` field")
}

pub fn run(args: SampleArgs) -> Result<()> {
    let md = args.model.load()?;

    let name = args.input.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.input).with_context(|| format!("opening {name}"))?,
        ))
    };
    let mut prompts = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.with_context(|| format!("{name}:{line_no}: reading"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{name}:{line_no}: invalid JSON"))?;
        let ids = prompt_ids(&md, &v, args.chat).with_context(|| format!("{name}:{line_no}"))?;
        if ids.is_empty() {
            bail!("{name}:{line_no}: the prompt is empty after tokenization");
        }
        prompts.push(Prompt {
            ids,
            key: line_no as u64,
        });
        lines.push(line_no);
    }

    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        max_new_tokens: args.max_new_tokens,
        stop: args.stop.clone(),
        stop_token_ids: args.stop_id.clone(),
        ignore_eos: args.ignore_eos,
        n: args.n,
        max_prompt_len: args.max_prompt_len,
        seed: args.seed,
        skip_special_tokens: true,
    };
    let engine = RolloutEngine::from_model_dir(&md).with_options(EngineOptions {
        max_batch_rows: args.batch_rows.max(1),
        compact_ratio: args.compact_ratio,
        ..Default::default()
    });
    let out = engine.generate_keyed(&prompts, &params)?;

    let mut w: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for c in &out.completions {
        let line = json!({
            "line": lines[c.prompt_index],
            "prompt_index": c.prompt_index,
            "sample_index": c.sample_index,
            "prompt_len": c.prompt_len,
            "tokens": c.tokens,
            "text": c.text,
            "logprobs": c.logprobs,
            "sampler_logprobs": c.sampler_logprobs,
            "finish_reason": c.finish_reason.as_str(),
            "stop_string": c.stop_string,
            "stop_offset": c.stop_offset,
            "truncated": c.truncated,
        });
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    for f in &out.filtered {
        eprintln!(
            "{name}:{}: prompt of {} tokens is longer than --max-prompt-len; skipped",
            lines[f.prompt_index], f.len
        );
    }
    let s = &out.stats;
    eprintln!(
        "{} prompts ({} filtered), {} completions, {} tokens in {:.2}s ({:.0} tokens/s), {} truncated",
        s.prompts,
        s.filtered_prompts,
        s.completions,
        s.generated_tokens,
        s.wall_seconds,
        s.tokens_per_second,
        s.truncated
    );
    Ok(())
}
