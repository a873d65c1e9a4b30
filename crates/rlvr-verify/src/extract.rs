//! Finding the final answer in a completion (or in a ground truth written as a solution).

use std::sync::OnceLock;

use regex::Regex;

/// How an answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The last `\boxed{}` / `\fbox{}`.
    Boxed,
    /// GSM8K's `#### N`.
    Hashes,
    /// "The answer is …".
    AnswerIs,
    /// "Answer: …".
    AnswerColon,
    /// A final `$…$`, `\[…\]` or `\(…\)`.
    FinalMath,
    /// The last number in the text (a configurable fallback).
    LastNumber,
    /// The whole text (ground truths without markers).
    Whole,
}

impl Method {
    /// Name used in details.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Boxed => "boxed",
            Method::Hashes => "####",
            Method::AnswerIs => "the_answer_is",
            Method::AnswerColon => "answer_colon",
            Method::FinalMath => "final_math",
            Method::LastNumber => "last_number",
            Method::Whole => "whole",
        }
    }
}

/// Content of the last `\boxed{…}` or `\fbox{…}` (nested braces); `\boxed 5` takes one word.
/// `None` when there is none or its braces never close.
pub fn last_boxed(s: &str) -> Option<String> {
    let i = s.rfind("\\boxed").map(|i| (i, 6));
    let j = s.rfind("\\fbox").map(|j| (j, 5));
    let (at, len) = match (i, j) {
        (Some(a), Some(b)) => {
            if a.0 > b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    let rest = &s[at + len..];
    let trimmed = rest.trim_start();
    if let Some(body) = trimmed.strip_prefix('{') {
        let mut depth = 1usize;
        for (k, ch) in body.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(body[..k].to_string());
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    if rest.starts_with(' ') {
        let w: String = trimmed
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '$')
            .collect();
        if !w.is_empty() {
            return Some(w);
        }
    }
    None
}

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Cuts a phrase at the end of its sentence (a period followed by space or end of text, not a
/// decimal point), and strips `$` and trailing punctuation.
fn sentence(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let bytes = line.as_bytes();
    let mut end = line.len();
    for (k, &c) in bytes.iter().enumerate() {
        if c == b'.' && (k + 1 == bytes.len() || bytes[k + 1] == b' ') {
            let prev_digit = k > 0 && bytes[k - 1].is_ascii_digit();
            let next_digit = bytes.get(k + 1).is_some_and(|c| c.is_ascii_digit());
            if !(prev_digit && next_digit) {
                end = k;
                break;
            }
        }
    }
    let mut out = line[..end].trim();
    if let Some(b) = last_boxed(out) {
        return b;
    }
    out = out.trim_end_matches(['.', ',', ';', '!', ' ']);
    out.trim().to_string()
}

/// The last number of the text (`-1,234.5`, `3/4`), if any.
pub fn last_number(s: &str) -> Option<String> {
    static NUM: OnceLock<Regex> = OnceLock::new();
    let r = re(&NUM, r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?");
    r.find_iter(s).last().map(|m| m.as_str().to_string())
}

/// The final answer of a completion and how it was found. `last_number` enables the fallback.
pub fn extract_answer(s: &str, last_number_fallback: bool) -> Option<(String, Method)> {
    static ANSWER_IS: OnceLock<Regex> = OnceLock::new();
    static ANSWER_COLON: OnceLock<Regex> = OnceLock::new();
    if let Some(b) = last_boxed(s) {
        return Some((b, Method::Boxed));
    }
    if let Some(k) = s.rfind("####") {
        let rest = s[k + 4..].lines().next().unwrap_or("").trim();
        if !rest.is_empty() {
            return Some((rest.to_string(), Method::Hashes));
        }
    }
    let r = re(&ANSWER_IS, r"(?i)\banswer\s+is\s*:?\s*");
    if let Some(m) = r.find_iter(s).last() {
        let a = sentence(&s[m.end()..]);
        if !a.is_empty() {
            return Some((a, Method::AnswerIs));
        }
    }
    let r = re(&ANSWER_COLON, r"(?i)\banswer\s*:\s*");
    if let Some(m) = r.find_iter(s).last() {
        let a = sentence(&s[m.end()..]);
        if !a.is_empty() {
            return Some((a, Method::AnswerColon));
        }
    }
    if let Some(m) = final_math(s) {
        return Some((m, Method::FinalMath));
    }
    if last_number_fallback {
        if let Some(n) = last_number(s) {
            return Some((n, Method::LastNumber));
        }
    }
    None
}

/// A math span (`$…$`, `$$…$$`, `\[…\]`, `\(…\)`) ending the text (trailing punctuation
/// allowed).
pub fn final_math(s: &str) -> Option<String> {
    let t = s
        .trim_end()
        .trim_end_matches(['.', '!', ',', ';'])
        .trim_end();
    for (open, close) in [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")] {
        if let Some(body) = t.strip_suffix(close) {
            if let Some(k) = body.rfind(open) {
                let inner = body[k + open.len()..].trim();
                if !inner.is_empty() {
                    return Some(inner.to_string());
                }
            }
        }
    }
    None
}

/// The answer inside a ground-truth string: a boxed answer or `#### N` if present, else the
/// whole string.
pub fn extract_ground_truth(s: &str) -> (String, Method) {
    if let Some(b) = last_boxed(s) {
        return (b, Method::Boxed);
    }
    if let Some(k) = s.rfind("####") {
        let rest = s[k + 4..].lines().next().unwrap_or("").trim();
        if !rest.is_empty() {
            return (rest.to_string(), Method::Hashes);
        }
    }
    (s.trim().to_string(), Method::Whole)
}
