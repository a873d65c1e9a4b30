//! Incremental detokenization for stop strings: text is appended only once a window of tokens
//! decodes to complete characters (vLLM's prefix/read offsets), so each step decodes a few
//! tokens rather than the whole completion.

use rlvr_model::Tokenizer;

use crate::error::Result;

/// The decoded text of a growing token sequence.
#[derive(Debug, Default, Clone)]
pub struct IncrementalText {
    pub text: String,
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalText {
    /// Updates `text` after `ids` grew by one or more tokens; returns the byte offset in `text`
    /// where the newly appended text starts.
    pub fn update(&mut self, tok: &Tokenizer, ids: &[u32], skip_special: bool) -> Result<usize> {
        let start = self.text.len();
        let prefix = tok.decode(&ids[self.prefix_offset..self.read_offset], skip_special)?;
        let full = tok.decode(&ids[self.prefix_offset..], skip_special)?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') {
            match full.strip_prefix(prefix.as_str()) {
                Some(delta) => self.text.push_str(delta),
                // The window re-decoded differently: fall back to the whole sequence.
                None => self.text = tok.decode(ids, skip_special)?,
            }
            self.prefix_offset = self.read_offset;
            self.read_offset = ids.len();
        }
        Ok(start.min(self.text.len()))
    }
}

/// The first stop string found in `text` at or after byte `from` (moved back to a char
/// boundary) — `from` should be the start of new text minus the longest stop string's length,
/// so matches straddling the boundary are found. Returns (stop index, byte offset).
pub fn find_stop(text: &str, from: usize, stops: &[String]) -> Option<(usize, usize)> {
    let mut from = from.min(text.len());
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let hay = &text[from..];
    stops
        .iter()
        .enumerate()
        .filter_map(|(i, s)| hay.find(s.as_str()).map(|o| (i, from + o)))
        .min_by_key(|&(i, o)| (o, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_stop_takes_the_earliest_match() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop("a\n\nb END", 0, &stops), Some((1, 1)));
        assert_eq!(find_stop("abc END", 3, &stops), Some((0, 4)));
        assert_eq!(find_stop("abc END", 5, &stops), None);
        assert_eq!(find_stop("abc EN", 0, &stops), None);
        assert_eq!(find_stop("é END", 1, &stops), Some((0, 3)));
    }
}
