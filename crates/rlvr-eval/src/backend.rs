//! Where samples come from: the [`Backend`] trait, and [`EngineBackend`], the in-process
//! rollout engine. An HTTP client of an OpenAI-compatible server implements the same trait.
//!
//! A backend answers each prompt separately ([`PromptOutcome`]): a prompt may be filtered
//! (longer than the prompt limit) or fail (a server error after retries, a prompt that
//! cannot be rendered) without failing the others; the evaluator turns a failed prompt's
//! samples into `error` outcomes carrying the reason. Only an `Err` of the whole call (e.g. the
//! model itself failing) stops the evaluation.

use rlvr_data::Example;
use rlvr_model::ModelDir;
use rlvr_rollout::{EngineOptions, RolloutEngine, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::jobs::response_text;
use crate::prompts::prompt_text_and_ids;

/// One prompt to sample: its example and the key of its random streams (the problem's index
/// in the dataset, so the same seed gives the same samples whatever the batching).
#[derive(Debug, Clone, Copy)]
pub struct EvalPrompt<'a> {
    /// Stream key (the problem index).
    pub key: u64,
    /// The problem.
    pub example: &'a Example,
}

/// What to sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateParams {
    /// Temperature, top-p, top-k, `max_new_tokens`, stop strings, `n`, `max_prompt_len`,
    /// seed (the in-process engine's settings; an HTTP backend maps what its server knows).
    pub sampling: SamplingParams,
    /// Send chat prompts through the model's chat template (in-process) or to
    /// `/v1/chat/completions` (HTTP); otherwise the message contents are joined as text.
    pub chat_template: bool,
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleOut {
    /// The response a verifier sees (text before a stop string).
    pub text: String,
    /// Generated tokens.
    pub tokens: usize,
    /// Cut at `max_new_tokens`.
    pub truncated: bool,
    /// Why it ended (`stop_id`, `stop_string`, `length`, or a server's reason).
    pub finish_reason: String,
}

/// Why a prompt has no samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromptFailure {
    /// Longer than the prompt limit: left out of the metrics and counted (never truncated).
    TooLong {
        /// Prompt tokens.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Sampling failed for this prompt; its samples become `error` outcomes.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// A backend's answer for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptOutcome {
    /// The prompt as sent (rendered text, or the messages as JSON), for `samples.jsonl`.
    pub rendered: String,
    /// `n` samples, or why there are none.
    pub result: std::result::Result<Vec<SampleOut>, PromptFailure>,
}

/// A source of samples.
pub trait Backend {
    /// A short description for summaries and logs (e.g. `in-process:/models/x`).
    fn describe(&self) -> String;

    /// `params.sampling.n` samples for each prompt, one [`PromptOutcome`] per prompt in the
    /// same order.
    fn generate(
        &self,
        prompts: &[EvalPrompt<'_>],
        params: &GenerateParams,
    ) -> Result<Vec<PromptOutcome>>;
}

/// The in-process rollout engine over a loaded model directory.
pub struct EngineBackend<'m> {
    /// The model.
    pub model: &'m ModelDir,
    /// Engine batching options.
    pub options: EngineOptions,
}

impl<'m> EngineBackend<'m> {
    /// A backend with the default engine options.
    pub fn new(model: &'m ModelDir) -> Self {
        EngineBackend {
            model,
            options: EngineOptions::default(),
        }
    }
}

impl Backend for EngineBackend<'_> {
    fn describe(&self) -> String {
        format!("in-process:{}", self.model.dir.display())
    }

    fn generate(
        &self,
        prompts: &[EvalPrompt<'_>],
        params: &GenerateParams,
    ) -> Result<Vec<PromptOutcome>> {
        let tok = &self.model.tokenizer;
        let mut outcomes: Vec<PromptOutcome> = Vec::with_capacity(prompts.len());
        // Prompts that render go to the engine; `slot[j]` is the outcome of engine prompt j.
        let mut keyed = Vec::new();
        let mut slot = Vec::new();
        for p in prompts {
            match prompt_text_and_ids(tok, p.example, params.chat_template) {
                Ok((text, ids)) if ids.is_empty() => outcomes.push(PromptOutcome {
                    rendered: text,
                    result: Err(PromptFailure::Failed {
                        reason: "the prompt is empty after tokenization".into(),
                    }),
                }),
                Ok((text, ids)) => {
                    slot.push(outcomes.len());
                    outcomes.push(PromptOutcome {
                        rendered: text,
                        result: Ok(Vec::new()),
                    });
                    keyed.push(rlvr_rollout::Prompt { ids, key: p.key });
                }
                Err(e) => outcomes.push(PromptOutcome {
                    rendered: String::new(),
                    result: Err(PromptFailure::Failed {
                        reason: format!("rendering the prompt: {e}"),
                    }),
                }),
            }
        }
        if keyed.is_empty() {
            return Ok(outcomes);
        }
        let engine = RolloutEngine::from_model_dir(self.model).with_options(self.options.clone());
        let batch = engine.generate_keyed(&keyed, &params.sampling)?;
        for f in &batch.filtered {
            outcomes[slot[f.prompt_index]].result = Err(PromptFailure::TooLong {
                len: f.len,
                max: params.sampling.max_prompt_len.unwrap_or(0),
            });
        }
        let mut completions: Vec<&rlvr_rollout::Completion> = batch.completions.iter().collect();
        completions.sort_by_key(|c| (c.prompt_index, c.sample_index));
        for c in completions {
            if let Ok(samples) = &mut outcomes[slot[c.prompt_index]].result {
                samples.push(SampleOut {
                    text: response_text(c),
                    tokens: c.tokens.len(),
                    truncated: c.truncated,
                    finish_reason: c.finish_reason.as_str().to_string(),
                });
            }
        }
        Ok(outcomes)
    }
}
