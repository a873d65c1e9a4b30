//! Where prompts come from (the built-in generator or a dataset, in a deterministic order
//! indexed by a position that checkpoints save) and how they become token ids.

use rlvr_data::tasks::{ArithmeticTask, Split};
use rlvr_data::{Example, Prompt};
use rlvr_model::Tokenizer;

use crate::error::{LoopError, Result};

/// The training prompt stream.
pub enum PromptSource {
    /// The built-in arithmetic generator (training split).
    Arithmetic {
        /// The generator.
        task: ArithmeticTask,
        /// Stream seed.
        seed: u64,
    },
    /// A dataset, reshuffled every epoch.
    Dataset {
        /// The examples.
        examples: Vec<Example>,
        /// Shuffle seed.
        seed: u64,
    },
}

impl PromptSource {
    /// The example at stream position `pos` (deterministic).
    pub fn at(&self, pos: u64) -> Example {
        match self {
            PromptSource::Arithmetic { task, seed } => {
                let p = task.problem(*seed, pos, Split::Train);
                task.example(&p, format!("arithmetic-train-{pos}"))
            }
            PromptSource::Dataset { examples, seed } => {
                let n = examples.len() as u64;
                let epoch = pos / n;
                let order = rlvr_data::rng::permutation(examples.len(), *seed, epoch);
                examples[order[(pos % n) as usize]].clone()
            }
        }
    }

    /// Number of distinct examples (None = unbounded generator).
    pub fn len(&self) -> Option<usize> {
        match self {
            PromptSource::Arithmetic { .. } => None,
            PromptSource::Dataset { examples, .. } => Some(examples.len()),
        }
    }

    /// Whether the source has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Renders an example's prompt as text: chat messages through the model's chat template
/// (with the generation prompt) when `use_template` and the tokenizer has one, else the
/// contents joined by newlines; a text prompt is used as it is.
pub fn prompt_text(tok: &Tokenizer, ex: &Example, use_template: bool) -> Result<String> {
    match &ex.prompt {
        Prompt::Text(t) => Ok(t.clone()),
        Prompt::Messages(msgs) => {
            if use_template && tok.chat_template().is_some() {
                Ok(tok.apply_chat_template(msgs, true, None)?)
            } else {
                let parts: Vec<&str> = msgs
                    .iter()
                    .filter_map(|m| m.get("content").and_then(|c| c.as_str()))
                    .collect();
                if parts.is_empty() {
                    return Err(LoopError::Other(format!(
                        "example {}: prompt messages have no text content",
                        ex.id
                    )));
                }
                Ok(parts.join("\n"))
            }
        }
    }
}

/// Token ids of an example's prompt (no extra special tokens: templates carry their own).
pub fn prompt_ids(tok: &Tokenizer, ex: &Example, use_template: bool) -> Result<Vec<u32>> {
    let text = prompt_text(tok, ex, use_template)?;
    let add_special = matches!(ex.prompt, Prompt::Text(_));
    Ok(tok.encode(&text, add_special)?)
}

/// The metadata passed to verifiers: `data_source`, `extra_info`, the example id.
pub fn metadata(ex: &Example) -> serde_json::Value {
    serde_json::json!({
        "data_source": ex.data_source,
        "extra_info": ex.extra_info,
        "id": ex.id,
    })
}
