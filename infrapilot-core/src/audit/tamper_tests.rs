//! Property tests: every single tampering of every kind is detected, located and classified.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;
use uuid::Uuid;

use super::test_support::{arb_entry, key, org};
use super::*;
use crate::ids::{AgentId, ApiTokenId, OrgId, UserId};

/// A random chain of organization 1 with checkpoints at random seqs, always including the
/// head (as a server signing periodically would have done).
#[derive(Debug, Clone)]
struct Scenario {
    entries: Vec<ChainedEntry>,
    checkpoints: Vec<Checkpoint>,
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (1..60usize)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(arb_entry(org(1)), n),
                prop::collection::vec(prop::bool::weighted(0.05), n),
            )
        })
        .prop_map(|(raw, signed)| {
            let mut entries: Vec<ChainedEntry> = Vec::with_capacity(raw.len());
            let mut checkpoints = Vec::new();
            for (i, e) in raw.into_iter().enumerate() {
                let next = append(entries.last(), e).unwrap();
                if signed[i] || i + 1 == signed.len() {
                    checkpoints.push(Checkpoint::sign(&next, i as i64, &key(1)));
                }
                entries.push(next);
            }
            Scenario {
                entries,
                checkpoints,
            }
        })
}

/// One tampering, with positions as indexes to be scaled to the chain's length.
#[derive(Debug, Clone)]
enum Tamper {
    /// Change one field (0..=11) of one entry, leaving everything else as it was.
    Modify { at: Index, field: u8, salt: u64 },
    /// Remove one entry (possibly the last).
    Delete { at: Index },
    /// Insert a correctly hashed forgery that claims the seq of the entry it sits next to
    /// and links to that entry's predecessor.
    Insert {
        at: Index,
        after: bool,
        forged: AuditEntry,
    },
    /// Swap two different entries.
    Swap { a: Index, b: Index },
    /// Drop every entry after a checkpoint's seq (or all of them).
    Truncate { at: Index },
}

/// One tampering of each kind (two modifications, since there are twelve fields), each to be
/// applied on its own to the same chain. Grouping them shares the chain's signing cost.
fn arb_tampers() -> impl Strategy<Value = Vec<Tamper>> {
    let modify = || {
        (any::<Index>(), 0..=11u8, any::<u64>()).prop_map(|(at, field, salt)| Tamper::Modify {
            at,
            field,
            salt,
        })
    };
    (
        modify(),
        modify(),
        any::<Index>().prop_map(|at| Tamper::Delete { at }),
        (any::<Index>(), any::<bool>(), arb_entry(org(1)))
            .prop_map(|(at, after, forged)| Tamper::Insert { at, after, forged }),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Tamper::Swap { a, b }),
        any::<Index>().prop_map(|at| Tamper::Truncate { at }),
    )
        .prop_map(|(m1, m2, d, i, s, t)| vec![m1, m2, d, i, s, t])
}

fn flip(hash: ChainHash, salt: u64) -> ChainHash {
    let mut bytes = *hash.as_bytes();
    bytes[(salt % 32) as usize] ^= 1 << (salt % 8);
    ChainHash::from_bytes(bytes)
}

fn modify(e: &mut ChainedEntry, field: u8, salt: u64) {
    let entry = &mut e.entry;
    match field {
        0 => entry.time_us = entry.time_us.wrapping_add(1 + (salt % 1000) as i64),
        1 => entry.org = OrgId::from_uuid(Uuid::from_u128(entry.org.as_uuid().as_u128() ^ 1)),
        2 => {
            entry.actor = match entry.actor {
                Actor::System => Actor::User(UserId::from_uuid(Uuid::from_u128(1))),
                Actor::User(u) => Actor::ApiToken(ApiTokenId::from_uuid(u.as_uuid())),
                Actor::ApiToken(t) => Actor::Agent(AgentId::from_uuid(t.as_uuid())),
                Actor::Agent(_) => Actor::System,
            }
        }
        3 => {
            let other = if entry.action.as_str() == "tampered.a" {
                "tampered.b"
            } else {
                "tampered.a"
            };
            entry.action = AuditAction::parse(other).unwrap();
        }
        4 => {
            let other = if entry.resource.kind.as_str() == "tampered" {
                "forged"
            } else {
                "tampered"
            };
            entry.resource.kind = ResourceKind::parse(other).unwrap();
        }
        5 => {
            let id: String = entry.resource.id.as_str().chars().take(200).collect();
            entry.resource.id = ResourceId::parse(&format!("{id}x")).unwrap();
        }
        6 => {
            entry.source_ip = match entry.source_ip {
                None => Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))),
                Some(_) => None,
            }
        }
        7 => {
            entry.outcome = match entry.outcome {
                Outcome::Success => Outcome::Denied,
                Outcome::Denied => Outcome::Failure,
                Outcome::Failure => Outcome::Success,
            }
        }
        8 => entry.details = json!({ "tampered": entry.details.take() }),
        9 => e.prev_hash = flip(e.prev_hash, salt),
        10 => e.hash = flip(e.hash, salt),
        _ => e.seq = e.seq.wrapping_add(1 + salt % 200),
    }
}

/// Applies `tamper` and returns the tampered list and the break it must be reported as, or
/// `None` when the tampering is a no-op for this chain (a swap in a one-entry chain).
fn apply(s: &Scenario, tamper: &Tamper) -> Option<(Vec<ChainedEntry>, ChainBreak)> {
    let mut entries = s.entries.clone();
    let n = entries.len();
    let brk = |seq: usize, kind| ChainBreak {
        seq: seq as u64,
        kind,
    };
    let expected = match tamper {
        Tamper::Modify { at, field, salt } => {
            let i = at.index(n);
            modify(&mut entries[i], *field, *salt);
            brk(i + 1, BreakKind::Modified)
        }
        Tamper::Delete { at } => {
            let i = at.index(n);
            entries.remove(i);
            // A deleted last entry is a truncated tail: nothing tells the two apart.
            brk(
                i + 1,
                if i + 1 == n {
                    BreakKind::Truncated
                } else {
                    BreakKind::Deleted
                },
            )
        }
        Tamper::Insert { at, after, forged } => {
            let i = at.index(n);
            let prev_hash = if i == 0 {
                ChainHash::GENESIS
            } else {
                entries[i - 1].hash
            };
            let seq = i as u64 + 1;
            let forged = ChainedEntry {
                seq,
                prev_hash,
                hash: entry_hash(&prev_hash, seq, forged),
                entry: forged.clone(),
            };
            entries.insert(if *after { i + 1 } else { i }, forged);
            brk(i + 1, BreakKind::Inserted)
        }
        Tamper::Swap { a, b } => {
            if n < 2 {
                return None;
            }
            let a = a.index(n);
            let mut b = b.index(n);
            if a == b {
                b = (a + 1) % n;
            }
            entries.swap(a, b);
            brk(a.min(b) + 1, BreakKind::Reordered)
        }
        Tamper::Truncate { at } => {
            let mut keep: Vec<usize> = s
                .checkpoints
                .iter()
                .map(|cp| cp.seq as usize)
                .filter(|seq| *seq < n)
                .collect();
            keep.push(0);
            let keep = keep[at.index(keep.len())];
            entries.truncate(keep);
            brk(keep + 1, BreakKind::Truncated)
        }
    };
    Some((entries, expected))
}

proptest! {
    // Ed25519 is slow in unoptimized test builds; each case verifies its chain seven times.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_single_tampering_is_detected_located_and_classified(
        s in arb_scenario(),
        tampers in arb_tampers(),
    ) {
        let key = key(1).verifying_key();
        let report = verify(org(1), &s.entries, &s.checkpoints, &key);
        prop_assert!(report.is_ok(), "{:?}", report);
        prop_assert_eq!(report.verified_through, s.entries.len() as u64);
        for tamper in &tampers {
            if let Some((entries, expected)) = apply(&s, tamper) {
                let report = verify(org(1), &entries, &s.checkpoints, &key);
                prop_assert_eq!(report.broken, Some(expected), "{:?} gave {:?}", tamper, report);
            }
        }
    }

    #[test]
    fn exports_survive_json(s in arb_scenario()) {
        let export = AuditExport { org: org(1), entries: s.entries, checkpoints: s.checkpoints };
        let json = serde_json::to_string(&export).unwrap();
        let back: AuditExport = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &export);
        let report = back.verify(&key(1).verifying_key());
        prop_assert!(report.is_ok(), "{:?}", report);
    }
}
