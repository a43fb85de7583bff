use std::fmt;
use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::ids::{OrgId, UserId};
use crate::rbac::{Effective, OrgRole};
use crate::values::ValueError;

/// How far past `exp` (and how far before `iat`) a token is still accepted, in seconds, to
/// absorb clock skew between server replicas.
pub const JWT_LEEWAY_SECS: i64 = 30;

/// The recommended lifetime of an access token, in seconds (15 minutes). Short, because an
/// access token cannot be revoked before it expires; the refresh token family is what a
/// logout revokes.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;

/// Longest token [`verify`] looks at, in bytes; longer input is malformed without parsing.
pub const JWT_MAX_LEN: usize = 8 * 1024;

/// The fixed header of every token this module issues: `{"alg":"HS256","typ":"JWT"}`.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// An HMAC-SHA256 signing key of at least [`JwtKey::MIN_LEN`] bytes.
///
/// `Debug` does not print the key.
#[derive(Clone)]
pub struct JwtKey {
    mac: Hmac<Sha256>,
}

impl JwtKey {
    /// Shortest accepted key: 32 bytes, the output size of SHA-256 (RFC 7518 §3.2).
    pub const MIN_LEN: usize = 32;

    /// Accepts `bytes` as a key if it has at least [`JwtKey::MIN_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, ValueError> {
        let short = || {
            ValueError::new(
                "jwt_key",
                "[redacted]",
                format!(
                    "must be at least {} bytes long, got {}",
                    Self::MIN_LEN,
                    bytes.len()
                ),
            )
        };
        if bytes.len() < Self::MIN_LEN {
            return Err(short());
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes).map_err(|_| short())?;
        Ok(Self { mac })
    }

    fn sign(&self, signing_input: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey([redacted])")
    }
}

/// What a token may be used for, carried in the `typ` claim, so that a token issued for one
/// step is never accepted for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// A full access token, `"access"`.
    Access,
    /// Proof that the password step of a login succeeded and a second factor is still owed,
    /// `"mfa_pending"`. Grants nothing but the right to present a TOTP or backup code.
    MfaPending,
}

impl TokenType {
    /// The claim value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::MfaPending => "mfa_pending",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(TokenType::Access),
            "mfa_pending" => Some(TokenType::MfaPending),
            _ => None,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of an access token.
///
/// On the wire: `sub`, `org` (omitted when `None`), `role` (`"super_admin"` or an organization
/// role name such as `"admin"`; omitted when `None`), `sid`, `iat`, `exp` (unix seconds),
/// `jti`, `typ`. Unknown claims in a presented token are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user the token was issued to.
    pub sub: UserId,
    /// The organization the token acts in, if one was selected.
    pub org: Option<OrgId>,
    /// The effective role in `org` at issue time, if any.
    pub role: Option<Effective>,
    /// The login session: the id of the refresh token family the token came from.
    pub sid: Uuid,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// The token's own id (chosen by the caller), e.g. for a deny list.
    pub jti: Uuid,
    /// What the token may be used for.
    pub typ: TokenType,
}

impl Claims {
    /// Access-token claims issued at `now` and valid for [`ACCESS_TOKEN_TTL_SECS`].
    pub fn access(
        sub: UserId,
        org: Option<OrgId>,
        role: Option<Effective>,
        sid: Uuid,
        jti: Uuid,
        now: i64,
    ) -> Self {
        Self {
            sub,
            org,
            role,
            sid,
            iat: now,
            exp: now.saturating_add(ACCESS_TOKEN_TTL_SECS),
            jti,
            typ: TokenType::Access,
        }
    }

    fn to_json(&self) -> String {
        // Every value is a UUID, an integer or a fixed name, so none needs JSON escaping.
        let mut json = format!("{{\"sub\":\"{}\"", self.sub);
        if let Some(org) = self.org {
            let _ = write!(json, ",\"org\":\"{org}\"");
        }
        if let Some(role) = self.role {
            let _ = write!(json, ",\"role\":\"{}\"", role_name(role));
        }
        let _ = write!(
            json,
            ",\"sid\":\"{}\",\"iat\":{},\"exp\":{},\"jti\":\"{}\",\"typ\":\"{}\"}}",
            self.sid, self.iat, self.exp, self.jti, self.typ
        );
        json
    }
}

fn role_name(role: Effective) -> &'static str {
    match role {
        Effective::SuperAdmin => "super_admin",
        Effective::Org(role) => role.as_str(),
    }
}

fn parse_role(name: &str) -> Option<Effective> {
    match name {
        "super_admin" => Some(Effective::SuperAdmin),
        other => other.parse::<OrgRole>().ok().map(Effective::Org),
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not three base64url parts with a JSON header and the expected claims.
    #[error("malformed token: {reason}")]
    Malformed {
        /// What was wrong with the structure.
        reason: &'static str,
    },
    /// The header names another algorithm than HS256 (`none` included).
    #[error("token algorithm {alg:?} is not accepted; only HS256 is")]
    WrongAlgorithm {
        /// The `alg` the header named.
        alg: String,
    },
    /// The signature does not match: the token was altered or signed with another key.
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` plus the leeway lies in the past.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time of the check.
        now: i64,
    },
    /// `iat` lies further in the future than the leeway allows.
    #[error("token is not valid before {iat} (now {now})")]
    NotYetValid {
        /// The token's `iat`.
        iat: i64,
        /// The time of the check.
        now: i64,
    },
    /// The token is valid but issued for another use.
    #[error("token of type {found} cannot be used where {expected} is required")]
    WrongType {
        /// The type the caller required.
        expected: TokenType,
        /// The type the token carries.
        found: TokenType,
    },
}

/// Signs `claims` with `key` and returns the compact JWS (`header.payload.signature`).
pub fn issue(claims: &Claims, key: &JwtKey) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(HEADER_JSON);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_json()));
    let signature = key.sign(&token).finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// Verifies an access token: [`verify_as`] with [`TokenType::Access`].
pub fn verify(token: &str, key: &JwtKey, now: i64) -> Result<Claims, TokenError> {
    verify_as(token, key, now, TokenType::Access)
}

/// Verifies `token` at unix time `now` and requires its `typ` to be `expected`.
///
/// Checks, in order: structure (three canonical base64url parts, at most [`JWT_MAX_LEN`]
/// bytes), the header's `alg` (only `HS256`; a `crit` header is refused), the signature
/// (constant-time), the claims, the type, then time: `now > exp + JWT_LEEWAY_SECS` is
/// [`TokenError::Expired`], `iat > now + JWT_LEEWAY_SECS` is [`TokenError::NotYetValid`].
pub fn verify_as(
    token: &str,
    key: &JwtKey,
    now: i64,
    expected: TokenType,
) -> Result<Claims, TokenError> {
    let malformed = |reason| TokenError::Malformed { reason };
    if token.len() > JWT_MAX_LEN {
        return Err(malformed("longer than 8 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("must have exactly three dot-separated parts"));
    };

    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header: Header = decode_json(header).ok_or(malformed("header is not base64url JSON"))?;
    if header.alg != "HS256" {
        return Err(TokenError::WrongAlgorithm { alg: header.alg });
    }
    if header.crit.is_some() {
        return Err(malformed("critical header extensions are not supported"));
    }

    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| malformed("signature is not base64url"))?;
    key.sign(signing_input)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;

    let wire: WireClaims =
        decode_json(payload).ok_or(malformed("claims are not base64url JSON"))?;
    let claims = wire
        .into_claims()
        .ok_or(malformed("claims have unknown values"))?;
    if claims.typ != expected {
        return Err(TokenError::WrongType {
            expected,
            found: claims.typ,
        });
    }
    if now > claims.exp.saturating_add(JWT_LEEWAY_SECS) {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.iat > now.saturating_add(JWT_LEEWAY_SECS) {
        return Err(TokenError::NotYetValid {
            iat: claims.iat,
            now,
        });
    }
    Ok(claims)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireClaims {
    sub: UserId,
    #[serde(default)]
    org: Option<OrgId>,
    #[serde(default)]
    role: Option<String>,
    sid: Uuid,
    iat: i64,
    exp: i64,
    jti: Uuid,
    typ: String,
}

impl WireClaims {
    fn into_claims(self) -> Option<Claims> {
        let role = match self.role {
            None => None,
            Some(name) => Some(parse_role(&name)?),
        };
        Some(Claims {
            sub: self.sub,
            org: self.org,
            role,
            sid: self.sid,
            iat: self.iat,
            exp: self.exp,
            jti: self.jti,
            typ: TokenType::parse(&self.typ)?,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn key() -> JwtKey {
        JwtKey::new(&[42u8; 32]).unwrap()
    }

    fn claims() -> Claims {
        Claims::access(
            UserId::from_uuid(Uuid::from_u128(1)),
            Some(OrgId::from_uuid(Uuid::from_u128(2))),
            Some(Effective::Org(OrgRole::Admin)),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
            NOW,
        )
    }

    /// Signs arbitrary header and payload JSON with the test key.
    fn forge(header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = key().sign(&input).finalize().into_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn check(token: &str, now: i64, expected: Result<&Claims, TokenError>) {
        assert_eq!(
            verify(token, &key(), now).as_ref(),
            expected.as_ref().copied(),
            "{token}"
        );
    }

    #[test]
    fn wire_form() {
        let token = issue(&claims(), &key());
        let mut parts = token.split('.');
        assert_eq!(parts.next(), Some("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
        let payload = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["role"], "admin");
        assert_eq!(json["exp"], NOW + ACCESS_TOKEN_TTL_SECS);
        assert_eq!(json["typ"], "access");
        assert_eq!(json["sub"], "00000000-0000-0000-0000-000000000001");
    }

    #[test]
    fn rfc_7515_appendix_a1_hs256_signature() {
        // RFC 7515 A.1: a 64-byte key and a header/payload with unusual whitespace; only the
        // signature is compared since those claims are not ours.
        let key_b64 = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let key = JwtKey::new(&URL_SAFE_NO_PAD.decode(key_b64).unwrap()).unwrap();
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = URL_SAFE_NO_PAD.encode(key.sign(input).finalize().into_bytes());
        assert_eq!(sig, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    }

    #[test]
    fn verification() {
        let c = claims();
        let token = issue(&c, &key());
        check(&token, NOW, Ok(&c));
        check(&token, c.exp + JWT_LEEWAY_SECS, Ok(&c));
        check(
            &token,
            c.exp + JWT_LEEWAY_SECS + 1,
            Err(TokenError::Expired {
                exp: c.exp,
                now: c.exp + JWT_LEEWAY_SECS + 1,
            }),
        );
        check(&token, NOW - JWT_LEEWAY_SECS, Ok(&c));
        check(
            &token,
            NOW - JWT_LEEWAY_SECS - 1,
            Err(TokenError::NotYetValid {
                iat: NOW,
                now: NOW - JWT_LEEWAY_SECS - 1,
            }),
        );
        let other = JwtKey::new(&[43u8; 32]).unwrap();
        assert_eq!(verify(&token, &other, NOW), Err(TokenError::BadSignature));
        assert!(matches!(
            verify_as(&token, &key(), NOW, TokenType::MfaPending),
            Err(TokenError::WrongType {
                found: TokenType::Access,
                ..
            })
        ));
    }

    #[test]
    fn optional_claims_and_super_admin() {
        let mut c = claims();
        c.org = None;
        c.role = Some(Effective::SuperAdmin);
        check(&issue(&c, &key()), NOW, Ok(&c));
        c.role = None;
        c.typ = TokenType::MfaPending;
        let token = issue(&c, &key());
        assert_eq!(verify_as(&token, &key(), NOW, TokenType::MfaPending), Ok(c));
    }

    #[test]
    fn refusals() {
        let payload = claims().to_json();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(&payload)
        );
        let wrong_alg = |alg: &str| {
            Err(TokenError::WrongAlgorithm {
                alg: alg.to_owned(),
            })
        };
        check(&none, NOW, wrong_alg("none"));
        check(
            &forge(r#"{"alg":"HS512"}"#, &payload),
            NOW,
            wrong_alg("HS512"),
        );
        check(
            &forge(r#"{"alg":"RS256"}"#, &payload),
            NOW,
            wrong_alg("RS256"),
        );
        let malformed = |reason| Err(TokenError::Malformed { reason });
        check(
            &forge(r#"{"alg":"HS256","crit":["exp"]}"#, &payload),
            NOW,
            malformed("critical header extensions are not supported"),
        );
        check(
            &forge(r#"{"alg":"HS256"}"#, &payload.replace("admin", "root")),
            NOW,
            malformed("claims have unknown values"),
        );
        check(
            &forge(r#"{"alg":"HS256"}"#, "{}"),
            NOW,
            malformed("claims are not base64url JSON"),
        );
        check(&forge(r#"{"alg":"HS256"}"#, &payload), NOW, Ok(&claims()));
        check(
            "a.b",
            NOW,
            malformed("must have exactly three dot-separated parts"),
        );
        check(
            "a.b.c.d",
            NOW,
            malformed("must have exactly three dot-separated parts"),
        );
        check(
            "",
            NOW,
            malformed("must have exactly three dot-separated parts"),
        );
        check("!.b.c", NOW, malformed("header is not base64url JSON"));
        let token = issue(&claims(), &key());
        check(
            &format!("{token}="),
            NOW,
            malformed("signature is not base64url"),
        );
        check(
            &"a".repeat(JWT_MAX_LEN + 1),
            NOW,
            malformed("longer than 8 KiB"),
        );
    }

    #[test]
    fn short_keys_are_refused() {
        let err = JwtKey::new(&[0u8; 31]).unwrap_err();
        assert_eq!(err.field(), "jwt_key");
        assert!(err.reason().contains("at least 32 bytes"), "{err}");
        assert_eq!(format!("{:?}", key()), "JwtKey([redacted])");
    }

    fn any_claims() -> impl Strategy<Value = Claims> {
        let role = prop_oneof![
            Just(None),
            Just(Some(Effective::SuperAdmin)),
            (0usize..4).prop_map(|i| Some(Effective::Org(OrgRole::ALL[i]))),
        ];
        (
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            role,
            any::<u128>(),
            -1_000_000i64..4_000_000_000,
            0i64..100_000,
            any::<u128>(),
        )
            .prop_map(|(sub, org, role, sid, iat, ttl, jti)| Claims {
                sub: UserId::from_uuid(Uuid::from_u128(sub)),
                org: org.map(|o| OrgId::from_uuid(Uuid::from_u128(o))),
                role,
                sid: Uuid::from_u128(sid),
                iat,
                exp: iat + ttl,
                jti: Uuid::from_u128(jti),
                typ: TokenType::Access,
            })
    }

    proptest! {
        #[test]
        fn round_trip(c in any_claims()) {
            let token = issue(&c, &key());
            prop_assert_eq!(verify(&token, &key(), c.iat), Ok(c));
        }

        #[test]
        fn any_single_byte_change_is_refused(
            c in any_claims(),
            pos in any::<prop::sample::Index>(),
            replacement in prop::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()
            ),
        ) {
            let token = issue(&c, &key());
            let mut bytes = token.clone().into_bytes();
            let i = pos.index(bytes.len());
            prop_assume!(bytes[i] != replacement);
            bytes[i] = replacement;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(verify(&altered, &key(), c.iat).is_err(), "{} accepted", altered);
        }

        #[test]
        fn verify_never_panics(input in "[A-Za-z0-9._-]{0,200}") {
            prop_assert!(verify(&input, &key(), NOW).is_err());
        }
    }
}
