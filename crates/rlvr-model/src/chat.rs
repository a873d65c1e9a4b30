//! Chat templates rendered with minijinja, set up to match transformers' Jinja2 renderer
//! (`trim_blocks`, `lstrip_blocks`, Python string/dict methods, `raise_exception`,
//! `strftime_now`; key order preserved for `tojson`).

use minijinja::{Environment, ErrorKind, Value};
use serde_json::Map;

use crate::error::{ModelError, Result};

const NAME: &str = "chat_template";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source_name: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_name", &self.source_name)
            .finish()
    }
}

/// What a template is rendered with.
#[derive(Debug, Clone, Default)]
pub struct ChatInput<'a> {
    /// `[{"role": .., "content": ..}, ..]` (tool calls and other fields pass through).
    pub messages: &'a [serde_json::Value],
    pub add_generation_prompt: bool,
    /// Tool schemas; omitted from the context when `None`.
    pub tools: Option<&'a [serde_json::Value]>,
    pub bos_token: Option<&'a str>,
    pub eos_token: Option<&'a str>,
    /// Further variables some templates read (`date_string`, `enable_thinking`, ...).
    pub extra: Option<&'a Map<String, serde_json::Value>>,
}

impl ChatTemplate {
    /// Compiles `source`; `source_name` (usually the file it came from) is used in errors.
    pub fn new(source: impl Into<String>, source_name: impl Into<String>) -> Result<Self> {
        let source_name = source_name.into();
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| template_err(&source_name, e))?;
        env.set_syntax(syntax);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |fmt: String| -> String {
            chrono::Local::now().format(&fmt).to_string()
        });
        env.add_template_owned(NAME, source.into())
            .map_err(|e| template_err(&source_name, e))?;
        Ok(ChatTemplate { env, source_name })
    }

    /// Where the template came from.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Renders a conversation to text.
    pub fn render(&self, input: &ChatInput) -> Result<String> {
        let mut ctx = Map::new();
        if let Some(extra) = input.extra {
            for (k, v) in extra {
                ctx.insert(k.clone(), v.clone());
            }
        }
        ctx.insert(
            "messages".into(),
            serde_json::Value::Array(input.messages.to_vec()),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            input.add_generation_prompt.into(),
        );
        if let Some(tools) = input.tools {
            ctx.insert("tools".into(), serde_json::Value::Array(tools.to_vec()));
        }
        if let Some(bos) = input.bos_token {
            ctx.insert("bos_token".into(), bos.into());
        }
        if let Some(eos) = input.eos_token {
            ctx.insert("eos_token".into(), eos.into());
        }
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| template_err(&self.source_name, e))?;
        tmpl.render(Value::from(minijinja::value::Serde(
            &serde_json::Value::Object(ctx),
        )))
        .map_err(|e| template_err(&self.source_name, e))
    }
}

fn template_err(source_name: &str, e: minijinja::Error) -> ModelError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    ModelError::Template {
        source_name: source_name.to_string(),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chatml_with_trim_blocks() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\n{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
            "inline",
        )
        .unwrap();
        let msgs = vec![serde_json::json!({"role": "user", "content": "hi"})];
        let out = t
            .render(&ChatInput {
                messages: &msgs,
                add_generation_prompt: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_is_an_error_naming_the_source() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "x.jinja").unwrap();
        let err = t.render(&ChatInput::default()).unwrap_err().to_string();
        assert!(
            err.contains("x.jinja") && err.contains("no system role"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_is_reported() {
        let err = ChatTemplate::new("{% for %}", "bad.jinja")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.jinja"), "{err}");
    }
}
