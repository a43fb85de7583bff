use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::SecretHash;
use crate::values::ValueError;

/// What an [`OpaqueToken`] is for, shown as the token's prefix so that a leaked token can be
/// recognized (by secret scanners too) and a token of one kind is never accepted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A personal API token, prefix `ipat`.
    PersonalApiToken,
    /// An invitation to join an organization, prefix `ipinv`.
    Invitation,
    /// A refresh token of a login session, prefix `iprt` (see [`super::RefreshFamily`]).
    Refresh,
}

impl TokenKind {
    /// Every kind.
    pub const ALL: [TokenKind; 3] = [
        TokenKind::PersonalApiToken,
        TokenKind::Invitation,
        TokenKind::Refresh,
    ];

    /// The prefix written before the `_` of a token of this kind.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::PersonalApiToken => "ipat",
            TokenKind::Invitation => "ipinv",
            TokenKind::Refresh => "iprt",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.prefix() == prefix)
    }
}

/// A bearer secret with a public lookup id: `<prefix>_<base64url(id ‖ secret)>`.
///
/// The 16-byte id (a UUID chosen by the caller, the primary key of the row) lets the server
/// find the token's row with an ordinary index lookup; the 32-byte secret (random bytes from
/// the caller) is then checked against the stored [`SecretHash`] in constant time with
/// [`OpaqueToken::matches`]. Only the hash is ever stored. The text form is 64 base64url
/// characters after the prefix, without padding; [`OpaqueToken::parse`] accepts exactly that
/// form, so each token has a single spelling.
///
/// `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken {
    kind: TokenKind,
    id: Uuid,
    secret: [u8; 32],
}

const FIELD: &str = "token";
const BODY_LEN: usize = 16 + 32;

impl OpaqueToken {
    /// A token of `kind` with the caller's `id` and random `secret`.
    pub const fn new(kind: TokenKind, id: Uuid, secret: [u8; 32]) -> Self {
        Self { kind, id, secret }
    }

    /// Parses a token of any kind.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new(FIELD, redact(input), reason);
        let (prefix, body) = input
            .split_once('_')
            .ok_or_else(|| err("must look like <prefix>_<base64url>"))?;
        let kind = TokenKind::from_prefix(prefix)
            .ok_or_else(|| err("has an unknown prefix; expected one of ipat_, ipinv_, iprt_"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| err("is not valid base64url after the prefix"))?;
        let bytes: [u8; BODY_LEN] = bytes
            .try_into()
            .map_err(|_| err("has the wrong length after the prefix"))?;
        let (id, secret) = bytes.split_at(16);
        let mut id_bytes = [0u8; 16];
        id_bytes.copy_from_slice(id);
        let mut secret_bytes = [0u8; 32];
        secret_bytes.copy_from_slice(secret);
        Ok(Self::new(kind, Uuid::from_bytes(id_bytes), secret_bytes))
    }

    /// Parses a token and requires it to be of `kind`, so that, say, an invitation cannot be
    /// used as an API token.
    pub fn parse_as(input: &str, kind: TokenKind) -> Result<Self, ValueError> {
        let token = Self::parse(input)?;
        if token.kind != kind {
            return Err(ValueError::new(
                FIELD,
                redact(input),
                format!("must be a token with prefix {}_", kind.prefix()),
            ));
        }
        Ok(token)
    }

    /// What the token is for.
    pub const fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The public lookup id.
    pub const fn id(&self) -> Uuid {
        self.id
    }

    /// The SHA-256 hash of the secret part, the only thing the server stores.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    /// Whether this token's secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &SecretHash) -> bool {
        self.hash() == *stored
    }
}

/// Keeps the prefix of a refused token and drops the rest, so that an error message or a log
/// line never carries a secret.
fn redact(input: &str) -> &str {
    match input.split_once('_') {
        Some((prefix, _)) if prefix.len() <= 8 => prefix,
        _ => "[redacted]",
    }
}

impl fmt::Display for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut body = [0u8; BODY_LEN];
        body[..16].copy_from_slice(self.id.as_bytes());
        body[16..].copy_from_slice(&self.secret);
        write!(f, "{}_{}", self.kind.prefix(), URL_SAFE_NO_PAD.encode(body))
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaqueToken")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl FromStr for OpaqueToken {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> OpaqueToken {
        OpaqueToken::new(TokenKind::PersonalApiToken, Uuid::from_u128(7), [9u8; 32])
    }

    #[test]
    fn display_shape() {
        let text = sample().to_string();
        assert!(text.starts_with("ipat_"), "{text}");
        assert_eq!(text.len(), "ipat_".len() + 64);
        assert_eq!(text.parse::<OpaqueToken>().unwrap(), sample());
        assert!(!format!("{:?}", sample()).contains("9, 9"));
    }

    fn check(input: &str, reason: &str) {
        let err = OpaqueToken::parse(input).unwrap_err();
        assert!(err.reason().contains(reason), "{input:?}: {err}");
        assert_eq!(err.field(), "token");
        assert!(
            err.value().len() <= 10,
            "error must not echo the secret: {err}"
        );
    }

    #[test]
    fn refusals() {
        let good = sample().to_string();
        let body = &good["ipat_".len()..];
        check("nounderscore", "must look like");
        check(&format!("ghp_{body}"), "unknown prefix");
        check(&format!("ipat_{}", &body[1..]), "base64url");
        check(&format!("ipat_{}", &body[4..]), "wrong length");
        check(&format!("ipat_{body}="), "base64url");
        let err = OpaqueToken::parse_as(&good, TokenKind::Invitation).unwrap_err();
        assert!(err.reason().contains("ipinv_"), "{err}");
        assert!(OpaqueToken::parse_as(&good, TokenKind::PersonalApiToken).is_ok());
    }

    #[test]
    fn hash_is_of_the_secret_and_matches() {
        let t = sample();
        assert_eq!(t.hash(), SecretHash::of(&[9u8; 32]));
        assert!(t.matches(&t.hash()));
        let other = OpaqueToken::new(TokenKind::PersonalApiToken, Uuid::from_u128(7), [8u8; 32]);
        assert!(!other.matches(&t.hash()));
    }

    proptest! {
        #[test]
        fn round_trips(kind in 0usize..3, id in any::<u128>(), secret in any::<[u8; 32]>()) {
            let token = OpaqueToken::new(TokenKind::ALL[kind], Uuid::from_u128(id), secret);
            let parsed = OpaqueToken::parse(&token.to_string()).unwrap();
            prop_assert_eq!(parsed, token);
        }

        #[test]
        fn only_the_canonical_spelling_parses(input in "\\PC{0,80}") {
            if let Ok(token) = OpaqueToken::parse(&input) {
                prop_assert_eq!(token.to_string(), input);
            }
        }
    }
}
