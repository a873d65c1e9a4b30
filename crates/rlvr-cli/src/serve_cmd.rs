//! `rlvr serve`: an OpenAI-compatible HTTP server over the in-process rollout engine
//! (`POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`). The work lives in
//! `rlvr-serve`; this parses arguments, loads the model and prints the listening address on
//! stderr (`listening on http://HOST:PORT`) once requests can be sent.

use anyhow::{Context, Result};
use clap::Args;
use rlvr_serve::{ServeOptions, Server};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: crate::model_cmd::ModelArgs,
    /// Address to listen on (loopback by default; `0.0.0.0` exposes the server to the network).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: an ephemeral port, printed once ready).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Requests waiting for the model beyond the one being generated; more are answered 503.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// The model name clients put in `model` (default: the model directory's name).
    #[arg(long)]
    served_model_name: Option<String>,
    /// Rows (prompt × sample) decoded together.
    #[arg(long, default_value_t = 64)]
    batch_rows: usize,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let md = args.model.load()?;
    let mut options = ServeOptions {
        model_name: args.served_model_name.clone(),
        max_queue: args.max_queue.max(1),
        ..Default::default()
    };
    options.engine.max_batch_rows = args.batch_rows.max(1);
    let host = args.host.trim_start_matches('[').trim_end_matches(']');
    let server = Server::bind(md, (host, args.port), options)
        .with_context(|| format!("starting the server on {}:{}", args.host, args.port))?;
    let addr = server.local_addr();
    if !addr.ip().is_loopback() {
        eprintln!("warning: listening on {addr}, reachable from the network (no authentication)");
    }
    eprintln!(
        "listening on http://{addr} (model `{}`; POST /v1/completions, /v1/chat/completions; GET /v1/models)",
        server.model_name()
    );
    server.run()?;
    Ok(())
}
