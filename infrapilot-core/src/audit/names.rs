//! The validated names an audit entry is made of: its action, and the kind and id of the
//! resource it acted on.

use std::str::FromStr;

use crate::values::{ValueError, string_value_serde};

/// The longest action name or resource kind, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The longest resource id, in characters.
pub const MAX_RESOURCE_ID_CHARS: usize = 256;

/// What was done, as a dotted name such as `proxy_host.create` or `auth.login`.
///
/// One or more segments separated by `.`; each segment starts with a lowercase ASCII letter
/// and goes on with lowercase letters, digits and `_`. At most 64 bytes. The narrow charset
/// keeps actions greppable and safe to use as metric labels or in log lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuditAction(String);

impl AuditAction {
    /// Validates an action name.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        check_dotted("audit action", input, true).map(|()| Self(input.to_owned()))
    }

    /// The action name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AuditAction {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    AuditAction,
    "AuditAction",
    "What was done, as a dotted lowercase name such as proxy_host.create"
);

/// The kind of resource an action touched, such as `proxy_host` or `agent`: one segment of
/// lowercase ASCII letters, digits and `_`, starting with a letter, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKind(String);

impl ResourceKind {
    /// Validates a resource kind.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        check_dotted("resource kind", input, false).map(|()| Self(input.to_owned()))
    }

    /// The kind.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ResourceKind {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ResourceKind,
    "ResourceKind",
    "The kind of resource an audited action touched, such as proxy_host"
);

/// The id of the resource an action touched, as text: usually a UUID, sometimes a name (a
/// container name, a domain). 1 to 256 characters, no control characters, so that an id
/// cannot forge extra lines in a rendered audit log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId(String);

impl ResourceId {
    /// Validates a resource id.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("resource id", input, reason);
        let chars = input.chars().count();
        if chars == 0 || chars > MAX_RESOURCE_ID_CHARS {
            return Err(err("must be 1 to 256 characters long"));
        }
        if input.chars().any(char::is_control) {
            return Err(err(
                "must not contain control characters (newlines, tabs, …)",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ResourceId {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ResourceId,
    "ResourceId",
    "The id of the resource an audited action touched"
);

/// Checks a dotted lowercase name; `dots_allowed` is false for a single segment.
fn check_dotted(field: &str, input: &str, dots_allowed: bool) -> Result<(), ValueError> {
    let err = |reason: String| ValueError::new(field, input, reason);
    if input.is_empty() || input.len() > MAX_NAME_LEN {
        return Err(err(format!("must be 1 to {MAX_NAME_LEN} bytes long")));
    }
    if let Some(bad) = input
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '.'))
    {
        return Err(err(format!(
            "contains {bad:?}; only lowercase letters, digits, '_' and '.' are allowed"
        )));
    }
    if !dots_allowed && input.contains('.') {
        return Err(err("must be a single word without '.'".to_owned()));
    }
    for segment in input.split('.') {
        if !segment.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(err(format!(
                "segment {segment:?} must start with a lowercase letter (no empty segments)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(input: &str, expected: Result<(), &str>) {
        match (AuditAction::parse(input), expected) {
            (Ok(action), Ok(())) => assert_eq!(action.as_str(), input),
            (Err(e), Err(reason)) => assert!(e.reason().contains(reason), "{input:?}: {e}"),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn actions() {
        check("proxy_host.create", Ok(()));
        check("auth.login", Ok(()));
        check("agent.enroll.v2", Ok(()));
        check("login", Ok(()));
        check("", Err("1 to 64"));
        check(&"a".repeat(65), Err("1 to 64"));
        check("Proxy.create", Err("'P'"));
        check("proxy host", Err("' '"));
        check("proxy..create", Err("no empty segments"));
        check(".create", Err("no empty segments"));
        check("proxy.", Err("no empty segments"));
        check("proxy.2fa", Err("must start with a lowercase letter"));
        check("a\nb", Err("'\\n'"));
    }

    #[test]
    fn resource_kinds_and_ids() {
        assert!(ResourceKind::parse("proxy_host").is_ok());
        assert!(
            ResourceKind::parse("proxy.host")
                .unwrap_err()
                .reason()
                .contains("single word")
        );
        assert!(ResourceId::parse("web-1.example.com").is_ok());
        assert!(ResourceId::parse("").is_err());
        assert!(
            ResourceId::parse("a\r\nb")
                .unwrap_err()
                .reason()
                .contains("control")
        );
        assert!(ResourceId::parse(&"é".repeat(256)).is_ok());
        assert!(ResourceId::parse(&"é".repeat(257)).is_err());
    }

    #[test]
    fn json_goes_through_validation() {
        let action: AuditAction = serde_json::from_str(r#""proxy_host.create""#).unwrap();
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#""proxy_host.create""#
        );
        assert!(serde_json::from_str::<AuditAction>(r#""DROP TABLE""#).is_err());
        assert!(serde_json::from_str::<ResourceId>(r#""a\nb""#).is_err());
    }

    proptest! {
        #[test]
        fn accepted_actions_use_the_narrow_charset(input in "\\PC{0,70}") {
            if let Ok(action) = AuditAction::parse(&input) {
                prop_assert!(action.as_str().len() <= MAX_NAME_LEN);
                prop_assert!(action.as_str().bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit() || b == b'_' || b == b'.'));
            }
        }

        #[test]
        fn generated_actions_are_accepted(input in "[a-z][a-z0-9_]{0,10}(\\.[a-z][a-z0-9_]{0,10}){0,3}") {
            let action = AuditAction::parse(&input).unwrap();
            prop_assert_eq!(action.as_str(), input.as_str());
        }
    }
}
