//! Helpers of the server tests: a raw HTTP request (to see statuses and error bodies as they
//! are sent) and the fixture model.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `request` as is and returns the status and the body parsed as JSON (`Null` if it is
/// not JSON).
pub fn raw(addr: SocketAddr, request: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("Content-Length");
    assert_eq!(body.len(), len, "body length matches Content-Length");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// `POST path` with a JSON body.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The tiny Qwen2 fixture, loaded on the CPU (None: skipped outside CI).
pub fn tiny_model() -> Option<rlvr_model::ModelDir> {
    let dir = rlvr_conformance::require_shared("fixtures/tiny-qwen2")?;
    Some(rlvr_model::ModelDir::load(&dir, &candle_core::Device::Cpu, None).unwrap())
}
