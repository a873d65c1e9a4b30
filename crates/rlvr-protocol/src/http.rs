//! A minimal HTTP/1.1 layer over `std::net::TcpStream`, shared by the server and the client:
//! one message per connection (`Connection: close`), bodies framed by `Content-Length` or
//! `Transfer-Encoding: chunked` (or, for responses, the end of the stream), and size limits on
//! heads and bodies so that no input can exhaust memory.
//!
//! Public only so that rlvr-serve's server can use it too: it is not a general HTTP library,
//! and a later change replaces it with hyper/axum.

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// Most bytes of a request/status line plus headers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What went wrong reading a message.
#[derive(Debug)]
pub enum HttpError {
    /// The peer closed the connection (or reset it) before a complete message.
    Closed,
    /// A read or write timed out.
    TimedOut,
    /// The head or body is larger than allowed.
    TooLarge(&'static str),
    /// Not HTTP/1.x as we read it.
    Malformed(String),
    /// Another I/O error.
    Io(io::Error),
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::TimedOut,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => HttpError::Closed,
            _ => HttpError::Io(e),
        }
    }
}

/// A start line and its headers (names lower-cased).
#[derive(Debug)]
pub struct Head {
    /// The request or status line.
    pub start: String,
    /// `(name, value)` pairs, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A stream whose reads and writes all end by one deadline (the socket's timeouts are set to
/// the time left before each call).
pub struct DeadlineStream {
    /// The connection.
    pub stream: TcpStream,
    /// When every read and write must be done by (`None`: no deadline).
    pub deadline: Option<Instant>,
}

impl DeadlineStream {
    fn left(&self) -> io::Result<Option<std::time::Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
                } else {
                    Ok(Some(left))
                }
            }
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.stream.set_write_timeout(Some(left))?;
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// One line ending in `\n` (the `\r\n` stripped), counted against `budget`. `Ok(None)` at a
/// clean end of stream before any byte.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Option<String>, HttpError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(HttpError::Closed)
            };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if take > *budget {
            return Err(HttpError::TooLarge("head"));
        }
        *budget -= take;
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return String::from_utf8(line)
                .map(Some)
                .map_err(|_| HttpError::Malformed("the head is not UTF-8".into()));
        }
    }
}

/// Reads a start line and headers. `Ok(None)`: the peer closed before sending anything.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Option<Head>, HttpError> {
    let mut budget = MAX_HEAD_BYTES;
    let start = loop {
        match read_line(r, &mut budget)? {
            None => return Ok(None),
            // Tolerate blank lines before a request (RFC 9112 §2.2).
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)?.ok_or(HttpError::Closed)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// How a body is framed.
fn body_framing(head: &Head) -> Result<Option<Framing>, HttpError> {
    if let Some(te) = head.header("transfer-encoding") {
        if te.to_ascii_lowercase().contains("chunked") {
            return Ok(Some(Framing::Chunked));
        }
    }
    match head.header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map(|n| Some(Framing::Length(n)))
            .map_err(|_| HttpError::Malformed(format!("bad Content-Length {v:?}"))),
        None => Ok(None),
    }
}

enum Framing {
    Length(usize),
    Chunked,
}

/// Reads a body framed by the head; without framing, `until_eof` reads to the end of the
/// stream (responses) and otherwise the body is empty (requests).
pub fn read_body<R: BufRead>(
    r: &mut R,
    head: &Head,
    limit: usize,
    until_eof: bool,
) -> Result<Vec<u8>, HttpError> {
    match body_framing(head)? {
        Some(Framing::Length(n)) => {
            if n > limit {
                return Err(HttpError::TooLarge("body"));
            }
            let mut body = vec![0u8; n];
            r.read_exact(&mut body)?;
            Ok(body)
        }
        Some(Framing::Chunked) => read_chunked(r, limit),
        None if until_eof => {
            let mut body = Vec::new();
            r.take(limit as u64 + 1).read_to_end(&mut body)?;
            if body.len() > limit {
                return Err(HttpError::TooLarge("body"));
            }
            Ok(body)
        }
        None => Ok(Vec::new()),
    }
}

fn read_chunked<R: BufRead>(r: &mut R, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD_BYTES;
    loop {
        let line = read_line(r, &mut budget)?.ok_or(HttpError::Closed)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Malformed(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, then the blank line.
            while !read_line(r, &mut budget)?
                .ok_or(HttpError::Closed)?
                .is_empty()
            {}
            return Ok(body);
        }
        if body.len() + size > limit {
            return Err(HttpError::TooLarge("body"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
        }
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Writes a complete response with a JSON body and `Connection: close`.
pub fn write_json_response<W: Write>(
    w: &mut W,
    status: u16,
    body: &[u8],
    extra_headers: &[(&str, String)],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(body);
    w.write_all(&msg)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(s: &str) -> (Head, std::io::Cursor<Vec<u8>>) {
        let mut c = std::io::Cursor::new(s.as_bytes().to_vec());
        let h = read_head(&mut c).unwrap().unwrap();
        (h, c)
    }

    #[test]
    fn reads_content_length_and_chunked_bodies() {
        let (h, mut c) = head_of("POST /x HTTP/1.1\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello!");
        assert_eq!(h.start, "POST /x HTTP/1.1");
        assert_eq!(h.header("x-a"), Some("b"));
        assert_eq!(read_body(&mut c, &h, 100, false).unwrap(), b"hello");

        let (h, mut c) = head_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!(read_body(&mut c, &h, 100, true).unwrap(), b"abcde");

        let (h, mut c) = head_of("HTTP/1.1 200 OK\r\n\r\nto the end");
        assert_eq!(read_body(&mut c, &h, 100, true).unwrap(), b"to the end");
        let (h, mut c) = head_of("HTTP/1.1 200 OK\r\n\r\nto the end");
        assert!(matches!(
            read_body(&mut c, &h, 3, true),
            Err(HttpError::TooLarge(_))
        ));
    }

    #[test]
    fn truncated_and_oversized_messages_are_errors() {
        let mut c = std::io::Cursor::new(b"POST / HTTP/1.1\r\nContent-Le".to_vec());
        assert!(matches!(read_head(&mut c), Err(HttpError::Closed)));
        let mut c = std::io::Cursor::new(Vec::new());
        assert!(read_head(&mut c).unwrap().is_none());
        let (h, mut c) = head_of("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        assert!(matches!(
            read_body(&mut c, &h, 100, false),
            Err(HttpError::Closed)
        ));
        let (h, mut c) = head_of("POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc");
        assert!(matches!(
            read_body(&mut c, &h, 100, false),
            Err(HttpError::TooLarge(_))
        ));
        let big = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        let mut c = std::io::Cursor::new(big.into_bytes());
        assert!(matches!(read_head(&mut c), Err(HttpError::TooLarge(_))));
    }
}
