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
    /// The last `<answer>…</answer>` tag's content.
    AnswerTag,
    /// A final `$…$`, `\[…\]` or `\(…\)`.
    FinalMath,
    /// The last number in the text (a configurable fallback).
    LastNumber,
    /// The whole text (ground truths without markers, a bare expression).
    Whole,
    /// A multiple-choice letter standing alone.
    Choice,
}

impl Method {
    /// Name used in details.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Boxed => "boxed",
            Method::Hashes => "####",
            Method::AnswerIs => "the_answer_is",
            Method::AnswerColon => "answer_colon",
            Method::AnswerTag => "answer_tag",
            Method::FinalMath => "final_math",
            Method::LastNumber => "last_number",
            Method::Whole => "whole",
            Method::Choice => "choice",
        }
    }
}

/// Start and command length of the last `\boxed` / `\fbox` in `s`.
fn last_box_cmd(s: &str) -> Option<(usize, usize)> {
    let i = s.rfind("\\boxed").map(|i| (i, 6));
    let j = s.rfind("\\fbox").map(|j| (j, 5));
    match (i, j) {
        (Some(a), Some(b)) => Some(if a.0 > b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The content of the box whose command starts at `at` (command length `len`) and the byte
/// where the box ends; `None` when its braces never close.
fn box_at(s: &str, at: usize, len: usize) -> Option<(String, usize)> {
    let rest = &s[at + len..];
    let trimmed = rest.trim_start();
    let skipped = rest.len() - trimmed.len();
    if let Some(body) = trimmed.strip_prefix('{') {
        let mut depth = 1usize;
        for (k, ch) in body.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((body[..k].to_string(), at + len + skipped + 1 + k + 1));
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
            let end = at + len + skipped + w.len();
            return Some((w, end));
        }
    }
    None
}

/// Content of the last `\boxed{…}` or `\fbox{…}` (nested braces); `\boxed 5` takes one word.
/// `None` when there is none or its braces never close.
pub fn last_boxed(s: &str) -> Option<String> {
    let (at, len) = last_box_cmd(s)?;
    box_at(s, at, len).map(|(b, _)| b)
}

/// Most boxes joined into one answer by [`boxed_answer`].
const MAX_JOINED_BOXES: usize = 6;

/// The last box, joined with the boxes right before it when only a connective separates
/// them (`$\boxed{2}$ and $\boxed{5}$`, `$x = \boxed{2}$ or $x = \boxed{5}$`,
/// `\boxed{1}\quad\text{and}\quad\boxed{2}`, `\boxed{1} papers and \boxed{2}` → `1, 2`), as
/// Math-Verify reads several boxed answers. At most [`MAX_JOINED_BOXES`] boxes are read, each
/// scan linear in the text.
pub fn boxed_answer(s: &str) -> Option<String> {
    static GAP: OnceLock<Regex> = OnceLock::new();
    let gap_re = re(
        &GAP,
        r"^\s*(?:,\s*(?:and|or)?|;|(?:[A-Za-z()]+\s+){0,3}(?:and|or))?\s*(?:[A-Za-z][A-Za-z0-9_{}]*\s*=\s*)?$",
    );
    let (at, len) = last_box_cmd(s)?;
    let (last, _) = box_at(s, at, len)?;
    let mut parts = vec![last];
    let mut cur = at;
    while parts.len() < MAX_JOINED_BOXES {
        let Some((pat, plen)) = last_box_cmd(&s[..cur]) else {
            break;
        };
        let Some((body, end)) = box_at(s, pat, plen) else {
            break;
        };
        if end > cur {
            break; // nested in the later box
        }
        let mut gap = s[end..cur].to_string();
        for cut in [
            "\\(", "\\)", "\\[", "\\]", "$", "\\qquad", "\\quad", "\\,", "~",
        ] {
            if gap.contains(cut) {
                gap = gap.replace(cut, " ");
            }
        }
        let gap = crate::normalize::strip_text_groups(&gap);
        if !gap_re.is_match(&gap) {
            break;
        }
        parts.push(body);
        cur = pat;
    }
    parts.reverse();
    Some(parts.join(", "))
}

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Cuts a phrase at the end of its sentence (a period followed by space or end of text, not a
/// decimal point), and strips `$` and trailing punctuation. A phrase with prose in it ("the
/// smallest $k$ is 12") gives its rightmost math span or number.
fn sentence(s: &str) -> String {
    let out = sentence_raw(s);
    if has_prose(&out) {
        if let Some((a, _)) = rightmost_math(&out, true) {
            return a;
        }
    }
    out
}

/// Whether a phrase holds words outside math (two letters or more, not a function name nor a
/// connective), i.e. is a sentence rather than an answer.
fn has_prose(s: &str) -> bool {
    let mut outside = String::with_capacity(s.len());
    // drop the math spans and LaTeX commands, keep the rest
    let mut last = 0;
    for (a, z) in math_spans(s) {
        outside.push_str(&s[last..a]);
        outside.push(' ');
        last = z;
    }
    outside.push_str(&s[last..]);
    let bytes = outside.as_bytes();
    let mut words = Vec::new();
    let mut k = 0;
    while k < bytes.len() {
        if bytes[k] == b'\\' {
            k += 1;
            while k < bytes.len() && bytes[k].is_ascii_alphabetic() {
                k += 1;
            }
            continue;
        }
        if bytes[k].is_ascii_alphabetic() {
            let st = k;
            while k < bytes.len() && bytes[k].is_ascii_alphabetic() {
                k += 1;
            }
            words.push(&outside[st..k]);
            continue;
        }
        k += 1;
    }
    words
        .iter()
        .any(|w| w.len() >= 2 && !crate::expr::is_math_word(w) && !matches!(*w, "and" | "or"))
}

/// Sentence end, `$` and trailing punctuation stripped.
fn sentence_raw(s: &str) -> String {
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

/// The last number of the text (`-1,234.5`, `12 500`, `3/4`, `.25`), if any, standing alone: not right
/// after a letter, a digit, `_`, `^` or a backslash — so `QX7B` holds no number (as in
/// Math-Verify's rules) and neither does the exponent of `x^2`.
pub fn last_number(s: &str) -> Option<String> {
    last_number_at(s).map(|(n, _)| n)
}

/// [`last_number`] and the byte where it ends.
fn last_number_at(s: &str) -> Option<(String, usize)> {
    static NUM: OnceLock<Regex> = OnceLock::new();
    // thousands separated by commas or spaces (`12 500`, as Math-Verify's plain numbers), then
    // a decimal comma that cannot be a thousands separator (`1000,99`, `2,74`, `0,111`)
    let r = re(
        &NUM,
        r"-?(?:\d{1,3}(?:[ ,]\d{3})+(?:\.\d+)?|\d+,\d{1,2}\b|0,\d+|\d{4,},\d+|\d+(?:\.\d+)?|\.\d+)(?:/\d+)?",
    );
    let b = s.as_bytes();
    r.find_iter(s)
        .filter(|m| {
            m.start() == 0 || {
                let p = b[m.start() - 1];
                !(p.is_ascii_alphanumeric() || matches!(p, b'_' | b'^' | b'\\'))
            }
        })
        .last()
        .map(|m| (m.as_str().to_string(), m.end()))
}

/// Byte ranges (delimiters included) of the math spans of `s`: `$$…$$`, `$…$` (one line, not
/// after a digit or backslash), `\(…\)` (one line: inline math), `\[…\]`. Linear: a closing delimiter that was not
/// found from some byte on is not searched again from a later byte of the same stretch.
fn math_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    // per closing delimiter ($$, \], \), $): searches from below this byte found nothing
    let mut dead = [0usize; 4];
    let mut k = 0;
    while k < b.len() {
        let rest = &b[k..];
        let (open, close, one_line, slot): (usize, &[u8], bool, usize) = if rest.starts_with(b"$$")
        {
            (2, b"$$", false, 0)
        } else if rest.starts_with(b"\\[") {
            (2, b"\\]", false, 1)
        } else if rest.starts_with(b"\\(") {
            (2, b"\\)", true, 2)
        } else if rest[0] == b'$' && (k == 0 || (b[k - 1] != b'\\' && !b[k - 1].is_ascii_digit())) {
            (1, b"$", true, 3)
        } else {
            k += 1;
            continue;
        };
        let from = k + open;
        if from < dead[slot] {
            k += open;
            continue;
        }
        let mut j = from;
        let mut found = None;
        while j + close.len() <= b.len() {
            if one_line && b[j] == b'\n' {
                break;
            }
            let escaped = close[0] == b'$' && j > 0 && b[j - 1] == b'\\';
            if &b[j..j + close.len()] == close && !escaped {
                found = Some(j);
                break;
            }
            j += 1;
        }
        match found {
            Some(z) => {
                out.push((k, z + close.len()));
                k = z + close.len();
            }
            None => {
                dead[slot] = j.max(from) + 1;
                k += open;
            }
        }
    }
    out
}

/// The rightmost of the last math span (its content) and, when `numbers`, the last
/// standalone number; with the byte where it ends.
fn rightmost_math(s: &str, numbers: bool) -> Option<(String, usize)> {
    let span = math_spans(s).into_iter().rev().find_map(|(a, z)| {
        let inner = s[a..z]
            .trim_start_matches(['$'])
            .trim_end_matches(['$'])
            .trim_start_matches("\\(")
            .trim_start_matches("\\[")
            .trim_end_matches("\\)")
            .trim_end_matches("\\]")
            .trim();
        (!inner.is_empty()).then(|| (inner.to_string(), z))
    });
    let num = if numbers { last_number_at(s) } else { None };
    match (span, num) {
        (Some(a), Some(n)) => Some(if n.1 > a.1 { n } else { a }),
        (a, n) => a.or(n),
    }
}

/// What [`extract_with`] looks for (the `math` verifier's `extraction` setting).
#[derive(Debug, Clone, Copy)]
pub struct Modes<'a> {
    /// Boxes, "the final answer is $…$", math spans.
    pub latex: bool,
    /// `#### N`, answer phrases, a bare whole response, the last number (with `last_number`).
    pub expression: bool,
    /// The last standalone number as a fallback (with `expression`).
    pub last_number: bool,
    /// Multiple-choice letters ("string" extraction), when set.
    pub choices: Option<&'a [String]>,
}

impl Modes<'static> {
    /// LaTeX and expressions (the default), with or without the last-number fallback.
    pub fn latex_and_expression(last_number: bool) -> Self {
        Modes {
            latex: true,
            expression: true,
            last_number,
            choices: None,
        }
    }
}

/// The final answer of a completion and how it was found, with the default modes (LaTeX and
/// expressions); `last_number` enables the fallback. See [`extract_with`].
pub fn extract_answer(s: &str, last_number_fallback: bool) -> Option<(String, Method)> {
    extract_with(s, &Modes::latex_and_expression(last_number_fallback))
}

/// The final answer of a completion and how it was found.
///
/// After a reasoning block (`…</think>`) only the text after it is searched when it holds an
/// answer. In order: Minerva's "The final answer is $…$" when it comes after the last box;
/// the last `\boxed{}` (with the boxes joined to it by `and`/`or`/`,`, or in the same math
/// span); the last `<answer>…</answer>`; GSM8K's `#### N`; "the answer is …", "Answer: …";
/// a whole response that is one bare expression (`\frac{10}{9}`); the rightmost of the last
/// math span and (with the fallback) the last standalone number; a choice letter.
pub fn extract_with(s: &str, m: &Modes<'_>) -> Option<(String, Method)> {
    if let Some(k) = s.rfind("</think>") {
        if let Some(a) = extract_in(&s[k + "</think>".len()..], m) {
            return Some(a);
        }
    }
    extract_in(s, m)
}

fn extract_in(s: &str, m: &Modes<'_>) -> Option<(String, Method)> {
    if m.latex {
        if let Some(a) = final_answer_after_box(s) {
            return Some((a, Method::AnswerIs));
        }
        if let Some(b) = boxed_answer(s) {
            return Some((b, Method::Boxed));
        }
    }
    if let Some(k) = s.rfind("<answer>") {
        let rest = &s[k + "<answer>".len()..];
        let inner = rest.find("</answer>").map_or(rest, |z| &rest[..z]).trim();
        if !inner.is_empty() {
            return Some((inner.to_string(), Method::AnswerTag));
        }
    }
    if m.expression {
        if let Some(k) = s.rfind("####") {
            let rest = s[k + 4..].lines().next().unwrap_or("").trim();
            if !rest.is_empty() {
                return Some((rest.to_string(), Method::Hashes));
            }
        }
    }
    if m.latex || m.expression {
        if let Some(a) = answer_phrase(s) {
            return Some(a);
        }
        if let Some(a) = span_or_number(s, m) {
            return Some(a);
        }
    }
    let choices = m.choices?;
    if let Some((a, how)) = answer_phrase(s) {
        if crate::normalize::choice_letter(&a).is_some() {
            return Some((a, how));
        }
    }
    last_choice(s, choices).map(|c| (c, Method::Choice))
}

/// "the answer is …" or "Answer: …" (the last of each, in that order).
fn answer_phrase(s: &str) -> Option<(String, Method)> {
    static ANSWER_IS: OnceLock<Regex> = OnceLock::new();
    static ANSWER_COLON: OnceLock<Regex> = OnceLock::new();
    let r = re(&ANSWER_IS, r"(?i)\banswer\s+is\s*:?\s*\**\s*");
    if let Some(m) = r.find_iter(s).last() {
        let a = sentence(&s[m.end()..]);
        if !a.is_empty() {
            return Some((a, Method::AnswerIs));
        }
    }
    let r = re(&ANSWER_COLON, r"(?i)\banswer\s*\**\s*:\s*\**\s*");
    if let Some(m) = r.find_iter(s).last() {
        let a = sentence(&s[m.end()..]);
        if !a.is_empty() {
            return Some((a, Method::AnswerColon));
        }
    }
    None
}

/// Minerva's closing "The final answer is $X$" when it follows the last box (the answer the
/// model settled on last, as Math-Verify's priorities read it).
fn final_answer_after_box(s: &str) -> Option<String> {
    static FINAL: OnceLock<Regex> = OnceLock::new();
    let (at, _) = last_box_cmd(s)?;
    let r = re(&FINAL, r"(?i)final answer is\s*:?\s*");
    let m = r.find_iter(&s[at..]).last()?;
    let a = sentence(&s[at + m.end()..]);
    (!a.is_empty()).then_some(a)
}

/// The whole response when it is one bare expression (one line, no math span, no prose),
/// else the rightmost of the last math span (LaTeX) and the last standalone number
/// (expressions, with the fallback).
fn span_or_number(s: &str, m: &Modes<'_>) -> Option<(String, Method)> {
    let t = s.trim();
    let bare = m.latex
        && !t.is_empty()
        && t.len() <= 200
        && !t.contains('\n')
        && !has_prose(t)
        && math_spans(t).is_empty()
        && t.bytes().any(|c| c.is_ascii_digit() || c == b'\\');
    if bare {
        return Some((t.to_string(), Method::Whole));
    }
    let span = if m.latex {
        rightmost_math(s, false)
    } else {
        None
    };
    let num = if m.expression && m.last_number {
        last_number_at(s)
    } else {
        None
    };
    match (span, num) {
        (Some((_, a)), Some((n, z))) if z > a => Some((n, Method::LastNumber)),
        (Some((m, _)), _) => Some((m, Method::FinalMath)),
        (None, Some((n, _))) => Some((n, Method::LastNumber)),
        (None, None) => None,
    }
}

/// The rightmost choice letter standing alone: `(B)`, `**B**`, `\textbf{B}`, or a lone `B`
/// ending the response.
fn last_choice(s: &str, choices: &[String]) -> Option<String> {
    let mut best: Option<(usize, &String)> = None;
    for c in choices {
        for form in [
            format!("({c})"),
            format!("**{c}**"),
            format!("\\textbf{{{c}}}"),
        ] {
            if let Some(k) = s.rfind(&form) {
                if best.is_none_or(|(b, _)| k > b) {
                    best = Some((k, c));
                }
            }
        }
        let t = s.trim_end().trim_end_matches(['.', '!', ')', '*']);
        if let Some(head) = t.strip_suffix(c.as_str()) {
            let alone = head
                .chars()
                .next_back()
                .is_none_or(|p| !p.is_alphanumeric());
            if alone && best.is_none_or(|(b, _)| head.len() > b) {
                best = Some((head.len(), c));
            }
        }
    }
    best.map(|(_, c)| c.clone())
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

/// The answer inside a ground-truth string, read as Math-Verify reads a gold (with the same
/// extraction as a response): its boxes (joined as in [`boxed_answer`]) or `#### N` if
/// present; else the whole string when it is an answer rather than prose; else the answer a
/// written-out solution states ("… The final answer is $28\%$."), falling back to the whole.
pub fn extract_ground_truth(s: &str) -> (String, Method) {
    if let Some(b) = boxed_answer(s) {
        return (b, Method::Boxed);
    }
    if let Some(k) = s.rfind("####") {
        let rest = s[k + 4..].lines().next().unwrap_or("").trim();
        if !rest.is_empty() {
            return (rest.to_string(), Method::Hashes);
        }
    }
    let t = s.trim();
    if has_prose(t) {
        if let Some(a) = extract_answer(t, false) {
            return a;
        }
    }
    (t.to_string(), Method::Whole)
}
