//! Signed checkpoints: the control plane's signature over a chain head.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{ChainHash, ChainedEntry};
use crate::ids::OrgId;
use crate::values::ValueError;

/// The domain-separation prefix of every signed checkpoint message, so that a checkpoint
/// signature can never be mistaken for a signature the same key made for another purpose.
pub const CHECKPOINT_CONTEXT: &[u8] = b"infrapilot/audit-checkpoint/v1";

/// A signed statement "organization `org`'s chain had `seq` entries, the last one hashing to
/// `head`, at `time_us`".
///
/// Checkpoints are what make rewriting history detectable: without the signing key, an
/// attacker who rewrites entries (and recomputes every hash after them) cannot make the
/// chain agree with an earlier checkpoint. They also reveal a truncated tail. Keep at least
/// the latest checkpoint somewhere the database's writers cannot reach (the SDK or an
/// external log), since deleting checkpoints together with entries hides a truncation.
///
/// Fields are public because a checkpoint read back is only a claim: [`super::verify`]
/// checks its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The organization whose chain is vouched for.
    pub org: OrgId,
    /// The seq of the chain's head at signing time.
    pub seq: u64,
    /// The hash of the entry at `seq`.
    pub head: ChainHash,
    /// When it was signed, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// The Ed25519 signature over [`Checkpoint::message`].
    pub signature: CheckpointSignature,
}

impl Checkpoint {
    /// Signs the chain whose current head is `head`.
    pub fn sign(head: &ChainedEntry, time_us: i64, key: &SigningKey) -> Self {
        let message = Self::message(head.entry.org, head.seq, &head.hash, time_us);
        Self {
            org: head.entry.org,
            seq: head.seq,
            head: head.hash,
            time_us,
            signature: CheckpointSignature(key.sign(&message).to_bytes()),
        }
    }

    /// The exact bytes that are signed: [`CHECKPOINT_CONTEXT`], then the organization's 16
    /// UUID bytes, `seq` as a big-endian `u64`, the 32 bytes of the head hash and `time_us` as
    /// a big-endian `i64`. Every field has a fixed length, so no length prefixes are needed.
    pub fn message(org: OrgId, seq: u64, head: &ChainHash, time_us: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_CONTEXT.len() + 64);
        out.extend_from_slice(CHECKPOINT_CONTEXT);
        out.extend_from_slice(org.as_uuid().as_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&time_us.to_be_bytes());
        out
    }

    /// Whether the signature is `key`'s signature over this checkpoint's fields.
    ///
    /// Uses Ed25519's strict verification, which refuses malleable (non-canonical) signatures
    /// and weak keys.
    pub fn has_valid_signature(&self, key: &VerifyingKey) -> bool {
        let message = Self::message(self.org, self.seq, &self.head, self.time_us);
        key.verify_strict(&message, &Signature::from_bytes(&self.signature.0))
            .is_ok()
    }
}

/// A 64-byte Ed25519 signature, written as 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointSignature([u8; 64]);

impl CheckpointSignature {
    /// Wraps signature bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The signature's bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Display for CheckpointSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CheckpointSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointSignature({self})")
    }
}

impl FromStr for CheckpointSignature {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| ValueError::new("checkpoint signature", s, "must be 128 hex digits"))?;
        Ok(Self(bytes))
    }
}

impl Serialize for CheckpointSignature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CheckpointSignature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for CheckpointSignature {
    fn schema_name() -> String {
        "CheckpointSignature".to_owned()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        super::hash::hex_schema(128, "An Ed25519 signature as 128 lowercase hex digits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::append;
    use crate::audit::test_support::{entry, key, org};

    #[test]
    fn signatures_cover_every_field() {
        let head = append(None, entry(org(1), 0)).unwrap();
        let cp = Checkpoint::sign(&head, 42, &key(1));
        let good = key(1).verifying_key();
        assert!(cp.has_valid_signature(&good));
        assert!(!cp.has_valid_signature(&key(2).verifying_key()));
        let tampered = [
            Checkpoint {
                org: org(2),
                ..cp.clone()
            },
            Checkpoint {
                seq: 2,
                ..cp.clone()
            },
            Checkpoint {
                head: ChainHash::GENESIS,
                ..cp.clone()
            },
            Checkpoint {
                time_us: 43,
                ..cp.clone()
            },
        ];
        for t in tampered {
            assert!(!t.has_valid_signature(&good), "{t:?}");
        }
    }

    #[test]
    fn json_round_trip() {
        let head = append(None, entry(org(1), 0)).unwrap();
        let cp = Checkpoint::sign(&head, 42, &key(1));
        let json = serde_json::to_string(&cp).unwrap();
        let back: Checkpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cp);
        assert!(back.has_valid_signature(&key(1).verifying_key()));
        assert!("00".parse::<CheckpointSignature>().is_err());
    }
}
