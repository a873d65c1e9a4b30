//! Real-world chat templates (Qwen2.5-style tools, DeepSeek-R1, Llama 3.1 JSON tools) render
//! exactly as transformers renders them: every case of `../shared/fixtures/chat-templates/cases.json`.

use rlvr_conformance::{read_json, require_shared};
use rlvr_model::{ChatInput, ChatTemplate};

#[test]
fn every_case_renders_like_transformers() {
    let Some(dir) = require_shared("fixtures/chat-templates") else {
        return;
    };
    let cases = read_json(&dir.join("cases.json"));
    let cases = cases["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 72,
        "expected the 72 reference cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let file = dir.join(case["template"].as_str().unwrap());
        let source = std::fs::read_to_string(&file).unwrap();
        let template = ChatTemplate::new(source, file.display().to_string()).unwrap();
        let messages = case["messages"].as_array().unwrap();
        let tools = case["tools"].as_array().map(Vec::as_slice);
        let input = ChatInput {
            messages,
            add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
            tools,
            bos_token: case["bos_token"].as_str(),
            eos_token: case["eos_token"].as_str(),
            extra: case["extra_context"].as_object(),
        };
        let label = format!(
            "case {i} ({}, {}, generation prompt {})",
            case["template"], case["conversation"], case["add_generation_prompt"]
        );
        match (template.render(&input), case["expected_error"].as_str()) {
            (Ok(text), None) => {
                if text != case["expected"].as_str().unwrap() {
                    failures.push(format!(
                        "{label}:\n--- got\n{text}\n--- expected\n{}",
                        case["expected"].as_str().unwrap()
                    ));
                }
            }
            (Err(e), Some(_)) => assert!(!e.to_string().is_empty()),
            (Ok(text), Some(err)) => failures.push(format!(
                "{label}: expected error {err:?}, rendered {text:?}"
            )),
            (Err(e), None) => failures.push(format!("{label}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
