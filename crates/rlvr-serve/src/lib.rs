//! `rlvr serve`: an OpenAI-compatible server over the rollout engine (issue 7).
//!
//! - [`server`]: `rlvr serve` — an OpenAI-compatible HTTP server over the in-process
//!   [`rlvr_rollout::RolloutEngine`]: one worker thread owns the model, a bounded queue feeds
//!   it (503 when full), bad requests get a 400 naming the field.
//! - [`types`], [`client`]: the wire types and the client, which live in [`rlvr_protocol`]
//!   (shared with rlvr-eval, which then needs neither the server nor the model) and are
//!   re-exported here.
//!
//! Requests are deserialized into [`rlvr_protocol::types`]' serde structs, then validated
//! (ranges, the served model's name); a body that does not deserialize is diagnosed field by
//! field so that the 400 names the field at fault. HTTP/1.1 is rlvr-protocol's small
//! hand-written layer over `std::net` (one request per connection), so this crate adds no
//! dependencies beyond the workspace's; a later change replaces it with hyper/axum.
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

pub mod server;

pub use rlvr_protocol::{client, types};
pub use rlvr_protocol::{
    ChatChoice, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, CompletionChoice,
    CompletionRequest, CompletionResponse, ErrorBody, ErrorResponse, FinishReason, ModelCard,
    ModelList, OneOrMany, PromptInput, Usage,
};
pub use rlvr_protocol::{ClientError, ClientOptions, OpenAiClient};
pub use server::{serve, ApiError, ServeError, ServeOptions, Server, ServerHandle};
