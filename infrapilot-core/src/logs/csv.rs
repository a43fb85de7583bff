//! CSV cells that a spreadsheet or a terminal takes as text.
//!
//! A log line is whatever a container wrote, so an export must not let it run as a formula
//! when the file is opened in a spreadsheet, nor drive the terminal it is printed in.
//! [`write_csv_cell`] writes one quoted cell: a value that begins with a character a
//! spreadsheet reads as the start of a formula (OWASP's list `= + - @`, TAB, CR, and LF, plus
//! their full-width forms `＝ ＋ － ＠`) gets a leading `'`, every `"` is doubled, and every
//! control character other than TAB (the escape that starts ANSI and OSC sequences among
//! them) is written as visible text, `\x1b`, so no byte of the cell is a control byte.

use std::fmt::Write as _;

/// Whether a spreadsheet would read a cell beginning with `c` as a formula.
fn starts_formula(c: char) -> bool {
    matches!(
        c,
        '=' | '+'
            | '-'
            | '@'
            | '\t'
            | '\r'
            | '\n'
            | '\u{FF1D}'
            | '\u{FF0B}'
            | '\u{FF0D}'
            | '\u{FF20}'
    )
}

/// Appends `value` to `out` as one quoted CSV cell (see the module docs).
pub fn write_csv_cell(out: &mut String, value: &str) {
    out.push('"');
    if value.chars().next().is_some_and(starts_formula) {
        out.push('\'');
    }
    for c in value.chars() {
        match c {
            '"' => out.push_str("\"\""),
            '\t' => out.push('\t'),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cell(value: &str) -> String {
        let mut out = String::new();
        write_csv_cell(&mut out, value);
        out
    }

    #[test]
    fn formulas_and_escapes_are_neutralised() {
        for (value, expected) in [
            ("=1+1", "\"'=1+1\""),
            ("+1", "\"'+1\""),
            ("-1", "\"'-1\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tx", "\"'\tx\""),
            ("\r=1", "\"'\\x0d=1\""),
            ("\n=1", "\"'\\x0a=1\""),
            ("＝1+1", "\"'＝1+1\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("\u{1b}[31mred\u{1b}[0m", "\"\\x1b[31mred\\x1b[0m\""),
            ("\u{1b}]0;title\u{7}", "\"\\x1b]0;title\\x07\""),
            ("\u{9b}31m", "\"\\x9b31m\""),
            ("plain", "\"plain\""),
        ] {
            assert_eq!(cell(value), expected, "{value:?}");
        }
    }

    proptest! {
        #[test]
        fn no_cell_starts_a_formula_or_holds_a_control_byte(value in any::<String>()) {
            let out = cell(&value);
            let inner = &out[1..out.len() - 1];
            prop_assert!(!inner.chars().next().is_some_and(starts_formula));
            prop_assert!(!inner.chars().any(|c| c.is_control() && c != '\t'));
            // Quotes are only ever doubled inside the cell.
            prop_assert!(!inner.replace("\"\"", "").contains('"'));
        }

        #[test]
        fn text_without_controls_comes_back(value in "[^\\p{Cc}]*") {
            let out = cell(&value);
            let inner = out[1..out.len() - 1].replace("\"\"", "\"");
            let back = if value.chars().next().is_some_and(starts_formula) {
                inner.strip_prefix('\'').map(str::to_owned)
            } else {
                Some(inner)
            };
            prop_assert_eq!(back, Some(value));
        }
    }
}
