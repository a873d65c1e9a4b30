//! The OpenAI protocol on both sides (issue 7).
//!
//! - [`types`]: requests and responses of `/v1/completions`, `/v1/chat/completions` and
//!   `/v1/models`, and the error body.
//! - [`server`]: `rlvr serve` — an OpenAI-compatible HTTP server over the in-process
//!   [`rlvr_rollout::RolloutEngine`]: one worker thread owns the model, a bounded queue feeds
//!   it (503 when full), bad requests get a 400 naming the field.
//! - [`client`]: [`client::OpenAiClient`] for any OpenAI-compatible server (rlvr's, vLLM,
//!   SGLang): per-attempt deadlines, retries with exponential backoff on connection errors,
//!   timeouts, 429 and 5xx, and batches with bounded concurrency.
//!
//! HTTP/1.1 is a small hand-written layer over `std::net` (one request per connection), so
//! this crate adds no dependencies beyond the workspace's.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let md = rlvr_model::ModelDir::load("model".as_ref(), &candle_core::Device::Cpu, None)?;
//! let server = rlvr_serve::Server::bind(md, "127.0.0.1:0", Default::default())?.spawn()?;
//! let client = rlvr_serve::OpenAiClient::new(&server.url(), Default::default())?;
//! let resp = client.completions(&rlvr_serve::CompletionRequest {
//!     model: server.model_name().into(),
//!     prompt: "2 + 2 =".into(),
//!     temperature: Some(0.0),
//!     ..Default::default()
//! })?;
//! println!("{}", resp.choices[0].text);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod client;
mod http;
pub mod server;
pub mod types;

pub use client::{ClientError, ClientOptions, OpenAiClient};
pub use server::{serve, ApiError, ServeError, ServeOptions, Server, ServerHandle};
pub use types::{
    ChatChoice, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, CompletionChoice,
    CompletionRequest, CompletionResponse, ErrorBody, ErrorResponse, FinishReason, ModelCard,
    ModelList, OneOrMany, PromptInput, Usage,
};
