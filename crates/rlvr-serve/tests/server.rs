//! `rlvr serve` in-process on the tiny Qwen2 fixture: outputs equal the rollout engine's,
//! the chat template is applied, `n` and seeds behave, and bad requests get the right errors.

mod common;

use std::time::Duration;

use common::{post, raw, tiny_model};
use rlvr_rollout::{FinishReason as EngineFinish, Prompt, RolloutEngine, SamplingParams};
use rlvr_serve::{
    ChatCompletionRequest, ChatMessage, ClientOptions, CompletionRequest, FinishReason, OneOrMany,
    OpenAiClient, PromptInput, ServeOptions, Server, ServerHandle,
};
use serde_json::json;

fn start(options: ServeOptions) -> Option<ServerHandle> {
    let md = tiny_model()?;
    Some(
        Server::bind(md, "127.0.0.1:0", options)
            .unwrap()
            .spawn()
            .unwrap(),
    )
}

fn client(server: &ServerHandle) -> OpenAiClient {
    OpenAiClient::new(
        &server.url(),
        ClientOptions {
            timeout: Duration::from_secs(60),
            retries: 0,
            ..Default::default()
        },
    )
    .unwrap()
}

fn finish_of(f: EngineFinish) -> FinishReason {
    match f {
        EngineFinish::Length => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

#[test]
fn greedy_completions_equal_the_engine() {
    let Some(server) = start(ServeOptions::default()) else {
        return;
    };
    let md = tiny_model().unwrap();
    let engine = RolloutEngine::from_model_dir(&md);
    let texts = ["Hello world", "2 + 2 = ", "The quick brown fox"];
    let prompts: Vec<Prompt> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Prompt {
            ids: md.tokenizer.encode(t, true).unwrap(),
            key: i as u64,
        })
        .collect();
    let expected = engine
        .generate_keyed(&prompts, &SamplingParams::greedy(8))
        .unwrap();

    let c = client(&server);
    let resp = c
        .completions(&CompletionRequest {
            model: server.model_name().into(),
            prompt: PromptInput::Texts(texts.iter().map(|s| s.to_string()).collect()),
            temperature: Some(0.0),
            max_tokens: Some(8),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.object, "text_completion");
    assert_eq!(resp.model, server.model_name());
    assert!(resp.id.starts_with("cmpl-"));
    assert_eq!(resp.choices.len(), texts.len());
    for (choice, exp) in resp.choices.iter().zip(&expected.completions) {
        assert_eq!(choice.index, exp.prompt_index);
        assert_eq!(choice.text, exp.text);
        assert_eq!(choice.finish_reason, Some(finish_of(exp.finish_reason)));
    }
    let prompt_tokens: usize = prompts.iter().map(|p| p.ids.len()).sum();
    let completion_tokens: usize = expected.completions.iter().map(|c| c.tokens.len()).sum();
    assert_eq!(resp.usage.prompt_tokens, prompt_tokens);
    assert_eq!(resp.usage.completion_tokens, completion_tokens);
    assert_eq!(resp.usage.total_tokens, prompt_tokens + completion_tokens);

    // The same prompt alone, as a single string: the same greedy text.
    let one = c
        .completions(&CompletionRequest {
            model: server.model_name().into(),
            prompt: texts[0].into(),
            temperature: Some(0.0),
            max_tokens: Some(8),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(one.choices[0].text, expected.completions[0].text);

    // A stop string taken from the greedy text: the text ends before it, finish "stop".
    let full = &expected.completions[1].text;
    let chars: Vec<char> = full.chars().collect();
    assert!(
        chars.len() >= 4,
        "greedy text too short for the test: {full:?}"
    );
    let stop: String = chars[2..4].iter().collect();
    let cut = full.find(&stop).unwrap();
    let resp = c
        .completions(&CompletionRequest {
            model: server.model_name().into(),
            prompt: texts[1].into(),
            temperature: Some(0.0),
            max_tokens: Some(8),
            stop: Some(OneOrMany::Many(vec![stop.clone()])),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        resp.choices[0].text,
        full[..cut],
        "stop {stop:?} in {full:?}"
    );
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));

    // Token-id prompts are used as they are.
    let resp = c
        .completions(&CompletionRequest {
            model: server.model_name().into(),
            prompt: PromptInput::Tokens(prompts[2].ids.clone()),
            temperature: Some(0.0),
            max_tokens: Some(8),
            ..Default::default()
        })
        .unwrap();
    // Keyed 0 instead of 2, but greedy decoding does not draw.
    assert_eq!(resp.choices[0].text, expected.completions[2].text);

    let models = c.models().unwrap();
    assert_eq!(models.object, "list");
    assert_eq!(models.data[0].id, "tiny-qwen2");
    server.shutdown();
}

#[test]
fn chat_completions_use_the_chat_template() {
    let Some(server) = start(ServeOptions::default()) else {
        return;
    };
    let md = tiny_model().unwrap();
    let engine = RolloutEngine::from_model_dir(&md);
    let messages = [
        json!({"role": "system", "content": "You are terse."}),
        json!({"role": "user", "content": "What is 2 + 2?"}),
    ];
    let ids = md.tokenizer.encode_chat(&messages, true).unwrap();
    let expected = engine
        .generate(std::slice::from_ref(&ids), &SamplingParams::greedy(6))
        .unwrap();

    let resp = client(&server)
        .chat(&ChatCompletionRequest {
            model: server.model_name().into(),
            messages: vec![
                ChatMessage::new("system", "You are terse."),
                ChatMessage::user("What is 2 + 2?"),
            ],
            temperature: Some(0.0),
            max_tokens: Some(6),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.object, "chat.completion");
    assert!(resp.id.starts_with("chatcmpl-"));
    assert_eq!(resp.choices.len(), 1);
    assert_eq!(resp.choices[0].message.role, "assistant");
    assert_eq!(
        resp.choices[0].message.content,
        expected.completions[0].text
    );
    assert_eq!(
        resp.choices[0].finish_reason,
        Some(finish_of(expected.completions[0].finish_reason))
    );
    // The prompt is the rendered template, generation prompt included.
    assert_eq!(resp.usage.prompt_tokens, ids.len());
    let plain = md
        .tokenizer
        .encode("You are terse.\nWhat is 2 + 2?", true)
        .unwrap();
    assert!(ids.len() > plain.len());

    // Content given as a list of text parts, and max_completion_tokens: the same request.
    let (status, body) = post(
        server.addr(),
        "/v1/chat/completions",
        &json!({
            "model": "tiny-qwen2",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
                {"role": "user", "content": "What is 2 + 2?"}
            ],
            "temperature": 0,
            "max_completion_tokens": 6,
            "logprobs": true
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        expected.completions[0].text.as_str()
    );
}

#[test]
fn n_samples_are_seeded_and_deterministic() {
    let Some(server) = start(ServeOptions::default()) else {
        return;
    };
    let c = client(&server);
    let req = |seed: u64, n: usize, prompt: PromptInput| CompletionRequest {
        model: "tiny-qwen2".into(),
        prompt,
        n: Some(n),
        temperature: Some(1.0),
        max_tokens: Some(6),
        seed: Some(seed),
        ..Default::default()
    };
    let a = c.completions(&req(7, 3, "Once upon".into())).unwrap();
    assert_eq!(a.choices.len(), 3);
    assert_eq!(
        a.choices.iter().map(|c| c.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let texts = |r: &rlvr_serve::CompletionResponse| {
        r.choices.iter().map(|c| c.text.clone()).collect::<Vec<_>>()
    };
    // Same seed, same prompt: the same samples.
    let b = c.completions(&req(7, 3, "Once upon".into())).unwrap();
    assert_eq!(texts(&a), texts(&b));
    // The samples of one request differ from each other, and another seed changes them.
    assert!(
        a.choices[0].text != a.choices[1].text || a.choices[1].text != a.choices[2].text,
        "{:?}",
        texts(&a)
    );
    let other = c.completions(&req(8, 3, "Once upon".into())).unwrap();
    assert_ne!(texts(&a), texts(&other));
    // Two prompts × n=2: indices prompt * n + sample; the first prompt keeps its samples.
    let two = c
        .completions(&req(
            7,
            2,
            PromptInput::Texts(vec!["Once upon".into(), "Far away".into()]),
        ))
        .unwrap();
    assert_eq!(
        two.choices.iter().map(|c| c.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(texts(&two)[..2], texts(&a)[..2]);

    let chat = c
        .chat(&ChatCompletionRequest {
            model: "tiny-qwen2".into(),
            messages: vec![ChatMessage::user("hi")],
            n: Some(4),
            temperature: Some(1.0),
            max_tokens: Some(4),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(chat.choices.len(), 4);
    assert_eq!(
        chat.choices.iter().map(|c| c.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn bad_requests_get_openai_errors_naming_the_field() {
    let Some(server) = start(ServeOptions::default()) else {
        return;
    };
    let addr = server.addr();
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("/v1/completions", "{not json", 400, None),
        ("/v1/completions", "[1, 2]", 400, None),
        (
            "/v1/completions",
            r#"{"model": "tiny-qwen2"}"#,
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": {"a": 1}}"#,
            400,
            Some("prompt"),
        ),
        ("/v1/completions", r#"{"prompt": []}"#, 400, Some("prompt")),
        (
            "/v1/completions",
            r#"{"prompt": "x", "temperature": "hot"}"#,
            400,
            Some("temperature"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "temperature": -1}"#,
            400,
            Some("temperature"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "top_p": 0}"#,
            400,
            Some("top_p"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "n": 0}"#,
            400,
            Some("n"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "n": 1.5}"#,
            400,
            Some("n"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "max_tokens": -3}"#,
            400,
            Some("max_tokens"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "max_tokens": 100000}"#,
            400,
            Some("max_tokens"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "stop": [1]}"#,
            400,
            Some("stop"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "stop": ""}"#,
            400,
            Some("stop"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "seed": -1}"#,
            400,
            Some("seed"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "stream": true}"#,
            400,
            Some("stream"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": [999999]}"#,
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "model": "gpt-4"}"#,
            404,
            Some("model"),
        ),
        (
            "/v1/chat/completions",
            r#"{"prompt": "x"}"#,
            400,
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": "hi"}"#,
            400,
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"content": "hi"}]}"#,
            400,
            Some("messages[0].role"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": 5}]}"#,
            400,
            Some("messages[0].content"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "stream": "yes"}"#,
            400,
            Some("stream"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "echo": true}"#,
            400,
            Some("echo"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": []}"#,
            400,
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [5]}"#,
            400,
            Some("messages[0]"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 0}"#,
            400,
            Some("max_completion_tokens"),
        ),
        ("/v1/nothing", "{}", 404, None),
    ];
    for (path, body, status, param) in cases {
        let (got, v) = post(addr, path, body);
        assert_eq!(got, *status, "{path} {body}: {v}");
        let err = &v["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(err["type"].is_string(), "{v}");
        match param {
            Some(p) => {
                assert_eq!(err["param"], *p, "{body}: {v}");
                assert!(
                    err["message"]
                        .as_str()
                        .unwrap()
                        .contains(p.split('[').next().unwrap()),
                    "{v}"
                );
            }
            None => assert!(err["param"].is_null(), "{v}"),
        }
    }
    let (status, v) = raw(addr, "GET /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 405, "{v}");
    let (status, v) = raw(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);
    assert_eq!(v["error"]["type"], "not_found_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("/metrics"));
    let (status, _) = raw(addr, "garbage\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _) = raw(
        addr,
        "POST /v1/completions HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n",
    );
    assert_eq!(status, 413);
    // Chunked request bodies are read.
    let body = r#"{"prompt": "x", "max_tokens": 2, "temperature": 0}"#;
    let (status, v) = raw(
        addr,
        &format!(
            "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    // The client reports a 4xx at once, with the server's message.
    let c = client(&server);
    let e = c
        .completions(&CompletionRequest {
            model: "tiny-qwen2".into(),
            prompt: "x".into(),
            top_p: Some(2.0),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.attempts(), 1);
    assert!(e.to_string().contains("top_p"), "{e}");
    // Still serving.
    assert_eq!(c.models().unwrap().data.len(), 1);
}

#[test]
fn a_full_queue_answers_503() {
    let Some(server) = start(ServeOptions {
        max_queue: 1,
        ..Default::default()
    }) else {
        return;
    };
    let addr = server.addr();
    // Slow requests: many rows and tokens on the tiny model.
    let body = r#"{"prompt": "x", "n": 32, "max_tokens": 300, "temperature": 1}"#;
    let results: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| post(addr, "/v1/completions", body)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        !busy.is_empty(),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for (status, v) in &results {
        assert!(*status == 200 || *status == 503, "{status} {v}");
        if *status == 503 {
            assert_eq!(v["error"]["type"], "overloaded_error");
            assert!(v["error"]["message"].as_str().unwrap().contains("queue"));
        }
    }
    assert!(results.iter().any(|(s, _)| *s == 200));
}
