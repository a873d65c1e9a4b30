//! The OpenAI-compatible server over rlvr's in-process rollout engine.
//!
//! - Routes: `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`,
//!   `GET /health`; any other path is a 404, a known path with another method a 405.
//! - One worker thread owns the model and the [`RolloutEngine`]; connection threads parse and
//!   validate requests and hand them over through a bounded queue. A full queue answers 503
//!   (`overloaded_error`, with `Retry-After: 1`), as does a connection beyond
//!   [`ServeOptions::max_connections`].
//! - Errors are OpenAI-style bodies, `{"error": {"message", "type", "param", "code"}}`, with
//!   `param` naming the request field at fault; nothing a client sends can panic the server
//!   (requests are deserialized into [`rlvr_protocol::types`]' serde structs and validated, a
//!   body that does not deserialize is diagnosed field by field, heads and bodies are
//!   size-limited, sockets have timeouts, and a panic during generation answers 500 and
//!   leaves the worker running).
//! - Sampling: `temperature` 0 is greedy decoding; the streams are keyed by the request's
//!   `seed` (default 0) and each prompt's index within the request, so the same request gives
//!   the same output. Completions default to `max_tokens` 16 (OpenAI), chat completions to what
//!   is left of the model's context; prompt plus `max_tokens` must fit in the context
//!   (`max_position_embeddings`). The returned text stops before a matched stop string.
//! - Each connection carries one request (`Connection: close`).

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rlvr_model::ModelDir;
use rlvr_rollout::{EngineOptions, Prompt, RolloutEngine, RolloutError, SamplingParams};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use rlvr_protocol::http::{self, HttpError};
use rlvr_protocol::types::{
    content_text, ChatChoice, ChatCompletionRequest, ChatCompletionResponse, ChatMessage,
    CompletionChoice, CompletionRequest, CompletionResponse, ErrorBody, ErrorResponse,
    FinishReason, ModelCard, ModelList, OneOrMany, PromptInput, Usage,
};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The name in `/v1/models` and the `model` requests must name (the model directory's path
    /// as given is accepted too; a request without `model` is accepted). Default: the model
    /// directory's last component.
    pub model_name: Option<String>,
    /// Requests waiting for the worker beyond the one it is generating; more answer 503.
    /// Default 64.
    pub max_queue: usize,
    /// Open connections at once; more answer 503 at once. Default 256.
    pub max_connections: usize,
    /// Largest `n` accepted. Default 128.
    pub max_n: usize,
    /// Largest request body in bytes (413 beyond). Default 16 MiB.
    pub max_body_bytes: usize,
    /// Time a client has to send its request (and to take the response). Default 30 s.
    pub io_timeout: Duration,
    /// How the engine batches rows.
    pub engine: EngineOptions,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model_name: None,
            max_queue: 64,
            max_connections: 256,
            max_n: 128,
            max_body_bytes: 16 << 20,
            io_timeout: Duration::from_secs(30),
            engine: EngineOptions::default(),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The settings make no sense.
    #[error("invalid server option: {0}")]
    Options(String),
    /// Another I/O error (e.g. spawning the worker thread).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An error answered to a client: an HTTP status and an OpenAI-style error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The error body.
    pub body: ErrorBody,
}

impl ApiError {
    fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                message: message.into(),
                kind: kind.to_string(),
                param: None,
                code: None,
            },
        }
    }

    /// 400 `invalid_request_error` naming `param`.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(400, "invalid_request_error", message);
        e.body.param = Some(param.to_string());
        e
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message)
    }

    fn overloaded(message: impl Into<String>) -> Self {
        Self::new(503, "overloaded_error", message)
    }

    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorResponse {
            error: self.body.clone(),
        })
        .unwrap_or_else(|_| b"{\"error\":{\"message\":\"error\"}}".to_vec())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body.message)
    }
}

/// The prompts of a validated request, before tokenization (which the worker does).
#[derive(Debug)]
enum PromptSpec {
    Texts(Vec<String>),
    Ids(Vec<Vec<u32>>),
    Messages(Vec<Value>),
}

/// A validated generation request.
#[derive(Debug)]
struct GenRequest {
    prompts: PromptSpec,
    n: usize,
    temperature: f64,
    top_p: f64,
    top_k: usize,
    max_tokens: Option<usize>,
    stop: Vec<String>,
    seed: u64,
}

impl GenRequest {
    fn is_chat(&self) -> bool {
        matches!(self.prompts, PromptSpec::Messages(_))
    }
}

struct Job {
    req: GenRequest,
    reply: mpsc::Sender<Result<Vec<u8>, ApiError>>,
}

/// What connection threads share.
struct Shared {
    name: String,
    aliases: Vec<String>,
    created: u64,
    options: ServeOptions,
    jobs: SyncSender<Job>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

/// A bound server: [`Server::run`] serves on the calling thread, [`Server::spawn`] on a
/// background one.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// A server running on a background thread; [`ServerHandle::shutdown`] (or dropping it) stops
/// accepting connections.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Server {
    /// Binds `addr` and starts the worker thread that owns the model.
    pub fn bind(
        model: ModelDir,
        addr: impl ToSocketAddrs + std::fmt::Debug,
        options: ServeOptions,
    ) -> Result<Server, ServeError> {
        if options.max_queue == 0 || options.max_connections == 0 || options.max_n == 0 {
            return Err(ServeError::Options(
                "max_queue, max_connections and max_n must be at least 1".into(),
            ));
        }
        let addr_text = format!("{addr:?}");
        let listener = TcpListener::bind(&addr).map_err(|source| ServeError::Bind {
            addr: addr_text.trim_matches('"').to_string(),
            source,
        })?;
        let dir_text = model.dir.display().to_string();
        let name = options.model_name.clone().unwrap_or_else(|| {
            model
                .dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir_text.clone())
        });
        let aliases = vec![name.clone(), dir_text];
        let (tx, rx) = mpsc::sync_channel::<Job>(options.max_queue);
        let worker_name = name.clone();
        let engine_options = options.engine.clone();
        std::thread::Builder::new()
            .name("rlvr-serve-worker".into())
            .spawn(move || worker(model, engine_options, worker_name, rx))?;
        let shared = Arc::new(Shared {
            name,
            aliases,
            created: unix_now(),
            options,
            jobs: tx,
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        Ok(Server { listener, shared })
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The served model's name.
    pub fn model_name(&self) -> &str {
        &self.shared.name
    }

    /// Serves until [`ServerHandle::shutdown`] (never returns for a server that was not
    /// spawned, except on a fatal error).
    pub fn run(self) -> Result<(), ServeError> {
        accept_loop(self.listener, self.shared);
        Ok(())
    }

    /// Serves on a background thread.
    pub fn spawn(self) -> Result<ServerHandle, ServeError> {
        let addr = self.local_addr();
        let shared = self.shared.clone();
        let listener = self.listener;
        let s = self.shared;
        let thread = std::thread::Builder::new()
            .name("rlvr-serve-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(ServerHandle {
            addr,
            shared,
            thread: Some(thread),
        })
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The served model's name.
    pub fn model_name(&self) -> &str {
        &self.shared.name
    }

    /// Stops accepting connections and waits for the accept thread (requests in flight finish
    /// on their own threads).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            // Wake the blocking accept.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` and serves `model` on the calling thread until the process ends.
pub fn serve(
    model: ModelDir,
    addr: impl ToSocketAddrs + std::fmt::Debug,
    options: ServeOptions,
) -> Result<(), ServeError> {
    let server = Server::bind(model, addr, options)?;
    tracing::info!(
        "serving {} on http://{}",
        server.model_name(),
        server.local_addr()
    );
    server.run()
}

/// Decrements the connection count when a connection ends.
struct ConnGuard(Arc<Shared>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let open = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = ConnGuard(shared.clone());
        if open > shared.options.max_connections {
            let e = ApiError::overloaded(format!(
                "too many open connections (limit {}); retry later",
                shared.options.max_connections
            ));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = http::write_json_response(
                &mut &stream,
                e.status,
                &e.json(),
                &[("Retry-After", "1".into())],
            );
            let _ = stream.shutdown(Shutdown::Write);
            drop(guard);
            continue;
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("rlvr-serve-conn".into())
            .spawn(move || {
                let _guard = guard;
                handle_connection(stream, &s);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot spawn a connection thread: {e}");
        }
    }
}

fn handle_connection(stream: TcpStream, shared: &Shared) {
    let timeout = Some(shared.options.io_timeout);
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let started = Instant::now();
    let head = match http::read_head(&mut reader) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => {
            respond_read_error(&stream, e);
            return;
        }
    };
    let mut parts = head.start.split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        respond(
            &stream,
            Err(ApiError::bad_request(format!(
                "malformed request line {:?}",
                head.start
            ))),
        );
        return;
    };
    if !version.starts_with("HTTP/1.") {
        respond(
            &stream,
            Err(ApiError::bad_request(format!(
                "unsupported HTTP version {version}"
            ))),
        );
        return;
    }
    if head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = (&stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let body = match http::read_body(&mut reader, &head, shared.options.max_body_bytes, false) {
        Ok(b) => b,
        Err(e) => {
            respond_read_error(&stream, e);
            return;
        }
    };
    let path = target.split(['?', '#']).next().unwrap_or("");
    let result = route(shared, method, path, &body);
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.status,
    };
    tracing::info!(
        "{method} {path} {status} in {:.3}s",
        started.elapsed().as_secs_f64()
    );
    respond(&stream, result);
}

fn respond_read_error(stream: &TcpStream, e: HttpError) {
    let err = match e {
        HttpError::Closed | HttpError::Io(_) => return,
        HttpError::TimedOut => ApiError::new(
            408,
            "invalid_request_error",
            "timed out waiting for the request",
        ),
        HttpError::TooLarge(what) => ApiError::new(
            413,
            "invalid_request_error",
            format!("the request {what} is too large"),
        ),
        HttpError::Malformed(m) => ApiError::bad_request(format!("malformed HTTP request: {m}")),
    };
    respond(stream, Err(err));
}

fn respond(stream: &TcpStream, result: Result<Vec<u8>, ApiError>) {
    let (status, body, extra) = match result {
        Ok(b) => (200, b, vec![]),
        Err(e) => {
            let extra = if e.status == 503 {
                vec![("Retry-After", "1".to_string())]
            } else {
                vec![]
            };
            (e.status, e.json(), extra)
        }
    };
    let mut w = stream;
    let _ = http::write_json_response(&mut w, status, &body, &extra);
    let _ = stream.shutdown(Shutdown::Write);
}

fn route(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match (method, path) {
        ("GET", "/v1/models") => {
            let list = ModelList {
                object: "list".into(),
                data: vec![ModelCard {
                    id: shared.name.clone(),
                    object: "model".into(),
                    created: shared.created,
                    owned_by: "rlvr".into(),
                }],
            };
            serde_json::to_vec(&list).map_err(|e| ApiError::internal(e.to_string()))
        }
        ("GET", "/health") => Ok(b"{}".to_vec()),
        ("POST", "/v1/completions") => generate(shared, body, false),
        ("POST", "/v1/chat/completions") => generate(shared, body, true),
        (_, "/v1/models" | "/health" | "/v1/completions" | "/v1/chat/completions") => {
            Err(ApiError::new(
                405,
                "invalid_request_error",
                format!("method {method} is not allowed on {path}"),
            ))
        }
        _ => Err(ApiError::new(
            404,
            "not_found_error",
            format!("unknown route: {method} {path}"),
        )),
    }
}

fn generate(shared: &Shared, body: &[u8], chat: bool) -> Result<Vec<u8>, ApiError> {
    let req = if chat {
        let r = serde_json::from_slice::<ChatCompletionRequest>(body)
            .map_err(|e| diagnose(body, chat, e))?;
        chat_request(r, shared)?
    } else {
        let r = serde_json::from_slice::<CompletionRequest>(body)
            .map_err(|e| diagnose(body, chat, e))?;
        completion_request(r, shared)?
    };
    let (tx, rx) = mpsc::channel();
    match shared.jobs.try_send(Job { req, reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(ApiError::overloaded(format!(
                "the request queue is full ({} waiting); retry later",
                shared.options.max_queue
            )))
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(ApiError::overloaded("the generation worker has stopped"))
        }
    }
    rx.recv()
        .map_err(|_| ApiError::internal("the generation worker stopped during the request"))?
}

/// Short JSON text of a value, for messages.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let mut end = 57;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Field `name` as a `T` (`None` when absent or null), or a 400 naming it.
fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|_| {
            ApiError::invalid(
                name,
                format!("`{name}` must be {expected}, got {}", show(v)),
            )
        }),
    }
}

const PROMPT_EXPECTED: &str =
    "a string, a list of strings, a list of token ids or a list of lists of token ids";

/// Why `body` did not deserialize into the request type (`err`), as a 400 that names the
/// field at fault. serde's error says where in the text it stopped, not which field, so the
/// fields are checked one by one, in the order the validation reports them.
fn diagnose(body: &[u8], chat: bool, err: serde_json::Error) -> ApiError {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return ApiError::bad_request(format!("the body is not valid JSON: {e}")),
    };
    let Value::Object(obj) = v else {
        return ApiError::bad_request("the body must be a JSON object");
    };
    let check = || -> Result<(), ApiError> {
        field::<String>(&obj, "model", "a string")?;
        if chat {
            let msgs = field::<Vec<Value>>(&obj, "messages", "a list of messages")?
                .ok_or_else(|| ApiError::invalid("messages", "`messages` is required"))?;
            for (i, m) in msgs.iter().enumerate() {
                let param = format!("messages[{i}]");
                let Value::Object(m) = m else {
                    return Err(ApiError::invalid(
                        &param,
                        format!("`{param}` must be an object"),
                    ));
                };
                if !matches!(m.get("role"), Some(Value::String(_))) {
                    return Err(ApiError::invalid(
                        &format!("{param}.role"),
                        format!("`{param}.role` must be a string"),
                    ));
                }
                if content_text(m.get("content").unwrap_or(&Value::Null)).is_none() {
                    return Err(ApiError::invalid(
                        &format!("{param}.content"),
                        format!("`{param}.content` must be a string or a list of text parts"),
                    ));
                }
            }
        } else {
            field::<PromptInput>(&obj, "prompt", PROMPT_EXPECTED)?
                .ok_or_else(|| ApiError::invalid("prompt", "`prompt` is required"))?;
        }
        field::<usize>(&obj, "n", "a positive integer")?;
        field::<f64>(&obj, "temperature", "a number")?;
        field::<f64>(&obj, "top_p", "a number")?;
        field::<i64>(&obj, "top_k", "an integer")?;
        field::<usize>(&obj, "max_tokens", "a positive integer")?;
        field::<OneOrMany>(&obj, "stop", "a string or a list of strings")?;
        field::<u64>(&obj, "seed", "a non-negative integer")?;
        Ok(())
    };
    match check() {
        Err(e) => e,
        // Every field of the request types is checked above; should serde still disagree,
        // its own message says where.
        Ok(()) => ApiError::bad_request(format!("invalid request: {err}")),
    }
}

/// The fields both request types share, for [`validate`].
struct Sampling<'a> {
    model: &'a str,
    n: Option<usize>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    max_tokens: Option<usize>,
    stop: Option<&'a OneOrMany>,
    seed: Option<u64>,
    extra: &'a Map<String, Value>,
}

fn completion_request(r: CompletionRequest, shared: &Shared) -> Result<GenRequest, ApiError> {
    let prompts = match r.prompt {
        PromptInput::Text(s) => PromptSpec::Texts(vec![s]),
        PromptInput::Texts(v) => PromptSpec::Texts(v),
        PromptInput::Tokens(v) => PromptSpec::Ids(vec![v]),
        PromptInput::TokenBatches(v) => PromptSpec::Ids(v),
    };
    let sampling = Sampling {
        model: &r.model,
        n: r.n,
        temperature: r.temperature,
        top_p: r.top_p,
        top_k: r.top_k,
        max_tokens: r.max_tokens,
        stop: r.stop.as_ref(),
        seed: r.seed,
        extra: &r.extra,
    };
    validate(sampling, prompts, shared)
}

fn chat_request(r: ChatCompletionRequest, shared: &Shared) -> Result<GenRequest, ApiError> {
    let messages = r
        .messages
        .iter()
        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
        .collect();
    let sampling = Sampling {
        model: &r.model,
        n: r.n,
        temperature: r.temperature,
        top_p: r.top_p,
        top_k: r.top_k,
        max_tokens: r.max_tokens,
        stop: r.stop.as_ref(),
        seed: r.seed,
        extra: &r.extra,
    };
    validate(sampling, PromptSpec::Messages(messages), shared)
}

/// Checks a deserialized request's values (the served model, unsupported options, ranges) and
/// fills in the defaults.
fn validate(r: Sampling<'_>, prompts: PromptSpec, shared: &Shared) -> Result<GenRequest, ApiError> {
    let chat = matches!(prompts, PromptSpec::Messages(_));
    if !r.model.is_empty() && !shared.aliases.iter().any(|a| a == r.model) {
        let mut e = ApiError::new(
            404,
            "invalid_request_error",
            format!(
                "the model `{}` does not exist; this server serves `{}`",
                r.model, shared.name
            ),
        );
        e.body.param = Some("model".into());
        e.body.code = Some("model_not_found".into());
        return Err(e);
    }
    // Fields the request types do not have land in `extra`.
    if field::<bool>(r.extra, "stream", "a boolean")?.unwrap_or(false) {
        return Err(ApiError::invalid("stream", "streaming is not supported"));
    }
    if field::<bool>(r.extra, "echo", "a boolean")?.unwrap_or(false) {
        return Err(ApiError::invalid("echo", "`echo` is not supported"));
    }
    let count = match &prompts {
        PromptSpec::Texts(v) => v.len(),
        PromptSpec::Ids(v) => v.len(),
        PromptSpec::Messages(v) => v.len(),
    };
    if count == 0 {
        let param = if chat { "messages" } else { "prompt" };
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must not be empty"),
        ));
    }
    let n = r.n.unwrap_or(1);
    if n == 0 || n > shared.options.max_n {
        return Err(ApiError::invalid(
            "n",
            format!(
                "`n` must be between 1 and {}, got {n}",
                shared.options.max_n
            ),
        ));
    }
    let temperature = r.temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(ApiError::invalid(
            "temperature",
            format!("`temperature` must be a number ≥ 0, got {temperature}"),
        ));
    }
    let top_p = r.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            "top_p",
            format!("`top_p` must be in (0, 1], got {top_p}"),
        ));
    }
    let top_k = r.top_k.unwrap_or(0);
    if top_k < -1 {
        return Err(ApiError::invalid(
            "top_k",
            format!("`top_k` must be ≥ -1 (-1 or 0: off), got {top_k}"),
        ));
    }
    let mut max_tokens = r.max_tokens;
    let mut max_param = "max_tokens";
    if chat && max_tokens.is_none() {
        max_tokens = field::<usize>(r.extra, "max_completion_tokens", "a positive integer")?;
        max_param = "max_completion_tokens";
    }
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(
            max_param,
            format!("`{max_param}` must be at least 1"),
        ));
    }
    let stop = r.stop.map(OneOrMany::to_vec).unwrap_or_default();
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            "`stop` must not contain an empty string",
        ));
    }
    Ok(GenRequest {
        prompts,
        n,
        temperature,
        top_p,
        top_k: top_k.max(0) as usize,
        max_tokens,
        stop,
        // `logprobs` is accepted and ignored.
        seed: r.seed.unwrap_or(0),
    })
}

/// The worker: owns the model and the engine, answers jobs one at a time.
fn worker(md: ModelDir, options: EngineOptions, name: String, jobs: Receiver<Job>) {
    let engine = RolloutEngine::from_model_dir(&md).with_options(options);
    let ids = AtomicU64::new(0);
    while let Ok(job) = jobs.recv() {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(
                &md,
                &engine,
                &name,
                &job.req,
                ids.fetch_add(1, Ordering::Relaxed),
            )
        }))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!("generation panicked: {msg}");
            Err(ApiError::internal(format!("generation failed: {msg}")))
        });
        // The client may have gone; nothing to do then.
        let _ = job.reply.send(result);
    }
}

fn prompt_ids(md: &ModelDir, spec: &PromptSpec) -> Result<Vec<Vec<u32>>, ApiError> {
    let tok = &md.tokenizer;
    match spec {
        PromptSpec::Texts(texts) => texts
            .iter()
            .map(|t| {
                tok.encode(t, true)
                    .map_err(|e| ApiError::invalid("prompt", format!("cannot tokenize: {e}")))
            })
            .collect(),
        PromptSpec::Ids(rows) => {
            let vocab = md.model.config().vocab_size;
            for row in rows {
                if let Some(bad) = row.iter().find(|&&t| t as usize >= vocab) {
                    return Err(ApiError::invalid(
                        "prompt",
                        format!(
                            "`prompt`: token id {bad} is not below the vocabulary size {vocab}"
                        ),
                    ));
                }
            }
            Ok(rows.clone())
        }
        PromptSpec::Messages(msgs) => {
            let text = tok
                .apply_chat_template(msgs, true, None)
                .map_err(|e| ApiError::invalid("messages", format!("chat template: {e}")))?;
            Ok(vec![tok.encode(&text, false).map_err(|e| {
                ApiError::invalid("messages", format!("cannot tokenize: {e}"))
            })?])
        }
    }
}

fn run_job(
    md: &ModelDir,
    engine: &RolloutEngine,
    name: &str,
    req: &GenRequest,
    serial: u64,
) -> Result<Vec<u8>, ApiError> {
    let prompt_param = if req.is_chat() { "messages" } else { "prompt" };
    let ids = prompt_ids(md, &req.prompts)?;
    if let Some(i) = ids.iter().position(Vec::is_empty) {
        return Err(ApiError::invalid(
            prompt_param,
            format!("prompt {i} is empty after tokenization"),
        ));
    }
    let context = md.model.config().max_position_embeddings;
    let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
    if longest >= context {
        return Err(ApiError::invalid(
            prompt_param,
            format!("a prompt of {longest} tokens leaves no room in the model's context of {context} tokens"),
        ));
    }
    let room = context - longest;
    let max_new_tokens = match req.max_tokens {
        Some(m) if m > room => {
            return Err(ApiError::invalid(
                "max_tokens",
                format!(
                    "a prompt of {longest} tokens plus max_tokens {m} exceeds the model's context of {context} tokens"
                ),
            ))
        }
        Some(m) => m,
        None if req.is_chat() => room,
        None => 16.min(room),
    };
    let params = SamplingParams {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        max_new_tokens,
        stop: req.stop.clone(),
        n: req.n,
        seed: req.seed,
        ..Default::default()
    };
    let prompts: Vec<Prompt> = ids
        .into_iter()
        .enumerate()
        .map(|(i, ids)| Prompt { ids, key: i as u64 })
        .collect();
    let out = engine
        .generate_keyed(&prompts, &params)
        .map_err(|e| match e {
            RolloutError::Params(m) | RolloutError::Input(m) => ApiError::bad_request(m),
            other => ApiError::internal(format!("generation failed: {other}")),
        })?;
    let usage = Usage {
        prompt_tokens: prompts.iter().map(|p| p.ids.len()).sum(),
        completion_tokens: out.completions.iter().map(|c| c.tokens.len()).sum(),
        total_tokens: 0,
    };
    let usage = Usage {
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        ..usage
    };
    let created = unix_now();
    let id_suffix = format!("{:x}{:06x}", created, serial);
    let finished = out.completions.into_iter().map(|c| {
        let finish = match c.finish_reason {
            rlvr_rollout::FinishReason::Length => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        let text = match c.stop_offset {
            Some(o) if c.text.is_char_boundary(o) => c.text[..o].to_string(),
            _ => c.text,
        };
        (c.prompt_index * req.n + c.sample_index, text, finish)
    });
    let body = if req.is_chat() {
        serde_json::to_vec(&ChatCompletionResponse {
            id: format!("chatcmpl-{id_suffix}"),
            object: "chat.completion".into(),
            created,
            model: name.to_string(),
            choices: finished
                .map(|(index, text, finish)| ChatChoice {
                    index,
                    message: ChatMessage::new("assistant", text),
                    finish_reason: Some(finish),
                    logprobs: None,
                })
                .collect(),
            usage,
        })
    } else {
        serde_json::to_vec(&CompletionResponse {
            id: format!("cmpl-{id_suffix}"),
            object: "text_completion".into(),
            created,
            model: name.to_string(),
            choices: finished
                .map(|(index, text, finish)| CompletionChoice {
                    index,
                    text,
                    finish_reason: Some(finish),
                    logprobs: None,
                })
                .collect(),
            usage,
        })
    };
    body.map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server answers for a body that does not deserialize: status and `param`.
    fn why(body: &str, chat: bool) -> (u16, Option<String>, String) {
        let err = if chat {
            serde_json::from_str::<ChatCompletionRequest>(body).err()
        } else {
            serde_json::from_str::<CompletionRequest>(body).err()
        }
        .unwrap_or_else(|| panic!("{body} deserializes"));
        let e = diagnose(body.as_bytes(), chat, err);
        (e.status, e.body.param, e.body.message)
    }

    #[test]
    fn bodies_that_do_not_deserialize_name_the_field() {
        let cases: &[(&str, bool, Option<&str>, &str)] = &[
            ("{not json", false, None, "not valid JSON"),
            ("", true, None, "not valid JSON"),
            ("[1]", false, None, "must be a JSON object"),
            ("null", true, None, "must be a JSON object"),
            (
                r#"{"model": 3, "prompt": "x"}"#,
                false,
                Some("model"),
                "`model` must be",
            ),
            (r#"{}"#, false, Some("prompt"), "`prompt` is required"),
            (
                r#"{"prompt": null}"#,
                false,
                Some("prompt"),
                "`prompt` is required",
            ),
            (
                r#"{"prompt": [1, "a"]}"#,
                false,
                Some("prompt"),
                "got [1,\"a\"]",
            ),
            (r#"{"prompt": "x", "n": -1}"#, false, Some("n"), "got -1"),
            (
                r#"{"prompt": "x", "top_p": "a"}"#,
                false,
                Some("top_p"),
                "a number",
            ),
            (
                r#"{"prompt": "x", "top_k": 0.5}"#,
                false,
                Some("top_k"),
                "an integer",
            ),
            (
                r#"{"prompt": "x", "max_tokens": 1e99}"#,
                false,
                Some("max_tokens"),
                "positive",
            ),
            (
                r#"{"prompt": "x", "stop": {"a": 1}}"#,
                false,
                Some("stop"),
                "a string or",
            ),
            (
                r#"{"prompt": "x", "seed": "s"}"#,
                false,
                Some("seed"),
                "non-negative",
            ),
            (
                r#"{"model": "m"}"#,
                true,
                Some("messages"),
                "`messages` is required",
            ),
            (
                r#"{"messages": {"role": "user"}}"#,
                true,
                Some("messages"),
                "a list",
            ),
            (
                r#"{"messages": [5]}"#,
                true,
                Some("messages[0]"),
                "must be an object",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "a"}, {"role": 1}]}"#,
                true,
                Some("messages[1].role"),
                "must be a string",
            ),
            (
                r#"{"messages": [{"role": "user", "content": [{"image": 1}]}]}"#,
                true,
                Some("messages[0].content"),
                "list of text parts",
            ),
            (
                r#"{"messages": [{"role": "user"}], "temperature": []}"#,
                true,
                Some("temperature"),
                "a number",
            ),
        ];
        for &(body, chat, param, text) in cases {
            let (status, got, message) = why(body, chat);
            assert_eq!(status, 400, "{body}");
            assert_eq!(got.as_deref(), param, "{body}: {message}");
            assert!(message.contains(text), "{body}: {message}");
        }
    }

    #[test]
    fn requests_deserialize_as_the_server_reads_them() {
        // No `model`, token-id prompts, `stop` as a string, extensions kept in `extra`.
        let r: CompletionRequest =
            serde_json::from_str(r#"{"prompt": [[1, 2], [3]], "stop": "\n", "echo": false}"#)
                .unwrap();
        assert_eq!(r.model, "");
        assert_eq!(
            r.prompt,
            PromptInput::TokenBatches(vec![vec![1, 2], vec![3]])
        );
        assert_eq!(
            r.stop.as_ref().map(OneOrMany::to_vec),
            Some(vec!["\n".to_string()])
        );
        assert_eq!(r.extra.get("echo"), Some(&Value::Bool(false)));
        // Message content: null, absent and text parts all read as text.
        let r: ChatCompletionRequest = serde_json::from_str(
            r#"{"messages": [{"role": "system", "content": null}, {"role": "user"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}],
                "max_completion_tokens": 3}"#,
        )
        .unwrap();
        let texts: Vec<&str> = r.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["", "", "ab"]);
        assert_eq!(r.extra["max_completion_tokens"], 3);
    }
}
