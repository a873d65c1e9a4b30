//! Pulling the final answer out of a reference solution.

/// The text after the last `####`, trimmed, with commas removed (GSM8K's convention);
/// `None` without a `####` or when nothing follows it.
pub fn gsm8k_hash(text: &str) -> Option<String> {
    let at = text.rfind("####")?;
    let answer: String = text[at + 4..]
        .trim()
        .chars()
        .filter(|&c| c != ',')
        .collect();
    (!answer.is_empty()).then_some(answer)
}

/// The content of the last `\boxed{...}` whose braces balance (whitespace allowed between
/// `\boxed` and `{`); `None` when there is none.
pub fn last_boxed(text: &str) -> Option<String> {
    let mut found = None;
    let mut from = 0;
    while let Some(rel) = text[from..].find("\\boxed") {
        let start = from + rel + "\\boxed".len();
        from = start;
        let after = text[start..].trim_start();
        let Some(body) = after.strip_prefix('{') else {
            continue;
        };
        let mut depth = 1usize;
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        found = Some(body[..i].to_string());
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k() {
        assert_eq!(gsm8k_hash("a\n#### 1,234 ").as_deref(), Some("1234"));
        assert_eq!(gsm8k_hash("#### 1 #### -5").as_deref(), Some("-5"));
        assert_eq!(gsm8k_hash("no marker"), None);
        assert_eq!(gsm8k_hash("empty ####  "), None);
    }

    #[test]
    fn boxed() {
        assert_eq!(
            last_boxed("x \\boxed{1} y \\boxed{\\frac{1}{2}}").as_deref(),
            Some("\\frac{1}{2}")
        );
        assert_eq!(
            last_boxed("\\boxed {\\{1,2\\}}").as_deref(),
            Some("\\{1,2\\}")
        );
        // An unbalanced last one falls back to the last balanced one.
        assert_eq!(
            last_boxed("\\boxed{3} then \\boxed{4").as_deref(),
            Some("3")
        );
        assert_eq!(last_boxed("\\boxed 5"), None);
        assert_eq!(last_boxed("nothing"), None);
        assert_eq!(last_boxed("\\boxed{}").as_deref(), Some(""));
    }
}
