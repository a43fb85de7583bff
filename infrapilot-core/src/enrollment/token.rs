//! The printable enrollment token an agent is started with.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// The first part of every token string, naming format version 1.
pub const TOKEN_PREFIX: &str = "IPT1";

/// An enrollment token as handed to an agent.
///
/// Its printable form (`Display`, [`EnrollmentToken::parse`]) is four parts joined by `.`:
///
/// ```text
/// IPT1.<CA fingerprint: 64 hex digits>.<public id: 16 hex digits>.<secret: 43 base64url characters>
/// ```
///
/// - `IPT1` names the format and its version.
/// - The SHA-256 fingerprint of the server's CA certificate (DER), the same digits
///   `openssl x509 -noout -fingerprint -sha256` prints, without colons. The agent checks the
///   server against it before it sends the secret.
/// - The public id, by which the server finds the token's record. It may appear in logs.
/// - The 32-byte secret in unpadded base64url (RFC 4648 §5).
///
/// Hex is written lowercase and read in either case; surrounding whitespace is ignored when
/// parsing. None of the alphabets contains `.`, so the token survives shells, YAML and URLs
/// unquoted. `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// The fingerprint of the server's CA certificate.
    pub ca_fingerprint: CaFingerprint,
    /// The token's public id.
    pub public_id: TokenPublicId,
    /// The token's secret.
    pub secret: TokenSecret,
}

impl EnrollmentToken {
    /// Parses the printable form; see the type's documentation.
    pub fn parse(input: &str) -> Result<Self, TokenParseError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(TokenParseError::Empty);
        }
        let parts: Vec<&str> = input.split('.').collect();
        let prefix = parts[0];
        if prefix != TOKEN_PREFIX {
            let version = prefix.strip_prefix("IPT").unwrap_or_default();
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TokenParseError::UnsupportedVersion {
                    version: shorten(version, 8),
                });
            }
            return Err(TokenParseError::NotAToken {
                start: shorten(prefix, 8),
            });
        }
        let [_, fingerprint, public_id, secret] = parts[..] else {
            return Err(TokenParseError::WrongPartCount { parts: parts.len() });
        };
        Ok(Self {
            ca_fingerprint: fingerprint.parse()?,
            public_id: public_id.parse()?,
            secret: TokenSecret::parse_base64url(secret)?,
        })
    }

    /// Whether `ca_der`, a DER-encoded certificate the server presented as its CA, is the one
    /// this token was issued for.
    pub fn ca_fingerprint_matches(&self, ca_der: &[u8]) -> bool {
        self.ca_fingerprint == CaFingerprint::of_der(ca_der)
    }
}

/// Whether `ca_der` (DER) is the CA certificate `token` was issued for; the agent calls this
/// before it sends the token's secret.
pub fn ca_fingerprint_matches(token: &EnrollmentToken, ca_der: &[u8]) -> bool {
    token.ca_fingerprint_matches(ca_der)
}

impl fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secret = URL_SAFE_NO_PAD.encode(self.secret.0);
        let result = write!(
            f,
            "{TOKEN_PREFIX}.{}.{}.{secret}",
            self.ca_fingerprint, self.public_id
        );
        secret.zeroize();
        result
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("public_id", &self.public_id)
            .field("secret", &self.secret)
            .finish()
    }
}

impl FromStr for EnrollmentToken {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for EnrollmentToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EnrollmentToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a token string was refused. The messages never repeat the secret part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenParseError {
    /// The input was empty or only whitespace.
    #[error("the enrollment token is empty")]
    Empty,
    /// The input does not start with `IPT1.`.
    #[error("not an InfraPilot enrollment token: it should start with \"IPT1.\", not {start:?}")]
    NotAToken {
        /// The first characters of the input (at most 8, up to the first `.`).
        start: String,
    },
    /// A token of another format version.
    #[error(
        "enrollment token format version {version} is not supported by this agent \
         (it reads version 1); upgrade the agent"
    )]
    UnsupportedVersion {
        /// The version number found.
        version: String,
    },
    /// Not four `.`-separated parts.
    #[error(
        "an enrollment token has 4 parts separated by '.', this one has {parts}; \
         was it cut off or pasted twice?"
    )]
    WrongPartCount {
        /// How many parts there were.
        parts: usize,
    },
    /// The CA fingerprint part is not 64 hex digits.
    #[error("the CA fingerprint must be 64 hex digits, got {value:?}")]
    InvalidFingerprint {
        /// The offending part (at most 80 characters).
        value: String,
    },
    /// The public id part is not 16 hex digits.
    #[error("the token id must be 16 hex digits, got {value:?}")]
    InvalidPublicId {
        /// The offending part (at most 80 characters).
        value: String,
    },
    /// The secret part is not 43 base64url characters encoding 32 bytes. Only its length is
    /// kept: the secret itself must not end up in a log.
    #[error(
        "the secret must be 43 base64url characters (32 bytes); the one given has \
         {length} characters or is not valid base64url"
    )]
    InvalidSecret {
        /// The length of the offending part, in characters.
        length: usize,
    },
}

/// The SHA-256 fingerprint of a CA certificate in DER form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaFingerprint([u8; 32]);

impl CaFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Wraps a fingerprint computed elsewhere.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaFingerprint({self})")
    }
}

impl FromStr for CaFingerprint {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| TokenParseError::InvalidFingerprint {
            value: shorten(s, 80),
        })?;
        Ok(Self(bytes))
    }
}

/// The public half of a token: 8 random bytes chosen by the caller, written as 16 hex
/// digits. It identifies the token's record and is safe to log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenPublicId([u8; 8]);

impl TokenPublicId {
    /// Wraps 8 bytes drawn from a cryptographic RNG by the caller.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for TokenPublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenPublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenPublicId({self})")
    }
}

impl FromStr for TokenPublicId {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 8];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| TokenParseError::InvalidPublicId {
            value: shorten(s, 80),
        })?;
        Ok(Self(bytes))
    }
}

/// The secret half of a token: 32 random bytes chosen by the caller.
///
/// Compared in constant time, wiped from memory when dropped, and left out of `Debug`.
#[derive(Clone)]
pub struct TokenSecret([u8; 32]);

impl TokenSecret {
    /// Wraps 32 bytes drawn from a cryptographic RNG by the caller.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret's bytes, to send to the server.
    pub const fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn parse_base64url(s: &str) -> Result<Self, TokenParseError> {
        let err = || TokenParseError::InvalidSecret {
            length: s.chars().count(),
        };
        if s.len() != 43 {
            return Err(err());
        }
        let mut decoded = URL_SAFE_NO_PAD.decode(s).map_err(|_| err())?;
        let secret = <[u8; 32]>::try_from(decoded.as_slice()).map(Self);
        decoded.zeroize();
        secret.map_err(|_| err())
    }
}

impl PartialEq for TokenSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenSecret {}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl Drop for TokenSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The first `max` characters of `s`, for echoing in an error.
fn shorten(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn token() -> EnrollmentToken {
        EnrollmentToken {
            ca_fingerprint: CaFingerprint::of_der(b"ca certificate"),
            public_id: TokenPublicId::from_bytes([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            secret: TokenSecret::from_bytes([0xff; 32]),
        }
    }

    fn check(input: &str, expected: Result<&EnrollmentToken, TokenParseError>) {
        assert_eq!(
            EnrollmentToken::parse(input),
            expected.cloned(),
            "{input:?}"
        );
    }

    #[test]
    fn the_printable_form() {
        let t = token();
        let text = t.to_string();
        let fp = hex::encode(Sha256::digest(b"ca certificate"));
        assert_eq!(
            text,
            format!("IPT1.{fp}.0123456789abcdef.{}", "_".repeat(42) + "8")
        );
        check(&text, Ok(&t));
        check(&format!("  {text}\n"), Ok(&t));
        check(&text.replace(&fp, &fp.to_uppercase()), Ok(&t));
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<EnrollmentToken>(&format!("\"{text}\"")).unwrap(),
            t
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let text = token().to_string();
        let parts: Vec<&str> = text.split('.').collect();
        let with = |i: usize, part: &str| {
            let mut p = parts.clone();
            p[i] = part;
            p.join(".")
        };
        check("", Err(TokenParseError::Empty));
        check(" \n", Err(TokenParseError::Empty));
        check(
            "K10abc::server:pw",
            Err(TokenParseError::NotAToken {
                start: "K10abc::".into(),
            }),
        );
        check(
            &with(0, "IPT2"),
            Err(TokenParseError::UnsupportedVersion {
                version: "2".into(),
            }),
        );
        check(
            &with(0, "ipt1"),
            Err(TokenParseError::NotAToken {
                start: "ipt1".into(),
            }),
        );
        check("IPT1", Err(TokenParseError::WrongPartCount { parts: 1 }));
        check(
            &format!("{text}.x"),
            Err(TokenParseError::WrongPartCount { parts: 5 }),
        );
        check(
            &with(1, "abc"),
            Err(TokenParseError::InvalidFingerprint {
                value: "abc".into(),
            }),
        );
        check(
            &with(2, "01234567"),
            Err(TokenParseError::InvalidPublicId {
                value: "01234567".into(),
            }),
        );
        check(
            &with(3, "short"),
            Err(TokenParseError::InvalidSecret { length: 5 }),
        );
        // Valid length, but '+' is standard base64, not base64url.
        check(
            &with(3, &"+".repeat(43)),
            Err(TokenParseError::InvalidSecret { length: 43 }),
        );
        // 43 characters whose last one carries bits past the 32nd byte.
        check(
            &with(3, &format!("{}B", "A".repeat(42))),
            Err(TokenParseError::InvalidSecret { length: 43 }),
        );
    }

    #[test]
    fn the_secret_stays_out_of_debug_and_errors() {
        let t = token();
        let secret = URL_SAFE_NO_PAD.encode([0xff; 32]);
        assert!(!format!("{t:?}").contains(&secret));
        assert!(format!("{t:?}").contains("redacted"));
        let broken = t.to_string().replace(&secret, &secret[..40]);
        let err = EnrollmentToken::parse(&broken).unwrap_err();
        assert!(!err.to_string().contains(&secret[..40]), "{err}");
    }

    #[test]
    fn the_agent_checks_the_ca_before_sending_the_secret() {
        let t = token();
        assert!(ca_fingerprint_matches(&t, b"ca certificate"));
        assert!(!ca_fingerprint_matches(&t, b"another ca certificate"));
    }

    fn arb_token() -> impl Strategy<Value = EnrollmentToken> {
        (any::<[u8; 32]>(), any::<[u8; 8]>(), any::<[u8; 32]>()).prop_map(|(fp, id, secret)| {
            EnrollmentToken {
                ca_fingerprint: CaFingerprint::from_bytes(fp),
                public_id: TokenPublicId::from_bytes(id),
                secret: TokenSecret::from_bytes(secret),
            }
        })
    }

    proptest! {
        #[test]
        fn parse_display_round_trips(t in arb_token()) {
            let text = t.to_string();
            prop_assert_eq!(EnrollmentToken::parse(&text).unwrap(), t);
            prop_assert_eq!(text.len(), 4 + 1 + 64 + 1 + 16 + 1 + 43);
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_canonical_secrets(input in "\\PC{0,140}") {
            if let Ok(t) = EnrollmentToken::parse(&input) {
                let secret = input.trim().rsplit('.').next().unwrap_or_default();
                prop_assert!(t.to_string().ends_with(secret));
            }
        }

        #[test]
        fn mangled_tokens_are_refused(t in arb_token(), cut in 1..43usize) {
            let text = t.to_string();
            prop_assert!(EnrollmentToken::parse(&text[..text.len() - cut]).is_err());
        }
    }
}
