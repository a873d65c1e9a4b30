//! A client for OpenAI-compatible servers (rlvr's own, vLLM, SGLang, ...): typed
//! `/v1/completions` and `/v1/chat/completions` calls over plain HTTP/1.1, with a deadline on
//! every attempt, retries with exponential backoff, and bounded concurrency for batches.
//!
//! - Every attempt (connect, send, receive) ends within [`ClientOptions::timeout`]; there are
//!   at most `1 + retries` attempts, so a call always returns.
//! - Retried: connection failures, connections closed or reset before a complete response,
//!   timeouts, HTTP 429 and 5xx (waiting `backoff_initial · 2^i`, capped at `backoff_max`, or
//!   the server's `Retry-After` when that is longer, still capped). Not retried: other 4xx
//!   (the request itself is wrong) and 2xx bodies that are not the expected JSON.
//! - Errors say what happened after how many attempts: the status code and the server's
//!   message, "connection closed by the server", "timed out after N ms", ...
//! - `https://` is not supported (the use case is a server on loopback or a LAN).
//!
//! ```no_run
//! use rlvr_protocol::client::{ClientOptions, OpenAiClient};
//! use rlvr_protocol::types::{ChatCompletionRequest, ChatMessage};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = OpenAiClient::new("http://127.0.0.1:8000/v1", ClientOptions::default())?;
//! let resp = client.chat(&ChatCompletionRequest {
//!     model: "tiny-qwen2".into(),
//!     messages: vec![ChatMessage::user("What is 2 + 2?")],
//!     temperature: Some(0.0),
//!     max_tokens: Some(32),
//!     ..Default::default()
//! })?;
//! println!("{}", resp.choices[0].message.content);
//! # Ok(()) }
//! ```

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::{self, HttpError};
use crate::types::{
    ChatCompletionRequest, ChatCompletionResponse, CompletionRequest, CompletionResponse,
    ErrorResponse, ModelList,
};

/// Largest response body accepted (64 MiB).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Deadline of one attempt: connect, send and receive. Default 300 s.
    pub timeout: Duration,
    /// Attempts after the first on a retryable failure. Default 3.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one. Default 500 ms.
    pub backoff_initial: Duration,
    /// Longest wait between attempts. Default 10 s.
    pub backoff_max: Duration,
    /// Sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Requests in flight at once in the batch helpers. Default 8.
    pub concurrency: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(300),
            retries: 3,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            api_key: None,
            concurrency: 8,
        }
    }
}

/// Why a call failed. Every variant but [`ClientError::InvalidUrl`] and
/// [`ClientError::Encode`] names the URL and how many attempts were made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL cannot be used.
    #[error("invalid base URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be serialized.
    #[error("cannot encode the request: {0}")]
    Encode(#[source] serde_json::Error),
    /// The server answered with a non-success status.
    #[error("{url}: HTTP {status}: {message} (after {attempts} attempt(s))")]
    Http {
        /// The request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The server's error message (its `error.message`, else the body's text).
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An attempt did not finish in time.
    #[error("{url}: timed out after {ms} ms (after {attempts} attempt(s))")]
    Timeout {
        /// The request URL.
        url: String,
        /// The per-attempt timeout, in milliseconds.
        ms: u128,
        /// Attempts made.
        attempts: u32,
    },
    /// The server closed (or reset) the connection before a complete response.
    #[error("{url}: connection closed by the server before a complete response (after {attempts} attempt(s))")]
    ConnectionClosed {
        /// The request URL.
        url: String,
        /// Attempts made.
        attempts: u32,
    },
    /// No connection could be made, or another I/O error.
    #[error("{url}: connection failed: {message} (after {attempts} attempt(s))")]
    Connect {
        /// The request URL.
        url: String,
        /// The OS error.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The server answered 2xx with a body that is not the expected JSON, or with something
    /// that is not HTTP.
    #[error("{url}: invalid response: {message} (after {attempts} attempt(s))")]
    InvalidResponse {
        /// The request URL.
        url: String,
        /// What is wrong with it.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Attempts made (0 when none could start).
    pub fn attempts(&self) -> u32 {
        match self {
            ClientError::Http { attempts, .. }
            | ClientError::Timeout { attempts, .. }
            | ClientError::ConnectionClosed { attempts, .. }
            | ClientError::Connect { attempts, .. }
            | ClientError::InvalidResponse { attempts, .. } => *attempts,
            ClientError::InvalidUrl { .. } | ClientError::Encode(_) => 0,
        }
    }

    fn set_attempts(&mut self, n: u32) {
        match self {
            ClientError::Http { attempts, .. }
            | ClientError::Timeout { attempts, .. }
            | ClientError::ConnectionClosed { attempts, .. }
            | ClientError::Connect { attempts, .. }
            | ClientError::InvalidResponse { attempts, .. } => *attempts = n,
            _ => {}
        }
    }
}

/// The outcome of one attempt that should be retried, with the server's `Retry-After`.
struct Retryable {
    error: ClientError,
    retry_after: Option<Duration>,
}

enum AttemptError {
    Retry(Retryable),
    Fatal(ClientError),
}

/// A client of one OpenAI-compatible server. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    host: String,
    port: u16,
    /// Path prefix ending in `/v1` (no trailing slash).
    prefix: String,
    options: ClientOptions,
}

impl OpenAiClient {
    /// A client of the server at `base_url`: `http://HOST[:PORT][/PREFIX]`. The OpenAI
    /// convention of a base ending in `/v1` is followed; a base without it gets `/v1` appended
    /// (`http://127.0.0.1:8000` and `http://127.0.0.1:8000/v1` are the same server).
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::InvalidUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let rest = if let Some(r) = base_url.strip_prefix("http://") {
            r
        } else if base_url.starts_with("https://") {
            return Err(bad(
                "https is not supported by rlvr's client; use http:// (a server on loopback or a LAN)",
            ));
        } else {
            return Err(bad("expected http://HOST[:PORT][/PATH]"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported; use api_key"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(bad("bad host")),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("missing host"));
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_end_matches('/');
        let prefix = if path.ends_with("/v1") {
            path.to_string()
        } else {
            format!("{path}/v1")
        };
        Ok(OpenAiClient {
            host,
            port,
            prefix,
            options,
        })
    }

    /// The settings.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The full URL of an API path such as `/completions`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}{}", self.host, self.port, self.prefix, path)
    }

    /// `POST /v1/completions`.
    pub fn completions(&self, req: &CompletionRequest) -> Result<CompletionResponse, ClientError> {
        self.post("/completions", req)
    }

    /// `POST /v1/chat/completions`.
    pub fn chat(&self, req: &ChatCompletionRequest) -> Result<ChatCompletionResponse, ClientError> {
        self.post("/chat/completions", req)
    }

    /// `GET /v1/models`.
    pub fn models(&self) -> Result<ModelList, ClientError> {
        self.call("GET", "/models", None)
    }

    /// Many completions requests, at most [`ClientOptions::concurrency`] in flight; one result
    /// per request, in order.
    pub fn completions_batch(
        &self,
        reqs: &[CompletionRequest],
    ) -> Vec<Result<CompletionResponse, ClientError>> {
        self.run_batch(reqs, |c, r| c.completions(r))
    }

    /// Many chat requests, at most [`ClientOptions::concurrency`] in flight; one result per
    /// request, in order.
    pub fn chat_batch(
        &self,
        reqs: &[ChatCompletionRequest],
    ) -> Vec<Result<ChatCompletionResponse, ClientError>> {
        self.run_batch(reqs, |c, r| c.chat(r))
    }

    /// Runs `f(self, item)` for every item on at most [`ClientOptions::concurrency`] threads;
    /// the results come back in the items' order.
    pub fn run_batch<T, R, F>(&self, items: &[T], f: F) -> Vec<R>
    where
        T: Sync,
        R: Send,
        F: Fn(&Self, &T) -> R + Sync,
    {
        let workers = self.options.concurrency.max(1).min(items.len());
        if workers <= 1 {
            return items.iter().map(|x| f(self, x)).collect();
        }
        let next = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(self, &items[i]);
                    slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                });
            }
        });
        slots
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.expect("every slot is filled once the scope ends"))
            .collect()
    }

    fn post<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        req: &Q,
    ) -> Result<R, ClientError> {
        let body = serde_json::to_vec(req).map_err(ClientError::Encode)?;
        self.call("POST", path, Some(&body))
    }

    /// One call with retries.
    fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<R, ClientError> {
        let url = self.url(path);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match self.attempt(method, path, &url, body) {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        ClientError::InvalidResponse {
                            url: url.clone(),
                            message: format!("unexpected JSON ({e}): {}", snippet(&bytes)),
                            attempts: attempt,
                        }
                    })
                }
                Err(AttemptError::Fatal(mut e)) => {
                    e.set_attempts(attempt);
                    return Err(e);
                }
                Err(AttemptError::Retry(r)) => r,
            };
            if attempt > self.options.retries {
                let mut e = err.error;
                e.set_attempts(attempt);
                return Err(e);
            }
            let exp = self
                .options
                .backoff_initial
                .saturating_mul(1u32 << (attempt - 1).min(30));
            let wait = exp
                .max(err.retry_after.unwrap_or_default())
                .min(self.options.backoff_max);
            tracing::debug!("{url}: {} ; retrying in {wait:?}", err.error);
            std::thread::sleep(wait);
        }
    }

    fn resolve(&self, url: &str) -> Result<Vec<SocketAddr>, AttemptError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .map_err(|e| {
                AttemptError::Retry(Retryable {
                    error: ClientError::Connect {
                        url: url.to_string(),
                        message: format!("cannot resolve {}: {e}", self.host),
                        attempts: 0,
                    },
                    retry_after: None,
                })
            })
    }

    /// One attempt: the 2xx body, or what went wrong.
    fn attempt(
        &self,
        method: &str,
        path: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, AttemptError> {
        let timeout = self.options.timeout;
        let deadline = Instant::now() + timeout;
        let transport = |e: HttpError| -> AttemptError {
            let error = match e {
                HttpError::TimedOut => ClientError::Timeout {
                    url: url.to_string(),
                    ms: timeout.as_millis(),
                    attempts: 0,
                },
                HttpError::Closed => ClientError::ConnectionClosed {
                    url: url.to_string(),
                    attempts: 0,
                },
                HttpError::Io(e) => ClientError::Connect {
                    url: url.to_string(),
                    message: e.to_string(),
                    attempts: 0,
                },
                HttpError::TooLarge(what) => {
                    return AttemptError::Fatal(ClientError::InvalidResponse {
                        url: url.to_string(),
                        message: format!("the response {what} is too large"),
                        attempts: 0,
                    })
                }
                HttpError::Malformed(m) => {
                    return AttemptError::Fatal(ClientError::InvalidResponse {
                        url: url.to_string(),
                        message: format!("not an HTTP response: {m}"),
                        attempts: 0,
                    })
                }
            };
            AttemptError::Retry(Retryable {
                error,
                retry_after: None,
            })
        };

        // Connect to the first address that answers, within the deadline.
        let mut stream = None;
        let mut last = None;
        for addr in self.resolve(url)? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(transport(HttpError::TimedOut));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => {
                let e = last.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                });
                return Err(match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        transport(HttpError::TimedOut)
                    }
                    _ => transport(HttpError::Io(e)),
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let mut s = http::DeadlineStream {
            stream,
            deadline: Some(deadline),
        };

        let body = body.unwrap_or(&[]);
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: rlvr/{}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.prefix,
            self.host,
            self.port,
            env!("CARGO_PKG_VERSION"),
        );
        if method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        if let Some(key) = &self.options.api_key {
            head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        head.push_str("\r\n");
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        // A write error may hide a response already sent (e.g. an early 503): try to read one.
        let write_err = s.write_all(&msg).and_then(|_| s.flush()).err();

        let mut reader = BufReader::new(s);
        let head = loop {
            let h = match http::read_head(&mut reader) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    return Err(transport(match write_err {
                        Some(e) => HttpError::from(e),
                        None => HttpError::Closed,
                    }))
                }
                Err(e) => {
                    return Err(transport(match (e, write_err) {
                        (HttpError::Io(_) | HttpError::Closed, Some(w)) => HttpError::from(w),
                        (e, _) => e,
                    }))
                }
            };
            let status = parse_status(&h).map_err(transport)?;
            // Interim responses (100 Continue) precede the real one.
            if !(100..200).contains(&status) {
                break h;
            }
        };
        let status = parse_status(&head).map_err(transport)?;
        let bytes =
            http::read_body(&mut reader, &head, MAX_RESPONSE_BYTES, true).map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let error = ClientError::Http {
            url: url.to_string(),
            status,
            message: server_message(&bytes),
            attempts: 0,
        };
        if status == 429 || status >= 500 {
            let retry_after = head
                .header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)));
            Err(AttemptError::Retry(Retryable { error, retry_after }))
        } else {
            Err(AttemptError::Fatal(error))
        }
    }
}

fn parse_status(head: &http::Head) -> Result<u16, HttpError> {
    let mut parts = head.start.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(HttpError::Malformed(format!(
            "bad status line {:?}",
            head.start
        ))),
    }
}

/// At most ~200 characters of a body, for messages.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}...", &text[..end])
    } else {
        text.to_string()
    }
}

/// The error message of an error body: OpenAI's `error.message`, FastAPI's `detail`, a
/// top-level `message`, else the text itself.
fn server_message(bytes: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorResponse>(bytes) {
        return e.error.message;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        for key in ["detail", "message", "error"] {
            match v.get(key) {
                Some(serde_json::Value::String(s)) => return s.clone(),
                Some(other) if !other.is_null() => return snippet(other.to_string().as_bytes()),
                _ => {}
            }
        }
    }
    snippet(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let o = ClientOptions::default;
        let c = OpenAiClient::new("http://127.0.0.1:8000", o()).unwrap();
        assert_eq!(
            c.url("/completions"),
            "http://127.0.0.1:8000/v1/completions"
        );
        let c = OpenAiClient::new("http://localhost:9/v1/", o()).unwrap();
        assert_eq!(c.url("/models"), "http://localhost:9/v1/models");
        let c = OpenAiClient::new("http://h/api/v1", o()).unwrap();
        assert_eq!(c.url("/models"), "http://h:80/api/v1/models");
        let c = OpenAiClient::new("http://[::1]:5", o()).unwrap();
        assert_eq!(c.url("/models"), "http://[::1]:5/v1/models");
        for bad in ["https://x", "ftp://x", "http://", "http://h:port", "x:1"] {
            let e = OpenAiClient::new(bad, o()).unwrap_err();
            assert!(matches!(e, ClientError::InvalidUrl { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(br#"{"error": {"message": "queue full", "type": "x"}}"#),
            "queue full"
        );
        assert_eq!(server_message(br#"{"detail": "Not Found"}"#), "Not Found");
        assert_eq!(server_message(b"plain text"), "plain text");
        assert_eq!(server_message(b""), "(empty body)");
    }
}
