//! How an example's prompt becomes text and token ids, and the metadata verifiers see.

use rlvr_data::{Example, Prompt};
use rlvr_model::Tokenizer;

use crate::error::{EvalError, Result};

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
                    return Err(EvalError::Other(format!(
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
    Ok(prompt_text_and_ids(tok, ex, use_template)?.1)
}

/// The rendered prompt and its token ids (a text prompt gets the tokenizer's special tokens,
/// a rendered chat has them from the template).
pub fn prompt_text_and_ids(
    tok: &Tokenizer,
    ex: &Example,
    use_template: bool,
) -> Result<(String, Vec<u32>)> {
    let text = prompt_text(tok, ex, use_template)?;
    let add_special = matches!(ex.prompt, Prompt::Text(_));
    let ids = tok.encode(&text, add_special)?;
    Ok((text, ids))
}

/// The metadata passed to verifiers: `data_source`, `extra_info`, the example id.
pub fn metadata(ex: &Example) -> serde_json::Value {
    serde_json::json!({
        "data_source": ex.data_source,
        "extra_info": ex.extra_info,
        "id": ex.id,
    })
}
