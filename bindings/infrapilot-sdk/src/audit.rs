//! Offline verification of an audit chain export.

use ed25519_dalek::VerifyingKey;
use infrapilot_core::audit::AuditExport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SdkError;

/// The outcome of [`verify_audit_export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Whether the chain is intact and every checkpoint is signed by the given key.
    pub ok: bool,
    /// The organization the chain was verified for.
    pub org: String,
    /// How many entries were examined.
    pub entries: u64,
    /// How many checkpoints were examined.
    pub checkpoints: u64,
    /// The hash of the last entry (hex), if any.
    pub head: Option<String>,
    /// The highest seq a valid checkpoint vouches for (0 when none, or broken).
    pub verified_through: u64,
    /// The first break found; `null` for an intact chain.
    pub broken: Option<AuditBreak>,
    /// Whether the `public_key` inside the export (if any) is the key verified with. A
    /// mismatch is reported, not trusted: the caller's key decides.
    pub export_key_matches: Option<bool>,
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBreak {
    /// The seq where the tampering happened.
    pub seq: u64,
    /// `modified`, `deleted`, `inserted`, `reordered`, `replaced`, `truncated`, `rewritten`,
    /// `bad_checkpoint_signature` or `foreign_org`.
    pub kind: String,
    /// The break, for a human.
    pub message: String,
}

/// Verifies an audit export (the body of `GET /api/v1/audit/export`: `{org, entries,
/// checkpoints, public_key}`) with `public_key_hex`, the organization's Ed25519 verifying key
/// as 64 hex digits, obtained from a trusted place (not from the export itself).
pub fn verify_audit_export(export: &Value, public_key_hex: &str) -> Result<AuditReport, SdkError> {
    let key = parse_key(public_key_hex)?;
    let mut body = export.clone();
    let export_key = body
        .as_object_mut()
        .and_then(|m| m.remove("public_key"))
        .and_then(|k| k.as_str().map(str::to_ascii_lowercase));
    let parsed: AuditExport = SdkError::from_value(&body, "export")?;
    let report = parsed.verify(&key);
    Ok(AuditReport {
        ok: report.is_ok(),
        org: report.org.to_string(),
        entries: report.entries,
        checkpoints: report.checkpoints,
        head: report.head.map(|h| hex::encode(h.as_bytes())),
        verified_through: report.verified_through,
        broken: report.broken.map(|b| AuditBreak {
            seq: b.seq,
            kind: match serde_json::to_value(b.kind) {
                Ok(Value::String(s)) => s,
                _ => "unknown".to_owned(),
            },
            message: b.to_string(),
        }),
        export_key_matches: export_key.map(|k| k == hex::encode(key.to_bytes())),
    })
}

fn parse_key(hex_key: &str) -> Result<VerifyingKey, SdkError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut bytes).map_err(|_| SdkError::InvalidKey {
        message: format!(
            "an Ed25519 public key is 64 hex digits, got {} characters",
            hex_key.trim().len()
        ),
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| SdkError::InvalidKey {
        message: "the bytes are not an Ed25519 public key".to_owned(),
    })
}
