//! The tokenizer of a model directory (`tokenizer.json` through the `tokenizers` crate), its
//! special tokens (`tokenizer_config.json`) and its chat template (`chat_template.jinja`, or
//! `chat_template` inside `tokenizer_config.json`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chat::{ChatInput, ChatTemplate};
use crate::error::{read_json, ModelError, Result};

/// A Hugging Face tokenizer with its special tokens and chat template.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub unk_token: Option<String>,
    chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("pad_token", &self.pad_token)
            .finish()
    }
}

/// `"<s>"` or `{"content": "<s>", ...}` or null.
fn token_field(path: &Path, cfg: &Value, field: &str) -> Result<Option<String>> {
    match cfg.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Object(o)) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(ModelError::config(
                path,
                format!("{field}.content"),
                "expected a string",
            )),
        },
        Some(other) => Err(ModelError::config(
            path,
            field,
            format!("expected a string or an object, found {other}"),
        )),
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`, `tokenizer_config.json` (optional) and the chat template.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| ModelError::Tokenizer {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg = if cfg_path.exists() {
            read_json(&cfg_path)?
        } else {
            Value::Object(Default::default())
        };
        let jinja_path = dir.join("chat_template.jinja");
        let chat_template = if jinja_path.exists() {
            let src =
                std::fs::read_to_string(&jinja_path).map_err(|e| ModelError::io(&jinja_path, e))?;
            Some(ChatTemplate::new(src, jinja_path.display().to_string())?)
        } else {
            match cfg.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(ChatTemplate::new(
                    s.clone(),
                    format!("{}: chat_template", cfg_path.display()),
                )?),
                // A list of named templates: take "default".
                Some(Value::Array(items)) => {
                    let found = items
                        .iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some("default"));
                    match found
                        .and_then(|t| t.get("template"))
                        .and_then(Value::as_str)
                    {
                        Some(s) => Some(ChatTemplate::new(
                            s.to_string(),
                            format!("{}: chat_template[default]", cfg_path.display()),
                        )?),
                        None => {
                            return Err(ModelError::config(
                                &cfg_path,
                                "chat_template",
                                "a list of templates without one named \"default\"",
                            ))
                        }
                    }
                }
                Some(other) => {
                    return Err(ModelError::config(
                        &cfg_path,
                        "chat_template",
                        format!("expected a string or a list, found {other}"),
                    ))
                }
            }
        };
        Ok(Tokenizer {
            inner,
            bos_token: token_field(&cfg_path, &cfg, "bos_token")?,
            eos_token: token_field(&cfg_path, &cfg, "eos_token")?,
            pad_token: token_field(&cfg_path, &cfg, "pad_token")?,
            unk_token: token_field(&cfg_path, &cfg, "unk_token")?,
            chat_template,
            path,
        })
    }

    /// The `tokenizer.json` this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`; `add_special_tokens` applies the post-processor (e.g. Llama 3's BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc =
            self.inner
                .encode(text, add_special_tokens)
                .map_err(|e| ModelError::Tokenizer {
                    path: self.path.clone(),
                    msg: e.to_string(),
                })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                msg: e.to_string(),
            })
    }

    /// The id of a token string (special tokens included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Added tokens marked special, sorted by id.
    pub fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut v: Vec<(u32, String)> = self
            .inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (*id, t.content.clone()))
            .collect();
        v.sort();
        v
    }

    /// The EOS id of `tokenizer_config.json`'s `eos_token`, if it is in the vocabulary.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_id(t))
    }

    /// The pad id of `pad_token`, if any.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token.as_deref().and_then(|t| self.token_id(t))
    }

    /// The chat template, if the model has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Renders `messages` with the model's chat template and its BOS/EOS strings.
    pub fn apply_chat_template(
        &self,
        messages: &[Value],
        add_generation_prompt: bool,
        tools: Option<&[Value]>,
    ) -> Result<String> {
        let tmpl = self.chat_template.as_ref().ok_or_else(|| ModelError::Template {
            source_name: self.path.display().to_string(),
            msg: "the model directory has no chat template (chat_template.jinja or tokenizer_config.json: chat_template)".into(),
        })?;
        tmpl.render(&ChatInput {
            messages,
            add_generation_prompt,
            tools,
            bos_token: self.bos_token.as_deref(),
            eos_token: self.eos_token.as_deref(),
            extra: None,
        })
    }

    /// Renders and tokenizes a conversation (no extra special tokens: the template has them).
    pub fn encode_chat(&self, messages: &[Value], add_generation_prompt: bool) -> Result<Vec<u32>> {
        let text = self.apply_chat_template(messages, add_generation_prompt, None)?;
        self.encode(&text, false)
    }
}
