//! Prompt templates: placeholders, escapes, errors.

use rlvr_data::{Prompt, PromptTemplate, TemplateError};
use serde_json::{json, Map, Value};

fn record(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn escapes_and_placeholders() {
    let t = PromptTemplate::new("{{literal}} {q} \\boxed{{}} {n}{{").unwrap();
    let r = record(json!({"q": "Why?", "n": 2.5}));
    assert_eq!(t.render_text(&r).unwrap(), "{literal} Why? \\boxed{} 2.5{");
    assert_eq!(t.fields(), ["q", "n"]);
    assert_eq!(
        t.render(&r).unwrap(),
        Prompt::Messages(vec![
            json!({"role": "user", "content": "{literal} Why? \\boxed{} 2.5{"})
        ])
    );
    // Dotted names reach into objects; a top-level key with a dot wins.
    let t = PromptTemplate::new("{extra_info.level}/{a.b}").unwrap();
    let r = record(json!({"extra_info": {"level": 5}, "a.b": "dot", "a": {"b": "nested"}}));
    assert_eq!(t.render_text(&r).unwrap(), "5/dot");
    // No placeholders at all.
    let t = PromptTemplate::new("fixed").unwrap();
    assert_eq!(t.render_text(&Map::new()).unwrap(), "fixed");
}

#[test]
fn syntax_errors() {
    for (text, problem) in [
        ("{q", "unclosed '{'"),
        ("q}", "unmatched '}'"),
        ("\\boxed{}", "empty placeholder"),
        ("{a{b}}", "'{' inside a placeholder"),
    ] {
        let err = PromptTemplate::new(text).unwrap_err();
        assert!(
            matches!(err, TemplateError::Syntax { .. }),
            "{text}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(problem), "{text}: {msg}");
        assert!(msg.contains(&format!("{text:?}")), "{msg}");
        assert!(msg.contains("write {{ and }} for literal braces"), "{msg}");
    }
    assert!(PromptTemplate::new("ok").unwrap().with_system("{").is_err());
}

#[test]
fn missing_and_non_text_fields() {
    let t = PromptTemplate::new("{question} {missing}").unwrap();
    let err = t
        .render_text(&record(json!({"question": "q", "answer": 1})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "prompt template \"{question} {missing}\": unknown field \"missing\" (the record has: question, answer)"
    );
    let t = PromptTemplate::new("{meta}").unwrap();
    let err = t
        .render_text(&record(json!({"meta": {"x": 1}})))
        .unwrap_err();
    assert_eq!(
        err,
        TemplateError::NotText {
            template: "{meta}".into(),
            field: "meta".into(),
            found: "an object".into()
        }
    );
    // Long templates are shortened in messages.
    let long = format!("{} {{nope}}", "x".repeat(100));
    let err = PromptTemplate::new(&long)
        .unwrap()
        .render_text(&Map::new())
        .unwrap_err();
    assert!(err.to_string().contains("…"), "{err}");
    // The system message is rendered from the same record, and comes first.
    let t = PromptTemplate::new("{q}")
        .unwrap()
        .with_system("Topic: {topic}")
        .unwrap();
    let err = t.render(&record(json!({"q": "x"}))).unwrap_err();
    assert!(err.to_string().contains("unknown field \"topic\""));
    let Prompt::Messages(m) = t.render(&record(json!({"q": "x", "topic": "t"}))).unwrap() else {
        panic!()
    };
    assert_eq!(m[0], json!({"role": "system", "content": "Topic: t"}));
    assert_eq!(m[1], json!({"role": "user", "content": "x"}));
}
