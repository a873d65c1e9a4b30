//! `rlvr serve --port 0` as a subprocess on the tiny fixture: the address is read from stderr,
//! requests go through `rlvr_serve`'s client, and the server is killed at the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rlvr_conformance::require_shared;
use rlvr_serve::{
    ChatCompletionRequest, ChatMessage, ClientOptions, CompletionRequest, FinishReason,
    OpenAiClient,
};

/// Kills the server when the test ends, passed or not.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_answers_the_client_on_an_ephemeral_port() {
    let Some(dir) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlvr"))
        .env("RLVR_LOG", "warn")
        .args(["serve", "--port", "0", "--model"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Kill(child);
    // Read stderr on a thread (and keep draining it) so the wait has a timeout.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `listening on` line; stderr: {seen:?}"));
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        seen.push(line);
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the actual port is printed: {url}");

    let client = OpenAiClient::new(
        &url,
        ClientOptions {
            timeout: Duration::from_secs(60),
            retries: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let models = client.models().unwrap();
    assert_eq!(models.data[0].id, "tiny-qwen2");
    let resp = client
        .completions(&CompletionRequest {
            model: "tiny-qwen2".into(),
            prompt: "Hello".into(),
            temperature: Some(0.0),
            max_tokens: Some(4),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.choices.len(), 1);
    assert!(resp.usage.completion_tokens >= 1 && resp.usage.completion_tokens <= 4);
    if resp.usage.completion_tokens == 4 {
        assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Length));
    }
    let chat = client
        .chat(&ChatCompletionRequest {
            model: "tiny-qwen2".into(),
            messages: vec![ChatMessage::user("hi")],
            n: Some(2),
            max_tokens: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(chat.choices.len(), 2);
    drop(server);
}
