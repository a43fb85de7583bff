//! Placing entries in an organization's chain.

use serde::{Deserialize, Serialize};

use super::{AuditEntry, ChainHash, entry_hash};
use crate::ids::OrgId;

/// An audit entry placed in its organization's chain.
///
/// [`append`] builds one whose `hash` is `SHA-256(prev_hash ‖ canonical(seq, entry))` and whose
/// `prev_hash` is the hash of the entry at `seq - 1`. An entry read back from storage or from
/// an export is only a claim that this holds: the fields are public because [`super::verify`]
/// must be able to look at a tampered entry and say what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainedEntry {
    /// The position in the organization's chain, starting at 1, without gaps.
    pub seq: u64,
    /// The hash of the entry at `seq - 1`, or [`ChainHash::GENESIS`] for seq 1.
    pub prev_hash: ChainHash,
    /// This entry's hash.
    pub hash: ChainHash,
    /// The event.
    pub entry: AuditEntry,
}

impl ChainedEntry {
    /// The hash this entry should have, computed from its `prev_hash`, `seq` and `entry`.
    pub fn computed_hash(&self) -> ChainHash {
        entry_hash(&self.prev_hash, self.seq, &self.entry)
    }

    /// Whether the stored `hash` matches the entry's content.
    pub fn is_self_consistent(&self) -> bool {
        self.computed_hash() == self.hash
    }
}

/// Why an entry could not be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The entry belongs to another organization than the chain.
    #[error("the entry belongs to organization {entry}, the chain to organization {chain}")]
    ForeignOrg {
        /// The organization of the chain's head.
        chain: OrgId,
        /// The organization named in the entry.
        entry: OrgId,
    },
    /// The chain already holds `u64::MAX` entries.
    #[error("the chain is full: seq {head} is the largest there can be")]
    Full {
        /// The seq of the chain's head.
        head: u64,
    },
}

/// Places `entry` after `prev`, the current head of its organization's chain (`None` for the
/// organization's first entry), and returns the new head.
///
/// The caller must serialize appends per organization (a row lock on the head, or one writer)
/// so that two entries never claim the same seq. Times are not required to increase: replicas'
/// clocks differ, and the seq, not the time, orders the chain.
pub fn append(prev: Option<&ChainedEntry>, entry: AuditEntry) -> Result<ChainedEntry, AppendError> {
    let (seq, prev_hash) = match prev {
        None => (1, ChainHash::GENESIS),
        Some(prev) => {
            if prev.entry.org != entry.org {
                return Err(AppendError::ForeignOrg {
                    chain: prev.entry.org,
                    entry: entry.org,
                });
            }
            let seq = prev
                .seq
                .checked_add(1)
                .ok_or(AppendError::Full { head: prev.seq })?;
            (seq, prev.hash)
        }
    };
    Ok(ChainedEntry {
        seq,
        prev_hash,
        hash: entry_hash(&prev_hash, seq, &entry),
        entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{entry, org};

    #[test]
    fn append_links_entries() {
        let first = append(None, entry(org(1), 0)).unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(first.prev_hash, ChainHash::GENESIS);
        assert!(first.is_self_consistent());
        let second = append(Some(&first), entry(org(1), 1)).unwrap();
        assert_eq!(second.seq, 2);
        assert_eq!(second.prev_hash, first.hash);
        assert!(second.is_self_consistent());
        assert_ne!(second.hash, first.hash);
    }

    #[test]
    fn append_refuses_another_org_and_overflow() {
        let first = append(None, entry(org(1), 0)).unwrap();
        assert_eq!(
            append(Some(&first), entry(org(2), 1)),
            Err(AppendError::ForeignOrg {
                chain: org(1),
                entry: org(2)
            })
        );
        let last = ChainedEntry {
            seq: u64::MAX,
            ..first
        };
        assert_eq!(
            append(Some(&last), entry(org(1), 1)),
            Err(AppendError::Full { head: u64::MAX })
        );
    }

    #[test]
    fn json_round_trip_keeps_the_hash() {
        let first = append(None, entry(org(1), 3)).unwrap();
        let json = serde_json::to_string(&first).unwrap();
        let back: ChainedEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, first);
        assert!(back.is_self_consistent());
    }
}
