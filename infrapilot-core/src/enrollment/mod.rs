//! Agent enrollment tokens.
//!
//! An administrator creates a token for an organization; the new agent is started with its
//! printable form ([`EnrollmentToken`], `IPT1.<ca fingerprint>.<public id>.<secret>`). The
//! agent first connects to the server and checks that the server's CA certificate has the
//! fingerprint in the token ([`ca_fingerprint_matches`]), so the secret is never sent to an
//! impostor. It then sends the public id and the secret; the server looks the
//! [`TokenRecord`] up by public id and calls [`redeem`], which checks the secret against the
//! stored hash in constant time and counts the use.
//!
//! The core has no randomness: the shells draw the public id and the secret from the OS RNG
//! and pass the bytes in. The secret is stored only as a SHA-256 hash ([`SecretHash`]); a
//! slow password hash is unnecessary for 256 random bits.

mod record;
mod token;

pub use record::{
    RecordError, RedeemError, SecretHash, TokenPolicy, TokenRecord, TokenRecordParts, TokenStatus,
    redeem,
};
pub use token::{
    CaFingerprint, EnrollmentToken, TOKEN_PREFIX, TokenParseError, TokenPublicId, TokenSecret,
    ca_fingerprint_matches,
};
