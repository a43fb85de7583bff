//! The error the line parsers return.

/// Longest piece of a refused line repeated in an error, in characters.
const MAX_ECHO: usize = 200;

/// A line that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogParseError {
    /// The line is not in the format asked for.
    #[error("not a {format} line: {reason} (got {line:?})")]
    Malformed {
        /// The format that was expected (`"nginx combined"`, …).
        format: &'static str,
        /// What was missing or wrong.
        reason: &'static str,
        /// The line, shortened to 200 characters.
        line: String,
    },
}

impl LogParseError {
    pub(super) fn malformed(format: &'static str, reason: &'static str, line: &str) -> Self {
        let mut echo: String = line.chars().take(MAX_ECHO).collect();
        if line.chars().nth(MAX_ECHO).is_some() {
            echo.push('…');
        }
        Self::Malformed {
            format,
            reason,
            line: echo,
        }
    }
}
