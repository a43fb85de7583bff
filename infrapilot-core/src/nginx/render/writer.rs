//! A small writer for nginx config text with indentation.
//!
//! Arguments handed to it are already validated values or text the renderer made itself;
//! [`quote`] is the one place that writes a double-quoted string.

use std::fmt::Write as _;

/// Accumulates config text.
pub(crate) struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self {
            out: String::new(),
            depth: 0,
        }
    }

    /// A comment line. Control characters are replaced so a comment stays on its line.
    pub(crate) fn comment(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.indent();
        let _ = writeln!(self.out, "# {clean}");
    }

    /// A directive: `name args;`.
    pub(crate) fn directive(&mut self, name: &str, args: &[&str]) {
        self.indent();
        self.out.push_str(name);
        for arg in args {
            self.out.push(' ');
            self.out.push_str(arg);
        }
        self.out.push_str(";\n");
    }

    /// A block: `head {`, the body, `}`.
    pub(crate) fn block(&mut self, head: &str, body: impl FnOnce(&mut Self)) {
        self.indent();
        let _ = writeln!(self.out, "{head} {{");
        self.depth += 1;
        body(self);
        self.depth -= 1;
        self.indent();
        self.out.push_str("}\n");
    }

    /// An empty line.
    pub(crate) fn blank(&mut self) {
        self.out.push('\n');
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
    }
}

/// A double-quoted nginx string. `"` and `\` are escaped; the validated types this is used
/// for hold neither, nor `$`, which nginx cannot escape.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
