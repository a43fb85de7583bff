//! Verifying a chain against itself and against its signed checkpoints.
//!
//! # What is checked, in order
//!
//! [`verify`] runs five passes and reports the first break the first failing pass finds
//! (the lowest seq within that pass). When a chain was tampered with in several ways, fix or
//! explain the reported break and verify again to see the next.
//!
//! 1. **Checkpoints.** Each checkpoint's signature must verify under the given key
//!    ([`BreakKind::BadCheckpointSignature`]) and it must name the expected organization
//!    ([`BreakKind::ForeignOrg`]). Reported at the seq the checkpoint names.
//! 2. **Each entry on its own**, in the given order. An entry whose stored `hash` differs from
//!    `SHA-256(prev_hash ‖ canonical(seq, entry))` is [`BreakKind::Modified`]: some field —
//!    content, `seq`, `prev_hash` or `hash` itself — was changed after chaining. It is
//!    reported at its stored seq, except when the stored hash matches the content under the
//!    seq its predecessor implies (predecessor's seq + 1, or 1 first): then exactly the seq
//!    number was altered, and that implied seq is reported. A forged entry that does not
//!    even carry a matching hash is reported as modified too: that is all that can be said
//!    about it. A consistent entry naming another organization is [`BreakKind::ForeignOrg`].
//! 3. **Sequence numbers.** Every entry now matches its hash, so its seq is what it claimed
//!    when it was written. If the seqs in list order are not exactly `1, 2, …, n`:
//!    - a seq that occurs twice, or seq 0, is [`BreakKind::Inserted`] at that seq (a forged
//!      entry takes the seq of the entry it sits next to: genuine seqs are unique);
//!    - otherwise a seq missing below the largest one is [`BreakKind::Deleted`] at the
//!      smallest missing seq;
//!    - otherwise the seqs are a permutation of `1..=n`, and the first position `i` (from 1)
//!      holding another seq is [`BreakKind::Reordered`] at seq `i`: a swap of the entries at
//!      seqs `a < b` is reported at `a`.
//! 4. **Links.** With seqs in order, each entry's `prev_hash` must be the hash of the entry
//!    before it (or [`super::ChainHash::GENESIS`]). A broken link between two consistent
//!    entries means one of them was replaced by a forgery that was hashed correctly, which
//!    is [`BreakKind::Replaced`]: at the later entry when it links to neither neighbour (or is
//!    seq 1), else at the earlier one, whose own backward link holds but whose successor does
//!    not link to it.
//! 5. **Entries against checkpoints**, lowest checkpoint seq first. A checkpoint naming a seq
//!    beyond the last entry is [`BreakKind::Truncated`] at the first missing seq: a deleted
//!    tail (of one entry or of many) looks exactly like that. A checkpoint whose head hash
//!    differs from the entry at its seq is [`BreakKind::Rewritten`] at the checkpoint's seq:
//!    the chain is consistent but is not the one that was signed, so the entries at or
//!    before that seq (after the previous matching checkpoint) were rewritten and re-hashed,
//!    or the tail was truncated and new entries appended.
//!
//! Every single deletion, insertion of a forged entry, swap of two entries, modification of
//! one field of one entry and truncation after a checkpoint is reported with the kind above
//! and the seq where it happened (property-tested in `tamper_tests.rs`), with one limit that
//! no verifier can lift: entries after the latest checkpoint are protected by hash links
//! only. Removing or replacing them, or appending forged entries there, is invisible until
//! a checkpoint vouches for them. Sign checkpoints often and keep the latest one away from
//! the database.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::{ChainHash, ChainedEntry, Checkpoint, entry_hash};
use crate::ids::OrgId;

/// The outcome of [`verify`]: either the chain is intact, or where and how it is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The organization the chain was verified for.
    pub org: OrgId,
    /// How many entries were examined.
    pub entries: u64,
    /// How many checkpoints were examined.
    pub checkpoints: u64,
    /// The hash of the last entry in the list, if any.
    pub head: Option<ChainHash>,
    /// For an intact chain, the highest seq a checkpoint vouches for; entries after it are
    /// linked but not yet signed for. 0 when there is no checkpoint or the chain is broken.
    pub verified_through: u64,
    /// The first break found, or `None` when the chain is intact.
    pub broken: Option<ChainBreak>,
}

impl VerifyReport {
    /// Whether no break was found.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainBreak {
    /// The seq where the tampering happened (see [`BreakKind`] for what it means per kind).
    pub seq: u64,
    /// What kind of tampering it is.
    pub kind: BreakKind,
}

/// The kinds of break [`verify`] tells apart. The module documentation says exactly which
/// evidence leads to which kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakKind {
    /// The entry at `seq` no longer matches its stored hash.
    Modified,
    /// The entry at `seq` is missing, with entries after it still present.
    Deleted,
    /// An extra entry claims `seq`, which another entry also claims (or `seq` is 0).
    Inserted,
    /// The entry for `seq` is not in its place.
    Reordered,
    /// The entry at `seq` is consistent but its neighbour does not link to it: it replaced
    /// the genuine one.
    Replaced,
    /// Entries from `seq` on are missing, though a checkpoint vouches for them.
    Truncated,
    /// The checkpoint at `seq` does not match the chain, which was rewritten at or before
    /// `seq`.
    Rewritten,
    /// The checkpoint naming `seq` is not signed by the given key.
    BadCheckpointSignature,
    /// The entry or checkpoint at `seq` belongs to another organization.
    ForeignOrg,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match self.kind {
            BreakKind::Modified => write!(
                f,
                "entry {seq} does not match its hash: it was modified after it was written"
            ),
            BreakKind::Deleted => write!(f, "entry {seq} was deleted"),
            BreakKind::Inserted => write!(f, "a forged entry claiming seq {seq} was inserted"),
            BreakKind::Reordered => write!(f, "the entries were reordered at seq {seq}"),
            BreakKind::Replaced => {
                write!(
                    f,
                    "entry {seq} was replaced: its neighbour does not link to it"
                )
            }
            BreakKind::Truncated => write!(
                f,
                "the chain was truncated: entries from {seq} on are missing, \
                 though a signed checkpoint vouches for them"
            ),
            BreakKind::Rewritten => write!(
                f,
                "the chain does not match the signed checkpoint at seq {seq}: \
                 entries at or before it were rewritten"
            ),
            BreakKind::BadCheckpointSignature => {
                write!(f, "the checkpoint for seq {seq} has an invalid signature")
            }
            BreakKind::ForeignOrg => {
                write!(f, "the record at seq {seq} belongs to another organization")
            }
        }
    }
}

/// Verifies organization `org`'s chain: `entries` in the order they were exported (seq
/// order), from seq 1 on, and the `checkpoints` signed for it, whose signatures must verify
/// under `key`.
///
/// `org` is a parameter, not read from the data, so that a complete chain of another
/// organization is not accepted in its place. The key must come from a trusted source, never
/// from the export being checked. See the module documentation for the exact checks.
pub fn verify(
    org: OrgId,
    entries: &[ChainedEntry],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> VerifyReport {
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|cp| cp.seq);
    let broken = check_checkpoint_signatures(org, &sorted, key)
        .or_else(|| check_each_entry(org, entries))
        .or_else(|| check_sequence(entries))
        .or_else(|| check_links(entries))
        .or_else(|| check_against_checkpoints(entries, &sorted));
    let verified_through = match broken {
        None => sorted.last().map_or(0, |cp| cp.seq),
        Some(_) => 0,
    };
    VerifyReport {
        org,
        entries: entries.len() as u64,
        checkpoints: checkpoints.len() as u64,
        head: entries.last().map(|e| e.hash),
        verified_through,
        broken,
    }
}

fn at(seq: u64, kind: BreakKind) -> Option<ChainBreak> {
    Some(ChainBreak { seq, kind })
}

fn check_checkpoint_signatures(
    org: OrgId,
    sorted: &[&Checkpoint],
    key: &VerifyingKey,
) -> Option<ChainBreak> {
    sorted.iter().find_map(|cp| {
        if !cp.has_valid_signature(key) {
            at(cp.seq, BreakKind::BadCheckpointSignature)
        } else if cp.org != org {
            at(cp.seq, BreakKind::ForeignOrg)
        } else {
            None
        }
    })
}

fn check_each_entry(org: OrgId, entries: &[ChainedEntry]) -> Option<ChainBreak> {
    let mut implied_seq = 1;
    for e in entries {
        if !e.is_self_consistent() {
            let only_seq_changed =
                e.seq != implied_seq && entry_hash(&e.prev_hash, implied_seq, &e.entry) == e.hash;
            let seq = if only_seq_changed { implied_seq } else { e.seq };
            return at(seq, BreakKind::Modified);
        }
        if e.entry.org != org {
            return at(e.seq, BreakKind::ForeignOrg);
        }
        implied_seq = e.seq.saturating_add(1);
    }
    None
}

/// Position `i` (from 0) should hold seq `i + 1`.
fn seq_at(index: usize) -> u64 {
    index as u64 + 1
}

fn check_sequence(entries: &[ChainedEntry]) -> Option<ChainBreak> {
    if entries.iter().enumerate().all(|(i, e)| e.seq == seq_at(i)) {
        return None;
    }
    let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    if seqs.first() == Some(&0) {
        return at(0, BreakKind::Inserted);
    }
    if let Some(pair) = seqs.windows(2).find(|pair| pair[0] == pair[1]) {
        return at(pair[0], BreakKind::Inserted);
    }
    // Sorted, unique and positive: the first seq not equal to its rank marks a missing one.
    if let Some(i) = seqs.iter().enumerate().position(|(i, s)| *s != seq_at(i)) {
        return at(seq_at(i), BreakKind::Deleted);
    }
    let i = entries
        .iter()
        .enumerate()
        .position(|(i, e)| e.seq != seq_at(i))?;
    at(seq_at(i), BreakKind::Reordered)
}

fn check_links(entries: &[ChainedEntry]) -> Option<ChainBreak> {
    let mut expected = ChainHash::GENESIS;
    for (i, e) in entries.iter().enumerate() {
        if e.prev_hash != expected {
            let links_forward = entries
                .get(i + 1)
                .is_none_or(|next| next.prev_hash == e.hash);
            let seq = if i == 0 || !links_forward {
                e.seq
            } else {
                e.seq.saturating_sub(1)
            };
            return at(seq, BreakKind::Replaced);
        }
        expected = e.hash;
    }
    None
}

fn check_against_checkpoints(
    entries: &[ChainedEntry],
    sorted: &[&Checkpoint],
) -> Option<ChainBreak> {
    let last = entries.len() as u64;
    sorted.iter().find_map(|cp| {
        if cp.seq > last {
            return at(last + 1, BreakKind::Truncated);
        }
        let signed_head = match cp.seq.checked_sub(1) {
            None => ChainHash::GENESIS,
            Some(index) => entries
                .get(index as usize)
                .map_or(ChainHash::GENESIS, |e| e.hash),
        };
        (signed_head != cp.head).then_some(ChainBreak {
            seq: cp.seq,
            kind: BreakKind::Rewritten,
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::test_support::{build_chain, entry, key, org};
    use crate::audit::{AuditEntry, append};

    fn check(
        entries: &[ChainedEntry],
        checkpoints: &[Checkpoint],
        expected: Option<(u64, BreakKind)>,
    ) {
        let report = verify(org(1), entries, checkpoints, &key(1).verifying_key());
        let got = report.broken.map(|b| (b.seq, b.kind));
        assert_eq!(got, expected, "{report:?}");
    }

    fn chain(n: usize) -> (Vec<ChainedEntry>, Vec<Checkpoint>) {
        let entries = build_chain((0..n as u64).map(|i| entry(org(1), i)).collect());
        let checkpoints = match entries.last() {
            Some(head) => vec![Checkpoint::sign(head, 99, &key(1))],
            None => vec![],
        };
        (entries, checkpoints)
    }

    fn rehashed(prev: Option<&ChainedEntry>, seq: u64, entry: AuditEntry) -> ChainedEntry {
        let prev_hash = prev.map_or(ChainHash::GENESIS, |p| p.hash);
        ChainedEntry {
            seq,
            prev_hash,
            hash: entry_hash(&prev_hash, seq, &entry),
            entry,
        }
    }

    #[test]
    fn intact_chains_verify() {
        check(&[], &[], None);
        let (entries, checkpoints) = chain(5);
        check(&entries, &checkpoints, None);
        let report = verify(org(1), &entries, &checkpoints, &key(1).verifying_key());
        assert!(report.is_ok());
        assert_eq!(report.verified_through, 5);
        assert_eq!(report.head, Some(entries[4].hash));
        // More entries than the latest checkpoint covers: still intact, partly vouched for.
        let more = append(entries.last(), entry(org(1), 9)).unwrap();
        let longer = [entries, vec![more]].concat();
        check(&longer, &checkpoints, None);
    }

    #[test]
    fn single_tamperings() {
        let (entries, cps) = chain(5);
        let mut modified = entries.clone();
        modified[2].entry.details = json!({"changed": true});
        check(&modified, &cps, Some((3, BreakKind::Modified)));

        let mut renumbered = entries.clone();
        renumbered[2].seq = 9;
        check(&renumbered, &cps, Some((3, BreakKind::Modified)));

        let mut deleted = entries.clone();
        deleted.remove(1);
        check(&deleted, &cps, Some((2, BreakKind::Deleted)));

        let mut tail = entries.clone();
        tail.pop();
        check(&tail, &cps, Some((5, BreakKind::Truncated)));
        check(&[], &cps, Some((1, BreakKind::Truncated)));

        let forged = rehashed(Some(&entries[1]), 3, entry(org(1), 77));
        let mut inserted = entries.clone();
        inserted.insert(2, forged.clone());
        check(&inserted, &cps, Some((3, BreakKind::Inserted)));
        let mut inserted_after = entries.clone();
        inserted_after.insert(3, forged.clone());
        check(&inserted_after, &cps, Some((3, BreakKind::Inserted)));

        let mut swapped = entries.clone();
        swapped.swap(1, 3);
        check(&swapped, &cps, Some((2, BreakKind::Reordered)));

        let mut replaced = entries.clone();
        replaced[2] = forged;
        check(&replaced, &cps, Some((3, BreakKind::Replaced)));
    }

    #[test]
    fn a_forged_entry_without_a_matching_hash_reads_as_modified() {
        let (entries, cps) = chain(4);
        let mut forged = rehashed(Some(&entries[0]), 2, entry(org(1), 50));
        forged.hash = ChainHash::from_bytes([7; 32]);
        let mut list = entries.clone();
        list.insert(1, forged);
        check(&list, &cps, Some((2, BreakKind::Modified)));
    }

    #[test]
    fn a_rewritten_history_contradicts_the_checkpoint() {
        let (entries, _) = chain(6);
        let cps = vec![
            Checkpoint::sign(&entries[2], 10, &key(1)),
            Checkpoint::sign(&entries[5], 20, &key(1)),
        ];
        // Rewrite entry 5 and re-hash everything after it: the links hold, the checkpoint
        // at 6 does not.
        let mut rewritten = entries[..4].to_vec();
        for (seq, salt) in [(5, 500), (6, 600)] {
            let next = rehashed(rewritten.last(), seq, entry(org(1), salt));
            rewritten.push(next);
        }
        check(&rewritten, &cps, Some((6, BreakKind::Rewritten)));
        // Truncated back to 3 and two new entries appended: the same evidence.
        let mut reappended = entries[..3].to_vec();
        for salt in [700, 800, 900] {
            let next = append(reappended.last(), entry(org(1), salt)).unwrap();
            reappended.push(next);
        }
        check(&reappended, &cps, Some((6, BreakKind::Rewritten)));
    }

    #[test]
    fn checkpoints_must_be_signed_by_the_key_for_the_org() {
        let (entries, mut cps) = chain(3);
        cps.push(Checkpoint::sign(&entries[1], 5, &key(2)));
        check(&entries, &cps, Some((2, BreakKind::BadCheckpointSignature)));

        let other = build_chain(vec![entry(org(2), 1)]);
        let foreign = vec![Checkpoint::sign(&other[0], 5, &key(1))];
        check(&entries, &foreign, Some((1, BreakKind::ForeignOrg)));

        let mut forged = Checkpoint::sign(&entries[2], 5, &key(1));
        forged.seq = 10;
        check(
            &entries,
            &[forged],
            Some((10, BreakKind::BadCheckpointSignature)),
        );
    }

    #[test]
    fn another_orgs_chain_is_refused() {
        let other = build_chain(vec![entry(org(2), 1), entry(org(2), 2)]);
        check(&other, &[], Some((1, BreakKind::ForeignOrg)));
    }

    #[test]
    fn seq_zero_is_an_insertion() {
        let (entries, cps) = chain(2);
        let zero = rehashed(None, 0, entry(org(1), 5));
        check(
            &[zero, entries[0].clone(), entries[1].clone()],
            &cps,
            Some((0, BreakKind::Inserted)),
        );
    }

    #[test]
    fn what_no_verifier_can_see() {
        // Entries after the latest checkpoint are protected by links only.
        let (entries, _) = chain(4);
        let cps = vec![Checkpoint::sign(&entries[1], 1, &key(1))];
        check(&entries[..3], &cps, None);
        let forged = append(Some(&entries[3]), entry(org(1), 66)).unwrap();
        check(&[entries.clone(), vec![forged]].concat(), &cps, None);
    }

    #[test]
    fn breaks_explain_themselves() {
        let b = ChainBreak {
            seq: 4,
            kind: BreakKind::Deleted,
        };
        assert_eq!(b.to_string(), "entry 4 was deleted");
        let json = serde_json::to_value(b).unwrap();
        assert_eq!(json, json!({"seq": 4, "kind": "deleted"}));
    }
}
