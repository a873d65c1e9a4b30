//! The OpenAI protocol as rlvr speaks it, on both sides: what `rlvr serve` (rlvr-serve)
//! answers and what `rlvr eval --endpoint` (rlvr-eval's HTTP backend) sends.
//!
//! - [`types`]: requests and responses of `/v1/completions`, `/v1/chat/completions` and
//!   `/v1/models`, and the error body (serde structs: the server deserializes requests into
//!   them, the client serializes them);
//! - [`client`]: [`client::OpenAiClient`] for any OpenAI-compatible server (rlvr's, vLLM,
//!   SGLang): per-attempt deadlines, retries with exponential backoff on connection errors,
//!   timeouts, 429 and 5xx, and batches with bounded concurrency;
//! - [`http`]: the small HTTP/1.1 layer the client and rlvr-serve's server share.
//!
//! A crate of its own so that evaluation against a server does not pull in the server, the
//! rollout engine or the model: this crate never depends on the model (the workspace's
//! architecture test checks it).
//!
//! HTTP/1.1 is hand-written over `std::net` (one request per connection, `Connection: close`,
//! size limits on heads and bodies, deadlines on every read and write) so that the crate adds
//! no dependencies beyond the workspace's: the use is a server on loopback or a LAN, with no
//! TLS, keep-alive or streaming. A later change replaces it with hyper/axum.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rlvr_protocol::{CompletionRequest, OpenAiClient};
//! let client = OpenAiClient::new("http://127.0.0.1:8000/v1", Default::default())?;
//! let resp = client.completions(&CompletionRequest {
//!     model: "tiny-qwen2".into(),
//!     prompt: "2 + 2 =".into(),
//!     temperature: Some(0.0),
//!     ..Default::default()
//! })?;
//! println!("{}", resp.choices[0].text);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod http;
pub mod types;

pub use client::{ClientError, ClientOptions, OpenAiClient};
pub use types::{
    ChatChoice, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, CompletionChoice,
    CompletionRequest, CompletionResponse, ErrorBody, ErrorResponse, FinishReason, ModelCard,
    ModelList, OneOrMany, PromptInput, Usage,
};
