use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ValueError, string_value_serde};

/// A label key such as `env` or `com.example.team`: 1–128 characters of letters, digits, `.`,
/// `_`, `/` and `-`, starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelKey(String);

impl LabelKey {
    /// Validates a key.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("label key", input, reason);
        if input.is_empty() || input.len() > 128 {
            return Err(err("must be 1 to 128 characters long"));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._/-".contains(*c)))
        {
            return Err(err(&format!(
                "contains {bad:?}; only letters, digits, '.', '_', '/' and '-' are allowed"
            )));
        }
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !edge_ok(input.chars().next()) || !edge_ok(input.chars().last()) {
            return Err(err("must start and end with a letter or digit"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LabelKey {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(LabelKey, "LabelKey", "A label key");

/// A label value: at most 256 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelValue(String);

impl LabelValue {
    /// Validates a value.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("label value", input, reason);
        if input.chars().count() > 256 {
            return Err(err("must be at most 256 characters long"));
        }
        if input.chars().any(char::is_control) {
            return Err(err(
                "must not contain control characters (newlines, tabs, …)",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LabelValue {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(LabelValue, "LabelValue", "A label value");

/// A set of labels, ordered by key, at most 64 of them.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(
    try_from = "BTreeMap<LabelKey, LabelValue>",
    into = "BTreeMap<LabelKey, LabelValue>"
)]
pub struct Labels(BTreeMap<LabelKey, LabelValue>);

/// The most labels one object may carry.
pub const MAX_LABELS: usize = 64;

impl Labels {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `key=value` pairs, as given on a command line (`--label env=prod`).
    pub fn parse_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, ValueError> {
        let mut labels = Self::new();
        for pair in pairs {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ValueError::new("label", pair, "must be written key=value"))?;
            labels.insert(LabelKey::parse(k)?, LabelValue::parse(v)?)?;
        }
        Ok(labels)
    }

    /// Adds or replaces a label; refuses a 65th key.
    pub fn insert(&mut self, key: LabelKey, value: LabelValue) -> Result<(), ValueError> {
        if self.0.len() >= MAX_LABELS && !self.0.contains_key(&key) {
            return Err(ValueError::new(
                "labels",
                key.as_str(),
                format!("at most {MAX_LABELS} labels are allowed"),
            ));
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&LabelValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// Whether every label in `selector` is present here with the same value.
    pub fn matches(&self, selector: &Labels) -> bool {
        selector.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }

    /// The labels in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&LabelKey, &LabelValue)> {
        self.0.iter()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These labels with `other`'s added on top (other wins on a shared key).
    pub fn merged(&self, other: &Labels) -> Result<Labels, ValueError> {
        let mut out = self.clone();
        for (k, v) in other.iter() {
            out.insert(k.clone(), v.clone())?;
        }
        Ok(out)
    }
}

impl TryFrom<BTreeMap<LabelKey, LabelValue>> for Labels {
    type Error = ValueError;

    fn try_from(map: BTreeMap<LabelKey, LabelValue>) -> Result<Self, Self::Error> {
        if map.len() > MAX_LABELS {
            return Err(ValueError::new(
                "labels",
                &format!("{} labels", map.len()),
                format!("at most {MAX_LABELS} labels are allowed"),
            ));
        }
        Ok(Self(map))
    }
}

impl From<Labels> for BTreeMap<LabelKey, LabelValue> {
    fn from(labels: Labels) -> Self {
        labels.0
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert!(LabelKey::parse("com.example/team-a").is_ok());
        assert!(
            LabelKey::parse("-a")
                .unwrap_err()
                .reason()
                .contains("start and end")
        );
        assert!(LabelKey::parse("a=b").unwrap_err().reason().contains("'='"));
        assert!(LabelKey::parse("").is_err());
        assert!(LabelValue::parse("prod eu-west").is_ok());
        assert!(
            LabelValue::parse("a\nb")
                .unwrap_err()
                .reason()
                .contains("control")
        );
    }

    #[test]
    fn pairs_selectors_and_json() {
        let host = Labels::parse_pairs(["env=prod", "team=web"]).unwrap();
        let sel = Labels::parse_pairs(["env=prod"]).unwrap();
        assert!(host.matches(&sel));
        assert!(!sel.matches(&host));
        assert_eq!(host.to_string(), "env=prod,team=web");
        let json = serde_json::to_string(&host).unwrap();
        assert_eq!(json, r#"{"env":"prod","team":"web"}"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), host);
        assert!(serde_json::from_str::<Labels>(r#"{"bad key":"x"}"#).is_err());
        assert!(Labels::parse_pairs(["novalue"]).is_err());
    }

    #[test]
    fn at_most_64() {
        let mut l = Labels::new();
        for i in 0..64 {
            l.insert(
                LabelKey::parse(&format!("k{i}")).unwrap(),
                LabelValue::parse("v").unwrap(),
            )
            .unwrap();
        }
        let e = l.insert(
            LabelKey::parse("k64").unwrap(),
            LabelValue::parse("v").unwrap(),
        );
        assert!(e.unwrap_err().reason().contains("64"));
    }
}
