//! `rlvr serve --port 0` as a subprocess on the tiny fixture: the address is read from stderr,
//! requests go through `rlvr_serve`'s client, and the server is killed at the end.

use std::path::Path;
use std::time::Duration;

use rlvr_conformance::{require_shared, spawn_serve};
use rlvr_serve::{
    ChatCompletionRequest, ChatMessage, ClientOptions, CompletionRequest, FinishReason,
    OpenAiClient,
};

#[test]
fn serve_answers_the_client_on_an_ephemeral_port() {
    let Some(dir) = require_shared("fixtures/tiny-qwen2") else {
        return;
    };
    let (server, url) = spawn_serve(Path::new(env!("CARGO_BIN_EXE_rlvr")), &dir);
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
