//! How a file's fields become an [`Example`](crate::Example).

use serde::{Deserialize, Serialize};

use crate::extract;
use crate::template::PromptTemplate;

/// Which of a file's fields hold what; every field has a default that reads verl's schema
/// and the plain `question`/`answer` one.
///
/// Field names may be dotted paths into nested objects (`reward_model.ground_truth`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldMapping {
    /// The prompt/question field. Default: the first present of `prompt`, `question`,
    /// `problem`. A list of chat messages there is used as it is, template or not.
    pub prompt_field: Option<String>,
    /// The answer field. Default: the first present of `reward_model.ground_truth`,
    /// `answer`, `solution`, `ground_truth`. Unused when `ground_truth = "humaneval"`.
    pub answer_field: Option<String>,
    /// The field holding the example's id. Default: `id`, else `task_id`, else
    /// `{id_prefix}/{index}` with the 0-based record index.
    pub id_field: Option<String>,
    /// Prefix of generated ids. Default: the data source.
    pub id_prefix: Option<String>,
    /// The data source of every example. Default: the record's `data_source` field, else
    /// the file's stem.
    pub data_source: Option<String>,
    /// How to take the final answer from the answer field. Default: `none`.
    pub answer_extract: AnswerExtract,
    /// How the ground truth is built. Default: `answer`.
    pub ground_truth: GroundTruthKind,
    /// Chat messages or plain text for string prompts. Default: `auto`.
    pub prompt_format: PromptFormat,
    /// Builds the prompt from the record's fields when the record has no chat messages.
    /// Default: none (the prompt field is used as it is).
    pub template: Option<PromptTemplate>,
}

/// How the final answer is taken from the answer field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerExtract {
    /// The field as it is (a string, a number, an object: any JSON).
    #[default]
    None,
    /// The text after the last `####`, trimmed, commas removed (GSM8K).
    Gsm8kHash,
    /// The content of the last `\boxed{...}`, braces balanced (MATH solutions).
    Boxed,
}

impl AnswerExtract {
    /// The extracted answer; `None` when nothing (or only an empty string) can be found.
    pub fn apply(self, text: &str) -> Option<String> {
        let out = match self {
            AnswerExtract::None => Some(text.to_string()),
            AnswerExtract::Gsm8kHash => extract::gsm8k_hash(text),
            AnswerExtract::Boxed => extract::last_boxed(text).map(|s| s.trim().to_string()),
        };
        out.filter(|s| !s.trim().is_empty())
    }

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            AnswerExtract::None => "none",
            AnswerExtract::Gsm8kHash => "gsm8k_hash",
            AnswerExtract::Boxed => "boxed",
        }
    }
}

/// How the ground truth is built from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroundTruthKind {
    /// The answer field (after `answer_extract`).
    #[default]
    Answer,
    /// `{"format": "humaneval", "prompt", "test", "entry_point"}` from the string fields of
    /// the same names (the `code` verifier's HumanEval shape).
    Humaneval,
}

/// Whether string prompts become chat messages or stay plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// A string in a field named `prompt` stays text (completion style, as verl's string
    /// prompts); a `question`/`problem` string becomes one user message; a template gives
    /// messages.
    #[default]
    Auto,
    /// Strings and templates become messages (system, user).
    Chat,
    /// Strings stay text; a template gives its user part as text (a template with a system
    /// message is refused: [`crate::DataError::InvalidMapping`]).
    Text,
}
