//! Getting the program out of a completion.
//!
//! 1. [`strip_preamble`] drops chat-template debris and reasoning: text up to the last
//!    `<|im_start|>assistant` line, anything from the first end-of-turn token
//!    (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`) on, and a `<think>…</think>` block (text
//!    up to the last `</think>`; an unclosed `<think>` means the reasoning never finished, so
//!    only the text before it is kept).
//! 2. [`fenced_blocks`] finds Markdown code fences (```` ``` ```` or `~~~`, three or more, up to
//!    three spaces of indentation, closed by a fence of the same character at least as long;
//!    an unclosed fence runs to the end of the text).
//! 3. Only Python blocks count: info string `python`, `py`, `python3`, `py3` (any case,
//!    anything after the first word ignored) or none. Blocks tagged with another language
//!    (`text`, `bash`, `json`…) are ignored.
//! 4. [`Strategy`] picks the code: the `last` Python block (default), the `first`, `all` of
//!    them joined by blank lines, or the `raw` text. When the text has no fence at all the raw
//!    text is used if [`ExtractConfig::fallback_raw`] (default true); when it has fences but no
//!    Python one, nothing is extracted.
//!
//! The raw text keeps its leading indentation: a HumanEval completion is often the body of the
//! function the prompt opened.

use serde::{Deserialize, Serialize};

/// Which fenced block(s) become the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The last Python block (default: models tend to refine their answer).
    #[default]
    Last,
    /// The first Python block.
    First,
    /// Every Python block, in order, separated by a blank line.
    All,
    /// The whole (preamble-stripped) text, fences ignored.
    Raw,
}

/// Extraction settings (`extract` in the verifier's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Which block(s) to use (default `last`).
    pub strategy: Strategy,
    /// Use the whole text when it holds no code fence at all (default true).
    pub fallback_raw: bool,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            strategy: Strategy::Last,
            fallback_raw: true,
        }
    }
}

/// How the code was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// From fenced block(s).
    Fenced,
    /// The raw text (strategy `raw`, or no fence with `fallback_raw`).
    Raw,
}

/// Extracted code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The program text.
    pub code: String,
    /// Where it came from.
    pub source: Source,
    /// Number of Python fenced blocks in the text.
    pub python_blocks: usize,
}

/// One fenced block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The first word of the info string, lowercased (empty when untagged).
    pub lang: String,
    /// The block's content (the fence's own indentation removed from each line).
    pub code: String,
    /// Whether a closing fence was found.
    pub closed: bool,
}

impl Block {
    /// Whether the block is Python (tagged `python`/`py`/`python3`/`py3`, or untagged).
    pub fn is_python(&self) -> bool {
        matches!(self.lang.as_str(), "" | "python" | "py" | "python3" | "py3")
    }
}

const END_TOKENS: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>"];

/// Drops chat-template debris and a reasoning block (see the module docs).
pub fn strip_preamble(text: &str) -> &str {
    let mut t = text;
    if let Some(i) = t.rfind("<|im_start|>assistant") {
        let rest = &t[i + "<|im_start|>assistant".len()..];
        t = match rest.find('\n') {
            Some(nl) => &rest[nl + 1..],
            None => "",
        };
    }
    if let Some(end) = END_TOKENS.iter().filter_map(|tok| t.find(tok)).min() {
        t = &t[..end];
    }
    if let Some(i) = t.rfind("</think>") {
        t = &t[i + "</think>".len()..];
    } else if let Some(i) = t.find("<think>") {
        t = &t[..i];
    }
    t
}

/// Opening fence of a line: (indentation, fence char, fence length, info string).
fn open_fence(line: &str) -> Option<(usize, char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.len() - rest.trim_start_matches(ch).len();
    if len < 3 {
        return None;
    }
    let info = rest[len..].trim();
    if ch == '`' && info.contains('`') {
        return None; // inline code such as ```x```
    }
    Some((indent, ch, len, info))
}

fn is_close_fence(line: &str, ch: char, len: usize) -> bool {
    let t = line.trim();
    let indent = line.len() - line.trim_start_matches(' ').len();
    indent <= 3 && t.len() >= len && t.chars().all(|c| c == ch)
}

fn dedent(line: &str, n: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(n)..]
}

/// Every fenced block of `text`, in order.
pub fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let Some((indent, ch, len, info)) = open_fence(line.trim_end_matches(['\n', '\r'])) else {
            continue;
        };
        let lang = info
            .split(|c: char| c.is_whitespace() || c == '{' || c == ',')
            .next()
            .unwrap_or("")
            .to_lowercase();
        let mut code = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if is_close_fence(l.trim_end_matches(['\n', '\r']), ch, len) {
                closed = true;
                break;
            }
            code.push_str(dedent(l, indent));
        }
        // The line break before the closing fence belongs to the fence.
        if code.ends_with('\n') {
            code.pop();
            if code.ends_with('\r') {
                code.pop();
            }
        }
        blocks.push(Block { lang, code, closed });
    }
    blocks
}

/// The code of a completion per `cfg`, after [`strip_preamble`]; `None` when nothing (or only
/// whitespace) was found.
pub fn extract_code(response: &str, cfg: &ExtractConfig) -> Option<Extracted> {
    let text = strip_preamble(response);
    let blocks = fenced_blocks(text);
    let python: Vec<&Block> = blocks.iter().filter(|b| b.is_python()).collect();
    let raw = || Extracted {
        code: text.trim_end().to_string(),
        source: Source::Raw,
        python_blocks: python.len(),
    };
    let found = if cfg.strategy == Strategy::Raw || (blocks.is_empty() && cfg.fallback_raw) {
        raw()
    } else {
        let code = match cfg.strategy {
            Strategy::First => python.first().map(|b| b.code.clone()),
            Strategy::All if !python.is_empty() => Some(
                python
                    .iter()
                    .map(|b| b.code.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            ),
            _ => python.last().map(|b| b.code.clone()),
        }?;
        Extracted {
            code,
            source: Source::Fenced,
            python_blocks: python.len(),
        }
    };
    if found.code.trim().is_empty() {
        None
    } else {
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble() {
        assert_eq!(strip_preamble("<think>a ``` b</think>\nX"), "\nX");
        assert_eq!(strip_preamble("reasoning</think>X<|im_end|>junk"), "X");
        assert_eq!(strip_preamble("A<think>never finished"), "A");
        assert_eq!(
            strip_preamble("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nX<|im_end|>"),
            "X"
        );
    }

    #[test]
    fn fences() {
        let b =
            fenced_blocks("x\n  ```Python title=a\n  a = 1\n    b\n  ```\n~~~\nc\n~~~~\n````py\nd");
        assert_eq!(b.len(), 3);
        assert_eq!(
            (b[0].lang.as_str(), b[0].code.as_str()),
            ("python", "a = 1\n  b")
        );
        assert_eq!((b[1].lang.as_str(), b[1].code.as_str()), ("", "c"));
        assert_eq!((b[2].code.as_str(), b[2].closed), ("d", false));
    }
}
