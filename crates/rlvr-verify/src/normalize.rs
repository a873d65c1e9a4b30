//! String-level clean-up of an extracted answer before parsing: delimiters, spacing commands,
//! `\left`/`\right`, `\dfrac`, degrees, dollars, `\text{}` and trailing units, thousands
//! separators, decimal commas, `\frac12` shorthands.

use std::sync::OnceLock;

use regex::Regex;

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Words that may trail a number as a unit (`5 cm`, `\text{ cents}`) and are dropped.
fn is_unit_text(t: &str) -> bool {
    let t = t.trim().trim_start_matches('~').trim();
    !t.is_empty()
        && t.chars().all(|c| {
            c.is_ascii_alphabetic()
                || c == ' '
                || c == '.'
                || c == '^'
                || c.is_ascii_digit()
                || c == '/'
        })
        && t.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && t.split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
            .all(|w| !crate::expr::is_math_word(w))
}

/// Finds `\cmd{` at `i` for one of the text-like commands; returns (content start, content
/// end, end of the group after the closing brace).
fn text_group(s: &str, i: usize) -> Option<(usize, usize, usize)> {
    const CMDS: &[&str] = &[
        "\\text{",
        "\\textbf{",
        "\\textit{",
        "\\textrm{",
        "\\mathrm{",
        "\\mathbf{",
        "\\mathit{",
        "\\mbox{",
        "\\operatorname{",
        "\\boldsymbol{",
        "\\textnormal{",
    ];
    let rest = &s[i..];
    let cmd = CMDS.iter().find(|c| rest.starts_with(**c))?;
    let start = i + cmd.len();
    let mut depth = 1usize;
    for (k, ch) in s[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((start, start + k, start + k + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Replaces `\text{…}`-like groups by their content, or drops them (and everything after) when
/// they hold a unit following some math (`5.4 \text{ cents}`, `15\mbox{ cm}^2`).
pub fn strip_text_groups(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s.as_bytes()[i] == b'\\' {
            if let Some((a, z, end)) = text_group(s, i) {
                let inner = &s[a..z];
                let before = out.trim();
                if !before.is_empty() && !before.ends_with('(') && is_unit_text(inner) {
                    // a trailing unit: drop it and whatever follows (e.g. `^2`)
                    return out;
                }
                out.push_str(inner);
                i = end;
                continue;
            }
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `{x}` → `x` when the first brace closes at the very end.
fn outer_braces(t: &str) -> Option<&str> {
    let inner = t.strip_prefix('{')?.strip_suffix('}')?;
    let mut depth = 0i32;
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then_some(inner)
}

/// Whether a ground truth written in plain text reads as a number with a decimal comma (as
/// Math-Verify's expression extraction reads `1,22` and `0,111`): two decimals, or a leading
/// `0,`. `-2,1` stays the list of two roots it is in MATH.
pub fn plain_decimal_comma(s: &str) -> bool {
    static GOLD_COMMA: OnceLock<Regex> = OnceLock::new();
    re(&GOLD_COMMA, r"^[+-]?(?:0,\d+|\d+,\d{2})$").is_match(s.trim())
}

/// `\\cmd` → `\cmd` where exactly two backslashes stand before a letter.
fn undouble_commands(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut k = 0;
    let mut copied = 0;
    while k < b.len() {
        if b[k] != b'\\' {
            k += 1;
            continue;
        }
        let run = b[k..].iter().take_while(|&&c| c == b'\\').count();
        if run == 2 && b.get(k + 2).is_some_and(u8::is_ascii_alphabetic) {
            out.push_str(&s[copied..=k]);
            copied = k + 2;
        }
        k += run;
    }
    out.push_str(&s[copied..]);
    out
}

/// Normalised form of an answer. `decimal_comma` reads `3,5` as 3.5.
pub fn normalize(ans: &str, decimal_comma: bool) -> String {
    static SPACES: OnceLock<Regex> = OnceLock::new();
    static FRAC_DD: OnceLock<Regex> = OnceLock::new();
    static FRAC_D_BRACE: OnceLock<Regex> = OnceLock::new();
    static FRAC_BRACE_D: OnceLock<Regex> = OnceLock::new();
    static THOUSANDS: OnceLock<Regex> = OnceLock::new();
    static DEC_COMMA: OnceLock<Regex> = OnceLock::new();
    static UNIT_TAIL: OnceLock<Regex> = OnceLock::new();
    static DEGREES: OnceLock<Regex> = OnceLock::new();
    static CONNECTIVE: OnceLock<Regex> = OnceLock::new();

    static BRACED_COMMA: OnceLock<Regex> = OnceLock::new();
    static LAST_ROW: OnceLock<Regex> = OnceLock::new();
    let mut s = ans.trim().to_string();
    // `14{,}916` / `14 {, }916`; a row separator ending a matrix (`… \\\\ \end{pmatrix}`)
    if s.contains('{') {
        s = re(&BRACED_COMMA, r"(\d)\s*\{\s*,\s*\}\s*(\d)")
            .replace_all(&s, "$1,$2")
            .into_owned();
        s = re(&LAST_ROW, r"\\\\\s*\\end\{")
            .replace_all(&s, "\\end{")
            .into_owned();
    }
    // commands written with a doubled backslash (`\\frac`, `\\left(` of escaped text): a row
    // separator is never followed by a letter in an answer
    if s.contains("\\\\") {
        s = undouble_commands(&s);
    }
    // outer math delimiters (and quotes around an answer: `"$12$ and $13$"`)
    loop {
        let t = s.trim();
        if let Some(x) = t
            .strip_prefix("\\\"")
            .and_then(|x| x.strip_suffix("\\\""))
            .or_else(|| t.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
        {
            s = x.to_string();
            continue;
        }
        let stripped = t
            .strip_prefix("$$")
            .and_then(|x| x.strip_suffix("$$"))
            .or_else(|| t.strip_prefix('$').and_then(|x| x.strip_suffix('$')))
            .or_else(|| t.strip_prefix("\\(").and_then(|x| x.strip_suffix("\\)")))
            .or_else(|| t.strip_prefix("\\[").and_then(|x| x.strip_suffix("\\]")))
            .or_else(|| outer_braces(t));
        match stripped {
            Some(x) => s = x.to_string(),
            None => break,
        }
    }
    for (from, to) in [
        ("\\left", ""),
        ("\\right", ""),
        ("\\displaystyle", ""),
        ("{,}", ","),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\circ", ""),
        ("\\degree", ""),
        ("°", ""),
        ("\\%", "%"),
        ("\\$", ""),
        ("$", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\cfrac", "\\frac"),
        ("\\leqslant", "\\le"),
        ("\\geqslant", "\\ge"),
        ("\\infinity", "\\infty"),
        ("−", "-"),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    // protect row separators `\\` from the spacing commands below
    let rowsep = s.contains("\\\\");
    if rowsep {
        s = s.replace("\\\\", "\u{1}");
    }
    // thin spaces after commas in numbers (10,\!080); then the spacing commands
    if s.contains("\\!") {
        s = s
            .replace(",\\! ", ",")
            .replace(",\\!", ",")
            .replace("\\!", "");
    }
    for sp in ["\\,", "\\;", "\\:", "\\ ", "\\quad", "\\qquad"] {
        if s.contains(sp) {
            s = s.replace(sp, " ");
        }
    }
    if rowsep {
        s = s.replace('\u{1}', "\\\\");
    }
    // `2 or 5`, `x = 2 \text{ and } x = -3`: a list of answers (only beside numbers, so that
    // words such as `Alice and Bob` stay text)
    if s.bytes().any(|c| c.is_ascii_digit()) && (s.contains("or") || s.contains("and")) {
        s = re(
            &CONNECTIVE,
            r"\s*,?\s*(?:\\(?:text|textrm|mbox|mathrm)\{\s*(?:or|and)\s*\}|\b(?:or|and)\b)\s*",
        )
        .replace_all(&s, ", ")
        .into_owned();
    }
    s = strip_text_groups(&s);
    let s2 = re(&DEGREES, r"(?i)\s*(degrees?|deg)\s*$").replace(&s, "");
    s = s2.into_owned();
    s = re(
        &UNIT_TAIL,
        r"^(.*?[0-9}%)])\s+([a-zA-Z]{2,}[a-zA-Z\s\^0-9/.]*)$",
    )
    .replace(&s, |c: &regex::Captures| {
        if is_unit_text(&c[2]) {
            c[1].to_string()
        } else {
            c[0].to_string()
        }
    })
    .into_owned();
    s = s.trim().trim_end_matches(['.', ' ']).trim().to_string();
    // \frac12, \frac 34, \frac{1}2, \frac1{2}
    if s.contains("\\frac") {
        s = re(&FRAC_DD, r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])")
            .replace_all(&s, "\\frac{$1}{$2}")
            .into_owned();
        s = re(&FRAC_D_BRACE, r"\\frac\s*([0-9a-zA-Z])\s*\{")
            .replace_all(&s, "\\frac{$1}{")
            .into_owned();
        s = re(&FRAC_BRACE_D, r"\\frac\s*\{([^{}]*)\}\s*([0-9a-zA-Z])")
            .replace_all(&s, "\\frac{$1}{$2}")
            .into_owned();
    }
    if re(&THOUSANDS, r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$").is_match(&s) {
        s = s.replace(',', "");
    } else if decimal_comma && re(&DEC_COMMA, r"^[+-]?\d+,\d+$").is_match(&s) {
        s = s.replace(',', ".");
    }
    re(&SPACES, r"\s+").replace_all(&s, " ").trim().to_string()
}

/// The comparison key of a normalised answer: no spaces, no braces around single tokens.
pub fn key(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether a normalised answer is words rather than math (`Evelyn`, `even`, `east`): letters
/// only, with a word of four letters or more that is not a function name (`abc` stays a
/// product of variables).
pub fn is_text_answer(s: &str) -> bool {
    let t = s.trim();
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\'')
    {
        return false;
    }
    t.split(|c: char| !c.is_alphabetic())
        .any(|w| w.chars().count() >= 4 && !crate::expr::is_math_word(w))
}

/// Multiple-choice letter: `(B)`, `B)`, `\textbf{(B)}` after normalisation.
pub fn choice_letter(s: &str) -> Option<char> {
    let t = s.trim();
    let inner = t
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .or_else(|| t.strip_suffix(')'))
        .unwrap_or(t)
        .trim();
    let mut cs = inner.chars();
    let c = cs.next()?;
    (cs.next().is_none() && ('A'..='E').contains(&c)).then_some(c)
}
