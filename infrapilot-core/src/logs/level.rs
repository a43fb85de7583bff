//! Log levels and their many spellings.

use serde::{Deserialize, Serialize};

/// A log line's level, normalized across formats.
///
/// Ordered by severity with [`Level::Unknown`] lowest, so `level >= Level::Warn` keeps
/// warnings and worse and drops lines whose level could not be told.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// No level could be found.
    #[default]
    Unknown,
    /// Finest-grained tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (also `notice`, postgres `LOG`).
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// Something failed.
    Error,
    /// The program cannot go on (also `critical`, `alert`, `emerg`, `panic`).
    Fatal,
}

impl Level {
    /// The lower-case name used in JSON (`"warn"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Fatal => "fatal",
        }
    }

    /// Reads a level name in any case: full names (`warning`), common abbreviations (`WRN`,
    /// `ERRO`, `crit`), syslog and nginx names (`notice`, `emerg`), Java names (`severe`,
    /// `fine`). Single letters (`E`, `W`) are accepted only when `single_letters` is set, as
    /// they are meaningful in a JSON level field but not in free text.
    pub fn from_name(name: &str, single_letters: bool) -> Option<Level> {
        let lower = name.trim().to_ascii_lowercase();
        let level = match lower.as_str() {
            "trace" | "trc" | "trac" | "finest" | "finer" => Self::Trace,
            "debug" | "dbg" | "debu" | "fine" | "verbose" | "config" => Self::Debug,
            "info" | "inf" | "information" | "informational" | "notice" | "note" | "log" => {
                Self::Info
            }
            "warn" | "warning" | "wrn" => Self::Warn,
            "error" | "err" | "erro" | "eror" | "severe" => Self::Error,
            "fatal" | "fata" | "ftl" | "critical" | "crit" | "crt" | "alert" | "emerg"
            | "emergency" | "panic" | "pani" => Self::Fatal,
            "t" | "v" if single_letters => Self::Trace,
            "d" if single_letters => Self::Debug,
            "i" | "n" if single_letters => Self::Info,
            "w" if single_letters => Self::Warn,
            "e" if single_letters => Self::Error,
            "f" | "c" if single_letters => Self::Fatal,
            _ => return None,
        };
        Some(level)
    }

    /// Reads a bunyan/pino numeric level: 10 trace, 20 debug, 30 info, 40 warn, 50 error,
    /// 60 fatal (values in between round down; other numbers are not levels).
    pub fn from_number(n: f64) -> Option<Level> {
        let level = match n {
            n if !n.is_finite() => return None,
            n if (10.0..20.0).contains(&n) => Self::Trace,
            n if (20.0..30.0).contains(&n) => Self::Debug,
            n if (30.0..40.0).contains(&n) => Self::Info,
            n if (40.0..50.0).contains(&n) => Self::Warn,
            n if (50.0..60.0).contains(&n) => Self::Error,
            n if (60.0..=100.0).contains(&n) => Self::Fatal,
            _ => return None,
        };
        Some(level)
    }

    /// Reads a syslog severity (0 emergency … 7 debug), as in a `<3>` line prefix.
    pub fn from_syslog(severity: u8) -> Option<Level> {
        let level = match severity {
            0..=2 => Self::Fatal,
            3 => Self::Error,
            4 => Self::Warn,
            5 | 6 => Self::Info,
            7 => Self::Debug,
            _ => return None,
        };
        Some(level)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let check = |name: &str, letters: bool, want: Option<Level>| {
            assert_eq!(Level::from_name(name, letters), want, "{name}");
        };
        check("WARNING", false, Some(Level::Warn));
        check("warn", false, Some(Level::Warn));
        check("ERRO", false, Some(Level::Error));
        check("crit", false, Some(Level::Fatal));
        check("notice", false, Some(Level::Info));
        check("E", false, None);
        check("E", true, Some(Level::Error));
        check("w", true, Some(Level::Warn));
        check("banana", true, None);
        assert_eq!(Level::from_number(30.0), Some(Level::Info));
        assert_eq!(Level::from_number(45.0), Some(Level::Warn));
        assert_eq!(Level::from_number(60.0), Some(Level::Fatal));
        assert_eq!(Level::from_number(5.0), None);
        assert_eq!(Level::from_number(f64::NAN), None);
        assert_eq!(Level::from_syslog(3), Some(Level::Error));
        assert!(Level::Warn > Level::Info && Level::Unknown < Level::Trace);
    }
}
