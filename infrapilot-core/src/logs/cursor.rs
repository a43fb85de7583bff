//! A tiny forward-only reader over a line, shared by the nginx parsers.

/// Reads words, quoted strings and bracketed parts off the front of a line.
pub(super) struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    /// The next space-separated word.
    pub(super) fn word(&mut self) -> Option<&'a str> {
        self.rest = self.rest.trim_start_matches(' ');
        let end = self.rest.find(' ').unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at_checked(end)?;
        self.rest = rest;
        (!word.is_empty()).then_some(word)
    }

    /// The next part between `open` and `close` (e.g. `"…"` or `[…]`), without them.
    pub(super) fn delimited(&mut self, open: char, close: char) -> Option<&'a str> {
        let after = self.rest.trim_start_matches(' ').strip_prefix(open)?;
        let end = after.find(close)?;
        let inside = after.get(..end)?;
        self.rest = after.get(end + close.len_utf8()..)?;
        Some(inside)
    }
}
