use std::str::FromStr;

use super::{ValueError, string_value_serde};

/// A DNS name a proxy host answers to: RFC 1123 labels, stored in lower-case ASCII.
///
/// Internationalized names are accepted and converted to punycode (`bücher.example` becomes
/// `xn--bcher-kva.example`), so the stored form only ever contains `a-z`, `0-9`, `-`, `.` and,
/// for a wildcard, a leading `*.`. A wildcard is allowed only as the whole leftmost label.
/// Each label is 1–63 characters, the whole name at most 253. IP addresses are refused: they
/// are not names a certificate can be issued for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

const FIELD: &str = "domain";

impl Domain {
    /// Validates and normalizes `input`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new(FIELD, input, reason);
        if input.is_empty() {
            return Err(err("must not be empty"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("must not contain whitespace or control characters"));
        }
        let (wildcard, rest) = match input.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        if rest.contains('*') {
            return Err(err(
                "a wildcard is allowed only as the whole leftmost label, as in *.example.com",
            ));
        }
        if rest.ends_with('.') {
            return Err(err("must not end with a dot"));
        }
        let ascii = if rest.is_ascii() {
            rest.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(rest)
                .map_err(|_| err("is not a valid internationalized domain name"))?
        };
        if ascii.split('.').any(|l| l.starts_with("xn--")) {
            // Round-trip punycode labels so that an invalid `xn--` label is refused here and
            // not by a certificate authority later.
            let (_, result) = idna::domain_to_unicode(&ascii);
            if result.is_err() {
                return Err(err("contains an invalid punycode (xn--) label"));
            }
        }
        let max_len = if wildcard { 251 } else { 253 };
        if ascii.len() > max_len {
            return Err(err("must be at most 253 characters long"));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        for label in &labels {
            check_label(label).map_err(|reason| err(&reason))?;
        }
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err(
                "must be a name, not an IP address (the last label is numeric)",
            ));
        }
        if wildcard && labels.len() < 2 {
            return Err(err(
                "a wildcard needs at least two labels after it, as in *.example.com",
            ));
        }
        Ok(Self(if wildcard {
            format!("*.{ascii}")
        } else {
            ascii
        }))
    }

    /// The normalized ASCII form, with `*.` in front for a wildcard.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard name (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Whether `host` (a concrete name) is this name or, for a wildcard, one label below it.
    pub fn matches(&self, host: &Domain) -> bool {
        match self.0.strip_prefix("*.") {
            None => self.0 == host.0,
            Some(base) => host
                .0
                .strip_suffix(base)
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.') && label != "*"),
        }
    }
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("must not contain an empty label (two dots in a row)".into());
    }
    if label.len() > 63 {
        return Err(format!("label {label:?} is longer than 63 characters"));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "label {label:?} contains {bad:?}; only letters, digits and '-' are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} must not start or end with '-'"));
    }
    Ok(())
}

impl FromStr for Domain {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    Domain,
    "Domain",
    "A DNS name (RFC 1123, IDN accepted, optional leading *.)"
);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        match (Domain::parse(input), expected) {
            (Ok(d), Ok(want)) => assert_eq!(d.as_str(), want, "{input:?}"),
            (Err(e), Err(reason)) => {
                assert!(e.reason().contains(reason), "{input:?}: {e}");
                assert_eq!(e.field(), "domain");
                assert!(input.starts_with(e.value().trim_end_matches('…')));
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn accepts_and_normalizes() {
        check("Example.COM", Ok("example.com"));
        check("a-b.c-d.example", Ok("a-b.c-d.example"));
        check("*.example.com", Ok("*.example.com"));
        check("bücher.example", Ok("xn--bcher-kva.example"));
        check("localhost", Ok("localhost"));
        check("xn--bcher-kva.example", Ok("xn--bcher-kva.example"));
    }

    #[test]
    fn refuses_with_reasons() {
        check("", Err("must not be empty"));
        check("a..b", Err("empty label"));
        check("-a.com", Err("start or end"));
        check("a_b.com", Err("only letters"));
        check("a.*.com", Err("wildcard"));
        check("*", Err("wildcard"));
        check("*.com", Err("two labels"));
        check("*foo.com", Err("wildcard"));
        check("example.com.", Err("dot"));
        check("10.0.0.1", Err("IP address"));
        check("exa mple.com", Err("whitespace"));
        check("a;b.com", Err("only letters"));
        check("a}b.com", Err("only letters"));
        check(&format!("{}.com", "a".repeat(64)), Err("63"));
        check(&format!("{}com", "abcdefghi.".repeat(26)), Err("253"));
        check("xn--zz--.example", Err(""));
    }

    #[test]
    fn wildcard_matches_one_label() {
        let w = Domain::parse("*.example.com").unwrap();
        assert!(w.matches(&Domain::parse("a.example.com").unwrap()));
        assert!(!w.matches(&Domain::parse("a.b.example.com").unwrap()));
        assert!(!w.matches(&Domain::parse("example.com").unwrap()));
        assert!(!w.matches(&Domain::parse("aexample.com").unwrap()));
    }

    #[test]
    fn serde_goes_through_validation() {
        assert!(serde_json::from_str::<Domain>("\"a;b\"").is_err());
        let d: Domain = serde_json::from_str("\"A.example\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"a.example\"");
    }

    proptest! {
        #[test]
        fn accepted_domains_are_plain_ascii_and_idempotent(input in "\\PC{0,40}") {
            if let Ok(d) = Domain::parse(&input) {
                prop_assert!(d.as_str().bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'*'));
                prop_assert_eq!(Domain::parse(d.as_str()).unwrap(), d);
            }
        }
    }
}
