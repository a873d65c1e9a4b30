//! Prompt templates: `{field}` placeholders filled from a record's fields.
//!
//! `{name}` is replaced by the record's top-level field `name` (a string as it is, a number
//! as JSON writes it); a dotted name (`{extra_info.level}`) reaches into nested objects when
//! no top-level field has that exact name. `{{` and `}}` are literal braces, so `\boxed{}`
//! is written `\boxed{{}}`. Templates are parsed when they are made, so a configuration with
//! a stray brace fails before any file is read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{kind_of, TemplateError};
use crate::example::{message, Prompt};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    text: String,
    segments: Vec<Segment>,
}

impl Parsed {
    fn new(text: &str) -> Result<Parsed, TemplateError> {
        let syntax = |position: usize, problem: &str| TemplateError::Syntax {
            template: shorten(text),
            position,
            problem: problem.to_string(),
        };
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if matches!(chars.peek(), Some((_, '{'))) => {
                    chars.next();
                    literal.push('{');
                }
                '}' if matches!(chars.peek(), Some((_, '}'))) => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((j, '{')) => return Err(syntax(j, "'{' inside a placeholder")),
                            Some((_, ch)) => name.push(ch),
                            None => return Err(syntax(i, "unclosed '{'")),
                        }
                    }
                    if name.trim().is_empty() {
                        return Err(syntax(i, "empty placeholder '{}'"));
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Field(name.trim().to_string()));
                }
                '}' => return Err(syntax(i, "unmatched '}'")),
                _ => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Parsed {
            text: text.to_string(),
            segments,
        })
    }

    fn render(&self, record: &Map<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Literal(s) => out.push_str(s),
                Segment::Field(name) => match lookup(record, name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Number(n)) => out.push_str(&n.to_string()),
                    Some(other) => {
                        return Err(TemplateError::NotText {
                            template: shorten(&self.text),
                            field: name.clone(),
                            found: kind_of(other).to_string(),
                        })
                    }
                    None => {
                        return Err(TemplateError::UnknownField {
                            template: shorten(&self.text),
                            field: name.clone(),
                            available: record.keys().cloned().collect::<Vec<_>>().join(", "),
                        })
                    }
                },
            }
        }
        Ok(out)
    }
}

/// A field by exact top-level name, else by dotted path into nested objects.
pub(crate) fn lookup<'a>(record: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(path) {
        return Some(v);
    }
    for (i, _) in path.match_indices('.') {
        if let Some(Value::Object(inner)) = record.get(&path[..i]) {
            if let Some(v) = lookup(inner, &path[i + 1..]) {
                return Some(v);
            }
        }
    }
    None
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// A user-message template with an optional system message (which may use placeholders
/// too).
///
/// In configuration (serde) it is either a string — the user template — or
/// `{ user = "...", system = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TemplateSpec", into = "TemplateSpec")]
pub struct PromptTemplate {
    user: Parsed,
    system: Option<Parsed>,
}

impl PromptTemplate {
    /// A template for the user message; fails on unbalanced or empty braces.
    pub fn new(user: &str) -> Result<PromptTemplate, TemplateError> {
        Ok(PromptTemplate {
            user: Parsed::new(user)?,
            system: None,
        })
    }

    /// Adds a system message (itself a template).
    pub fn with_system(mut self, system: &str) -> Result<PromptTemplate, TemplateError> {
        self.system = Some(Parsed::new(system)?);
        Ok(self)
    }

    /// The user template as written.
    pub fn user(&self) -> &str {
        &self.user.text
    }

    /// The system template as written, if any.
    pub fn system(&self) -> Option<&str> {
        self.system.as_ref().map(|s| s.text.as_str())
    }

    /// The field names the templates use (user first, then system), in order, repeated
    /// names once.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for parsed in std::iter::once(&self.user).chain(self.system.as_ref()) {
            for seg in &parsed.segments {
                if let Segment::Field(name) = seg {
                    if !out.contains(&name.as_str()) {
                        out.push(name);
                    }
                }
            }
        }
        out
    }

    /// The filled-in user message alone (for completion-style prompts).
    pub fn render_text(&self, record: &Map<String, Value>) -> Result<String, TemplateError> {
        self.user.render(record)
    }

    /// `Prompt::Messages`: the system message (when there is one), then the user message.
    pub fn render(&self, record: &Map<String, Value>) -> Result<Prompt, TemplateError> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.system {
            messages.push(message("system", system.render(record)?));
        }
        messages.push(message("user", self.user.render(record)?));
        Ok(Prompt::Messages(messages))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum TemplateSpec {
    User(String),
    Full {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system: Option<String>,
    },
}

impl TryFrom<TemplateSpec> for PromptTemplate {
    type Error = TemplateError;
    fn try_from(spec: TemplateSpec) -> Result<Self, TemplateError> {
        match spec {
            TemplateSpec::User(user) => PromptTemplate::new(&user),
            TemplateSpec::Full { user, system } => {
                let t = PromptTemplate::new(&user)?;
                match system {
                    Some(s) => t.with_system(&s),
                    None => Ok(t),
                }
            }
        }
    }
}

impl From<PromptTemplate> for TemplateSpec {
    fn from(t: PromptTemplate) -> TemplateSpec {
        TemplateSpec::Full {
            user: t.user.text,
            system: t.system.map(|s| s.text),
        }
    }
}
