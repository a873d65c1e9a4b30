//! One dataset record in the form the rest of rlvr uses.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the policy is given: plain text (completion style) or chat messages.
///
/// Serialises untagged, like the `prompt` of `rlvr verify` lines: a JSON string or a list of
/// `{"role", "content"}` objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// Completion-style text, used as it is.
    Text(String),
    /// Chat messages (`{"role": .., "content": ..}`, other keys kept), to go through the
    /// model's chat template.
    Messages(Vec<Value>),
}

impl Prompt {
    /// One user message.
    pub fn user(content: impl Into<String>) -> Prompt {
        Prompt::Messages(vec![message("user", content)])
    }
}

/// A chat message `{"role": role, "content": content}`.
pub fn message(role: &str, content: impl Into<String>) -> Value {
    json!({"role": role, "content": content.into()})
}

/// One problem: its prompt, what a verifier checks the response against, and where it came
/// from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Unique within its dataset (see [`crate::FieldMapping::id_field`]).
    pub id: String,
    /// What the policy is given.
    pub prompt: Prompt,
    /// The verifier's ground truth: an answer string for `math`, an object for `code`.
    pub ground_truth: Value,
    /// The dataset's name (`gsm8k`, ...), as verl's `data_source`.
    pub data_source: String,
    /// Everything else the record carried (verl's `extra_info` plus unused columns).
    pub extra_info: Value,
}

impl Example {
    /// The record in verl's schema (`id`, `data_source`, `prompt`, `reward_model:
    /// {ground_truth}`, `extra_info`); [`crate::load_file`] with the default mapping reads it
    /// back to an equal `Example`.
    pub fn to_verl_record(&self) -> Value {
        json!({
            "id": self.id,
            "data_source": self.data_source,
            "prompt": self.prompt,
            "reward_model": {"ground_truth": self.ground_truth},
            "extra_info": self.extra_info,
        })
    }
}
