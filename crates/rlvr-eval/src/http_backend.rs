//! [`HttpBackend`]: samples from an OpenAI-compatible server (vLLM, SGLang, `rlvr serve`)
//! through `rlvr_protocol::client` — chat prompts to `/v1/chat/completions` (the server applies
//! its chat template), text prompts to `/v1/completions`; `n`, temperature, top-p, top-k,
//! max tokens, stop strings and seed are sent. Requests run with bounded concurrency, each
//! with a deadline and retries with backoff; a request that still fails becomes a failed
//! prompt (its samples are `error` outcomes naming the cause), never a hang or a crash.
//!
//! Servers report generated tokens per request (`usage.completion_tokens`), not per choice:
//! with `n > 1` each sample is given the request's mean. The prompt-length limit is the
//! server's business (its error is the prompt's failure).

use rlvr_data::Prompt;
use rlvr_protocol::client::{ClientError, ClientOptions, OpenAiClient};
use rlvr_protocol::types::{
    ChatCompletionRequest, ChatMessage, CompletionRequest, FinishReason, OneOrMany, PromptInput,
    Usage,
};

use crate::backend::{
    Backend, EvalPrompt, GenerateParams, PromptFailure, PromptOutcome, SampleOut,
};
use crate::error::{EvalError, Result};

/// An OpenAI-compatible server as a sample source.
pub struct HttpBackend {
    client: OpenAiClient,
    base_url: String,
    model: String,
}

enum Request {
    Chat(ChatCompletionRequest),
    Text(CompletionRequest),
}

impl HttpBackend {
    /// A backend for the server at `base_url`; `model` is the `model` field of requests
    /// (`None`: the first entry of the server's `/v1/models`).
    pub fn new(base_url: &str, model: Option<String>, options: ClientOptions) -> Result<Self> {
        let client = OpenAiClient::new(base_url, options)
            .map_err(|e| EvalError::Other(format!("--endpoint {base_url}: {e}")))?;
        let model = match model {
            Some(m) => m,
            None => client
                .models()
                .map_err(|e| {
                    EvalError::Other(format!("--endpoint {base_url}: listing models: {e}"))
                })?
                .data
                .first()
                .map(|m| m.id.clone())
                .ok_or_else(|| {
                    EvalError::Other(format!("--endpoint {base_url}: the server lists no model"))
                })?,
        };
        Ok(HttpBackend {
            client,
            base_url: base_url.to_string(),
            model,
        })
    }

    fn request(&self, p: &EvalPrompt<'_>, params: &GenerateParams) -> (String, Request) {
        let s = &params.sampling;
        let stop = (!s.stop.is_empty()).then(|| OneOrMany::Many(s.stop.clone()));
        let top_k = (s.top_k > 0).then_some(s.top_k as i64);
        match &p.example.prompt {
            Prompt::Messages(msgs) if params.chat_template => {
                let messages: Vec<ChatMessage> = msgs
                    .iter()
                    .map(|m| {
                        ChatMessage::new(
                            m.get("role").and_then(|r| r.as_str()).unwrap_or("user"),
                            m.get("content").and_then(|c| c.as_str()).unwrap_or(""),
                        )
                    })
                    .collect();
                let rendered = serde_json::to_string(msgs).unwrap_or_default();
                (
                    rendered,
                    Request::Chat(ChatCompletionRequest {
                        model: self.model.clone(),
                        messages,
                        n: Some(s.n),
                        temperature: Some(s.temperature),
                        top_p: Some(s.top_p),
                        top_k,
                        max_tokens: Some(s.max_new_tokens),
                        stop,
                        seed: Some(s.seed),
                        ..Default::default()
                    }),
                )
            }
            prompt => {
                let text = match prompt {
                    Prompt::Text(t) => t.clone(),
                    Prompt::Messages(msgs) => msgs
                        .iter()
                        .filter_map(|m| m.get("content").and_then(|c| c.as_str()))
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                (
                    text.clone(),
                    Request::Text(CompletionRequest {
                        model: self.model.clone(),
                        prompt: PromptInput::Text(text),
                        n: Some(s.n),
                        temperature: Some(s.temperature),
                        top_p: Some(s.top_p),
                        top_k,
                        max_tokens: Some(s.max_new_tokens),
                        stop,
                        seed: Some(s.seed),
                        ..Default::default()
                    }),
                )
            }
        }
    }
}

fn samples(choices: Vec<(String, Option<FinishReason>)>, usage: &Usage) -> Vec<SampleOut> {
    let per = if choices.is_empty() {
        0
    } else {
        (usage.completion_tokens as f64 / choices.len() as f64).round() as usize
    };
    choices
        .into_iter()
        .map(|(text, finish)| {
            let finish = finish.map(|f| f.as_str().to_string()).unwrap_or_default();
            SampleOut {
                text,
                tokens: per,
                truncated: finish == "length",
                finish_reason: finish,
            }
        })
        .collect()
}

fn failure(e: ClientError) -> PromptFailure {
    PromptFailure::Failed {
        reason: e.to_string(),
    }
}

impl Backend for HttpBackend {
    fn describe(&self) -> String {
        format!("http:{} (model {})", self.base_url, self.model)
    }

    fn generate(
        &self,
        prompts: &[EvalPrompt<'_>],
        params: &GenerateParams,
    ) -> Result<Vec<PromptOutcome>> {
        let mut rendered = Vec::with_capacity(prompts.len());
        let mut chat = Vec::new();
        let mut text = Vec::new();
        // Which list (chat or text) and index each prompt's request went to.
        let mut route = Vec::with_capacity(prompts.len());
        for p in prompts {
            let (r, req) = self.request(p, params);
            rendered.push(r);
            match req {
                Request::Chat(c) => {
                    route.push((true, chat.len()));
                    chat.push(c);
                }
                Request::Text(t) => {
                    route.push((false, text.len()));
                    text.push(t);
                }
            }
        }
        let mut chat_out: Vec<Option<_>> = self
            .client
            .chat_batch(&chat)
            .into_iter()
            .map(Some)
            .collect();
        let mut text_out: Vec<Option<_>> = self
            .client
            .completions_batch(&text)
            .into_iter()
            .map(Some)
            .collect();
        let mut out = Vec::with_capacity(prompts.len());
        for (rendered, (is_chat, i)) in rendered.into_iter().zip(route) {
            let result = if is_chat {
                match chat_out[i].take().expect("one response per request") {
                    Ok(r) => Ok(samples(
                        r.choices
                            .into_iter()
                            .map(|c| (c.message.content, c.finish_reason))
                            .collect(),
                        &r.usage,
                    )),
                    Err(e) => Err(failure(e)),
                }
            } else {
                match text_out[i].take().expect("one response per request") {
                    Ok(r) => Ok(samples(
                        r.choices
                            .into_iter()
                            .map(|c| (c.text, c.finish_reason))
                            .collect(),
                        &r.usage,
                    )),
                    Err(e) => Err(failure(e)),
                }
            };
            out.push(PromptOutcome { rendered, result });
        }
        Ok(out)
    }
}
