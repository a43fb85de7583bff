//! Enrollment tokens: inspect the printable form without ever echoing its secret.

use infrapilot_core::enrollment::EnrollmentToken;
use serde::{Deserialize, Serialize};

use crate::error::SdkError;

/// What a token tells without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenInfo {
    /// The format version (`1` for `IPT1.` tokens).
    pub version: u32,
    /// The SHA-256 fingerprint of the server's CA certificate, 64 lowercase hex digits; an
    /// agent checks the server against it before it sends the secret.
    pub ca_fingerprint: String,
    /// The token's public id, 16 hex digits, as listed by the API.
    pub public_id: String,
}

/// Parses an enrollment token (`IPT1.<ca fingerprint>.<public id>.<secret>`) and returns its
/// public parts. Errors say what is wrong and never repeat the secret.
pub fn inspect_enrollment_token(token: &str) -> Result<EnrollmentTokenInfo, SdkError> {
    let token = EnrollmentToken::parse(token).map_err(|e| SdkError::InvalidEnrollmentToken {
        message: e.to_string(),
    })?;
    Ok(EnrollmentTokenInfo {
        version: 1,
        ca_fingerprint: token.ca_fingerprint.to_string(),
        public_id: token.public_id.to_string(),
    })
}
