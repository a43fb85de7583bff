//! The export format: everything needed to verify a chain offline.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::{ChainedEntry, Checkpoint, VerifyReport, verify};
use crate::ids::OrgId;

/// One organization's audit chain with its checkpoints, as exported for offline
/// verification (the SDK reads it and calls [`AuditExport::verify`]).
///
/// JSON, with entries in seq order from seq 1:
///
/// ```json
/// {"org": "…uuid…",
///  "entries": [{"seq": 1, "prev_hash": "00…00", "hash": "…", "entry": {…}}, …],
///  "checkpoints": [{"org": "…", "seq": 1, "head": "…", "time_us": 0, "signature": "…"}]}
/// ```
///
/// The verifying key is deliberately not part of the export: a verifier must get it from a
/// trusted place, otherwise whoever forged the export could ship a matching key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditExport {
    /// The organization whose chain this is.
    pub org: OrgId,
    /// The entries, in seq order.
    pub entries: Vec<ChainedEntry>,
    /// The checkpoints signed for this chain.
    pub checkpoints: Vec<Checkpoint>,
}

impl AuditExport {
    /// Verifies the export as organization `self.org`'s chain; see [`verify`].
    ///
    /// A caller that knows which organization it expects should compare `self.org` with it
    /// first (or call [`verify`] with its own org id).
    pub fn verify(&self, key: &VerifyingKey) -> VerifyReport {
        verify(self.org, &self.entries, &self.checkpoints, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::BreakKind;
    use crate::audit::test_support::{build_chain, entry, key, org};

    #[test]
    fn exports_verify_after_a_json_round_trip() {
        let entries = build_chain((0..10).map(|i| entry(org(1), i)).collect());
        let checkpoints = vec![Checkpoint::sign(&entries[9], 1, &key(1))];
        let export = AuditExport {
            org: org(1),
            entries,
            checkpoints,
        };
        let json = serde_json::to_string_pretty(&export).unwrap();
        let back: AuditExport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, export);
        assert!(back.verify(&key(1).verifying_key()).is_ok());

        let tampered = json.replacen("\"success\"", "\"failure\"", 1);
        let back: AuditExport = serde_json::from_str(&tampered).unwrap();
        let report = back.verify(&key(1).verifying_key());
        assert_eq!(report.broken.map(|b| b.kind), Some(BreakKind::Modified));
    }
}
