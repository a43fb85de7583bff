use std::str::FromStr;

use super::{Domain, ValueError, string_value_serde};

/// An e-mail address: a dot-atom local part and a domain with at least two labels.
///
/// Quoted local parts and IP-literal domains are refused on purpose: they are legal in
/// RFC 5322 but never needed for a login or an alert recipient, and refusing them keeps every
/// address safe to put in a mail header. The domain is normalized like [`Domain`]; the local
/// part keeps its case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

const FIELD: &str = "email";

impl Email {
    /// Validates and normalizes an address.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new(FIELD, input, reason);
        if input.len() > 254 {
            return Err(err("must be at most 254 characters long"));
        }
        let (local, domain) = input
            .rsplit_once('@')
            .ok_or_else(|| err("must contain '@', as in name@example.com"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(err("the part before '@' must be 1 to 64 characters long"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err(
                "the part before '@' must not start or end with '.' or contain '..'",
            ));
        }
        if let Some(bad) = local
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(*c)))
        {
            return Err(err(&format!("the part before '@' contains {bad:?}")));
        }
        let domain = Domain::parse(domain)
            .map_err(|e| err(&format!("the domain is invalid: {}", e.reason())))?;
        if domain.is_wildcard() || !domain.as_str().contains('.') {
            return Err(err("the domain must be a full name such as example.com"));
        }
        Ok(Self(format!("{local}@{}", domain.as_str())))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(Email, "Email", "An e-mail address");

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        match (Email::parse(input), expected) {
            (Ok(e), Ok(want)) => assert_eq!(e.as_str(), want),
            (Err(e), Err(reason)) => {
                assert!(e.reason().contains(reason), "{input:?}: {e}");
                assert_eq!(e.field(), "email");
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn emails() {
        check("Ops@Example.COM", Ok("Ops@example.com"));
        check("a.b+tag@sub.example.org", Ok("a.b+tag@sub.example.org"));
        check("no-at-sign", Err("'@'"));
        check("@example.com", Err("1 to 64"));
        check("a..b@example.com", Err("'..'"));
        check("a b@example.com", Err("contains ' '"));
        check("a\n@example.com", Err("contains"));
        check("a@localhost", Err("full name"));
        check("a@exa_mple.com", Err("domain is invalid"));
    }
}
