//! The OpenAI wire types: `/v1/completions`, `/v1/chat/completions`, `/v1/models` and the
//! error body. Shared by rlvr-serve's server (which deserializes requests into these types and
//! validates the values, naming the field at fault) and the client (which serializes requests
//! with serde and deserializes responses leniently: fields other servers add are ignored,
//! fields they omit take defaults).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A string or a list of strings (`stop`, and the text forms of `prompt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, in order (one for [`OneOrMany::One`]).
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl From<&str> for OneOrMany {
    fn from(s: &str) -> Self {
        OneOrMany::One(s.to_string())
    }
}

impl From<String> for OneOrMany {
    fn from(s: String) -> Self {
        OneOrMany::One(s)
    }
}

impl From<Vec<String>> for OneOrMany {
    fn from(v: Vec<String>) -> Self {
        OneOrMany::Many(v)
    }
}

/// The `prompt` of a completions request: text or token ids, one prompt or a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    /// One text prompt (tokenized with the tokenizer's special tokens, e.g. a BOS).
    Text(String),
    /// Several text prompts.
    Texts(Vec<String>),
    /// One prompt given as token ids (used as is).
    Tokens(Vec<u32>),
    /// Several prompts given as token ids.
    TokenBatches(Vec<Vec<u32>>),
}

impl From<&str> for PromptInput {
    fn from(s: &str) -> Self {
        PromptInput::Text(s.to_string())
    }
}

impl From<String> for PromptInput {
    fn from(s: String) -> Self {
        PromptInput::Text(s)
    }
}

impl From<Vec<String>> for PromptInput {
    fn from(v: Vec<String>) -> Self {
        PromptInput::Texts(v)
    }
}

/// `POST /v1/completions`. Optional fields left `None` are not sent and take the server's
/// defaults (OpenAI: `n` 1, `temperature` 1, `top_p` 1, `max_tokens` 16).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The served model's name (see `GET /v1/models`; rlvr's server accepts a request
    /// without it).
    #[serde(default)]
    pub model: String,
    /// The prompt(s).
    pub prompt: PromptInput,
    /// Completions per prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Sampling temperature; 0 = greedy decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling threshold, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Keep the k most probable tokens (a vLLM extension; 0 or -1 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Maximum generated tokens per completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Stop string(s); the returned text ends before the stop string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<OneOrMany>,
    /// Seed of the sampling streams (rlvr's server: default 0; same seed and prompt, same
    /// output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Accepted and ignored by rlvr's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Other fields, sent as they are (vendor extensions); rlvr's server ignores unknown ones.
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Default for PromptInput {
    fn default() -> Self {
        PromptInput::Text(String::new())
    }
}

/// One chat message. `content` is read leniently: a string, `null` (read as empty) or a list of
/// content parts (the `text` of each part, concatenated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text of the message.
    #[serde(default, deserialize_with = "lenient_content")]
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
}

/// The text of a message `content` value: a string, `null` (empty) or a list of parts whose
/// `text` fields are concatenated. `None` for anything else.
pub fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    Value::String(s) => out.push_str(s),
                    Value::Object(o) => match o.get("text") {
                        Some(Value::String(s)) => out.push_str(s),
                        _ => return None,
                    },
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn lenient_content<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    content_text(&v).ok_or_else(|| {
        serde::de::Error::custom("`content` must be a string, null or a list of text parts")
    })
}

/// `POST /v1/chat/completions`. The messages are rendered with the model's chat template (with
/// the generation prompt).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The served model's name (see `GET /v1/models`; rlvr's server accepts a request
    /// without it).
    #[serde(default)]
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Completions (choices) to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Sampling temperature; 0 = greedy decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling threshold, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Keep the k most probable tokens (a vLLM extension; 0 or -1 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Maximum generated tokens per choice (`max_completion_tokens` is read as an alias by
    /// rlvr's server). Default: what is left of the model's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Stop string(s); the returned content ends before the stop string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<OneOrMany>,
    /// Seed of the sampling streams (rlvr's server: default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Accepted and ignored by rlvr's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Other fields, sent as they are (vendor extensions); rlvr's server ignores unknown ones.
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Why a choice ended: `stop` (a stop id or string) or `length` (`max_tokens` reached); any
/// other value a server sends is kept as [`FinishReason::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The model emitted a stop token or a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// Another reason (`content_filter`, `tool_calls`, `abort`, ...).
    Other(String),
}

impl FinishReason {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Other(s) => s,
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            _ => FinishReason::Other(s),
        })
    }
}

/// Token counts of a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (each prompt counted once, whatever `n`).
    #[serde(default)]
    pub prompt_tokens: usize,
    /// Generated tokens over all choices.
    #[serde(default)]
    pub completion_tokens: usize,
    /// The sum of the two.
    #[serde(default)]
    pub total_tokens: usize,
}

/// One choice of a completions response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// `prompt_index * n + sample_index`.
    pub index: usize,
    /// The generated text (without a matched stop string).
    #[serde(default)]
    pub text: String,
    /// Why it ended (`null` from some servers).
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Always `null` from rlvr's server.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

/// Response of `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// `cmpl-...`.
    pub id: String,
    /// `text_completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time (seconds).
    #[serde(default)]
    pub created: u64,
    /// The served model's name.
    #[serde(default)]
    pub model: String,
    /// Choices ordered by prompt, then sample.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
}

/// One choice of a chat completions response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// 0..n.
    pub index: usize,
    /// The generated message (`role` `assistant`).
    pub message: ChatMessage,
    /// Why it ended.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Always `null` from rlvr's server.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

/// Response of `POST /v1/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time (seconds).
    #[serde(default)]
    pub created: u64,
    /// The served model's name.
    #[serde(default)]
    pub model: String,
    /// One choice per sample.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The name to put in requests' `model`.
    pub id: String,
    /// `model`.
    #[serde(default)]
    pub object: String,
    /// Unix time (seconds) the server started.
    #[serde(default)]
    pub created: u64,
    /// `rlvr`.
    #[serde(default)]
    pub owned_by: String,
}

/// Response of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// The served models.
    pub data: Vec<ModelCard>,
}

/// The body of an error response: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// What went wrong, OpenAI-style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A sentence for people.
    pub message: String,
    /// `invalid_request_error`, `not_found_error`, `server_error`, `overloaded_error`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The request field at fault, if any.
    #[serde(default)]
    pub param: Option<String>,
    /// A machine-readable code (e.g. `model_not_found`), if any.
    #[serde(default)]
    pub code: Option<String>,
}
