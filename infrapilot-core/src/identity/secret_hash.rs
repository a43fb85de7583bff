use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::values::ValueError;

/// The SHA-256 hash of a secret (a refresh token, an API token, a backup code), which is what
/// the server stores instead of the secret itself.
///
/// Equality is constant-time, so comparing a presented secret's hash with a stored one does not
/// leak how many leading bytes agree. It serializes as 64 lowercase hex digits, and
/// deserialization checks that form.
#[derive(Clone, Copy)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes `secret` with SHA-256.
    pub fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// Wraps 32 bytes read back from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 hash bytes, e.g. to store in a `bytea`/`blob` column.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash as 64 lowercase hex digits, e.g. to store in a text column.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case) as written by [`SecretHash::to_hex`].
    pub fn from_hex(input: &str) -> Result<Self, ValueError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(input, &mut bytes)
            .map_err(|_| ValueError::new("secret_hash", input, "must be 64 hex digits"))?;
        Ok(Self(bytes))
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretHash {}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", self.to_hex())
    }
}

impl fmt::Display for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for SecretHash {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&raw).map_err(serde::de::Error::custom)
    }
}

/// Whether any entry of `stored` equals `candidate`, looking at every entry so the time taken
/// does not depend on which one matched. Returns the index of the match.
pub(crate) fn find_constant_time(stored: &[SecretHash], candidate: &SecretHash) -> Option<usize> {
    let mut found = None;
    for (i, hash) in stored.iter().enumerate() {
        if hash == candidate && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_matches_fips_180_2() {
        let h = SecretHash::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_and_json_round_trip() {
        let h = SecretHash::of(b"secret");
        assert_eq!(SecretHash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(h.to_hex().to_uppercase().parse::<SecretHash>().unwrap(), h);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<SecretHash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<SecretHash>("\"abcd\"").is_err());
        assert_ne!(SecretHash::of(b"other"), h);
    }

    #[test]
    fn find_reports_the_matching_index() {
        let hashes = [SecretHash::of(b"a"), SecretHash::of(b"b")];
        assert_eq!(find_constant_time(&hashes, &SecretHash::of(b"b")), Some(1));
        assert_eq!(find_constant_time(&hashes, &SecretHash::of(b"c")), None);
    }
}
