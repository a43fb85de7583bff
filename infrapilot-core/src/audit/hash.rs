//! The SHA-256 digest that links chain entries.

use std::fmt;
use std::str::FromStr;

use crate::values::ValueError;

/// A SHA-256 digest in an audit chain: an entry's hash, or the hash of the entry before it.
///
/// Written as 64 lowercase hex digits in JSON and in `Display`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The `prev_hash` of every chain's first entry (seq 1): 32 zero bytes.
    ///
    /// A constant rather than a value derived from the organization, because the organization
    /// is already part of every hashed entry.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Wraps a digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl FromStr for ChainHash {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| ValueError::new("chain hash", s, "must be 64 hex digits"))?;
        Ok(Self(bytes))
    }
}

impl serde::Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ChainHash {
    fn schema_name() -> String {
        "ChainHash".to_owned()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        hex_schema(64, "A SHA-256 digest as 64 lowercase hex digits")
    }
}

/// A JSON schema for a fixed-length hex string.
pub(crate) fn hex_schema(len: u32, description: &str) -> schemars::schema::Schema {
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::String.into()),
        metadata: Some(Box::new(schemars::schema::Metadata {
            description: Some(description.to_owned()),
            ..Default::default()
        })),
        string: Some(Box::new(schemars::schema::StringValidation {
            max_length: Some(len),
            min_length: Some(len),
            pattern: Some("^[0-9a-fA-F]*$".to_owned()),
        })),
        ..Default::default()
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = ChainHash::from_bytes([0xab; 32]);
        let text = h.to_string();
        assert_eq!(text, "ab".repeat(32));
        assert_eq!(text.parse::<ChainHash>().unwrap(), h);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<ChainHash>(&json).unwrap(), h);
        assert!("abc".parse::<ChainHash>().is_err());
        assert!("zz".repeat(32).parse::<ChainHash>().is_err());
    }
}
