//! The client against small fake servers (std `TcpListener` threads) that fail in the ways real
//! ones do: 5xx then success, always 503, never answering, closing at once, refusing, 4xx; and
//! the batch helper's order and concurrency bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rlvr_protocol::{ClientError, ClientOptions, CompletionRequest, OpenAiClient};
use serde_json::json;

/// A fake server: `handler(attempt, stream)` runs on its own thread for each connection
/// (`attempt` counts from 1). Returns the base URL and the connection counter.
fn fake<F>(handler: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(usize, TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let c = count.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            let h = handler.clone();
            std::thread::spawn(move || h(n, s));
        }
    });
    (url, count)
}

/// Reads one request (head and Content-Length body); returns the body.
fn read_request(s: &TcpStream) -> String {
    let mut r = BufReader::new(s);
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new();
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

fn respond(mut s: &TcpStream, status: u16, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn completion_body(text: &str) -> String {
    json!({
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": null}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    })
    .to_string()
}

fn options(timeout_ms: u64, retries: u32) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(timeout_ms),
        retries,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        api_key: None,
        concurrency: 4,
    }
}

fn request(prompt: &str) -> CompletionRequest {
    CompletionRequest {
        model: "m".into(),
        prompt: prompt.into(),
        max_tokens: Some(2),
        ..Default::default()
    }
}

#[test]
fn retries_5xx_then_succeeds() {
    let (url, count) = fake(|n, s| {
        read_request(&s);
        if n <= 2 {
            respond(
                &s,
                500,
                r#"{"error": {"message": "boom", "type": "server_error"}}"#,
            );
        } else {
            respond(&s, 200, &completion_body("ok"));
        }
    });
    let c = OpenAiClient::new(&url, options(5_000, 3)).unwrap();
    let r = c.completions(&request("p")).unwrap();
    assert_eq!(r.choices[0].text, "ok");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn always_503_fails_after_the_retries_naming_the_status() {
    let (url, count) = fake(|_, s| {
        read_request(&s);
        respond(
            &s,
            503,
            r#"{"error": {"message": "the request queue is full", "type": "overloaded_error"}}"#,
        );
    });
    let c = OpenAiClient::new(&url, options(5_000, 2)).unwrap();
    let e = c.completions(&request("p")).unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.attempts(), 3);
    let msg = e.to_string();
    assert!(
        msg.contains("503") && msg.contains("the request queue is full"),
        "{msg}"
    );
    assert!(msg.contains("3 attempt"), "{msg}");
}

#[test]
fn a_silent_server_times_out_within_the_bound() {
    let (url, count) = fake(|_, s| {
        read_request(&s);
        std::thread::sleep(Duration::from_secs(30));
        drop(s);
    });
    let c = OpenAiClient::new(&url, options(300, 1)).unwrap();
    let start = Instant::now();
    let e = c.completions(&request("p")).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("timed out after 300 ms"), "{e}");
    assert_eq!(e.attempts(), 2);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // Two attempts of 300 ms and one backoff of 10 ms, with slack for a loaded machine.
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_server_that_does_not_even_read_times_out() {
    // Accepts connections and never reads nor answers: the request may fit in the socket
    // buffers, the response never comes.
    let (url, _count) = fake(|_, s| {
        std::thread::sleep(Duration::from_secs(30));
        drop(s);
    });
    let c = OpenAiClient::new(&url, options(200, 0)).unwrap();
    let start = Instant::now();
    let e = c.completions(&request(&"x".repeat(10_000))).unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn closed_connections_are_retried_then_reported() {
    let (url, count) = fake(|_, s| drop(s));
    let c = OpenAiClient::new(&url, options(5_000, 2)).unwrap();
    let e = c.completions(&request("p")).unwrap_err();
    assert!(matches!(e, ClientError::ConnectionClosed { .. }), "{e}");
    assert!(e.to_string().contains("connection closed"), "{e}");
    assert_eq!(e.attempts(), 3);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // Closing after part of the response: also a closed connection, not a parse error.
    let (url, count) = fake(|_, mut s| {
        read_request(&s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":");
    });
    let c = OpenAiClient::new(&url, options(5_000, 1)).unwrap();
    let e = c.completions(&request("p")).unwrap_err();
    assert!(matches!(e, ClientError::ConnectionClosed { .. }), "{e}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn refused_connections_are_retried_then_reported() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = OpenAiClient::new(&format!("http://127.0.0.1:{port}"), options(1_000, 2)).unwrap();
    let e = c.completions(&request("p")).unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    assert_eq!(e.attempts(), 3);
    assert!(e.to_string().contains("connection failed"), "{e}");
}

#[test]
fn client_errors_are_not_retried() {
    let (url, count) = fake(|_, s| {
        read_request(&s);
        respond(
            &s,
            400,
            r#"{"error": {"message": "`n` must be between 1 and 128", "type": "invalid_request_error", "param": "n"}}"#,
        );
    });
    let c = OpenAiClient::new(&url, options(5_000, 3)).unwrap();
    let e = c.completions(&request("p")).unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(e.to_string().contains("`n` must be between"), "{e}");

    // 429 is retried, honouring a short Retry-After.
    let (url, count) = fake(|n, mut s| {
        read_request(&s);
        if n == 1 {
            let _ = s
                .write_all(b"HTTP/1.1 429 Too Many\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n");
        } else {
            respond(&s, 200, &completion_body("later"));
        }
    });
    let c = OpenAiClient::new(&url, options(5_000, 1)).unwrap();
    assert_eq!(
        c.completions(&request("p")).unwrap().choices[0].text,
        "later"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // A 200 that is not the expected JSON: reported, not retried.
    let (url, count) = fake(|_, s| {
        read_request(&s);
        respond(&s, 200, r#"{"unexpected": true}"#);
    });
    let c = OpenAiClient::new(&url, options(5_000, 3)).unwrap();
    let e = c.completions(&request("p")).unwrap_err();
    assert!(matches!(e, ClientError::InvalidResponse { .. }), "{e}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn batches_keep_order_and_bound_concurrency() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f, p, once) = (in_flight.clone(), peak.clone(), failed_once.clone());
    let (url, count) = fake(move |_, s| {
        let body: serde_json::Value = serde_json::from_str(&read_request(&s)).unwrap();
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        f.fetch_sub(1, Ordering::SeqCst);
        if body["prompt"] == "p7" && !once.swap(true, Ordering::SeqCst) {
            // A request fails once; the client retries it.
            respond(&s, 502, "bad gateway");
        } else {
            respond(&s, 200, &completion_body(body["prompt"].as_str().unwrap()));
        }
    });
    let c = OpenAiClient::new(&url, options(5_000, 4)).unwrap();
    let reqs: Vec<_> = (0..20).map(|i| request(&format!("p{i}"))).collect();
    let out = c.completions_batch(&reqs);
    assert_eq!(out.len(), 20);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap().choices[0].text, format!("p{i}"));
    }
    assert_eq!(count.load(Ordering::SeqCst), 21);
    let peak = peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "peak concurrency {peak}");

    // One Result per request, failures included, still in order.
    let (url, _) = fake(|_, s| {
        let body: serde_json::Value = serde_json::from_str(&read_request(&s)).unwrap();
        if body["prompt"] == "bad" {
            respond(&s, 400, r#"{"error": {"message": "no"}}"#);
        } else {
            respond(&s, 200, &completion_body("fine"));
        }
    });
    let c = OpenAiClient::new(&url, options(5_000, 0)).unwrap();
    let out = c.completions_batch(&[request("a"), request("bad"), request("c")]);
    assert!(out[0].is_ok() && out[2].is_ok());
    assert_eq!(out[1].as_ref().unwrap_err().status(), Some(400));
}
