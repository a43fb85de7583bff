// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

//! How fast an audit chain verifies: entries per second for a 10,000-entry chain with a
//! checkpoint every 1,000 entries (criterion reports the throughput as elements/s).

use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use infrapilot_core::audit::{
    Actor, AuditAction, AuditEntry, ChainedEntry, Checkpoint, Outcome, Resource, ResourceId,
    ResourceKind, append, verify,
};
use infrapilot_core::ids::{OrgId, UserId};
use serde_json::json;
use uuid::Uuid;

const ENTRIES: u64 = 10_000;

fn chain(org: OrgId, key: &SigningKey) -> Option<(Vec<ChainedEntry>, Vec<Checkpoint>)> {
    let action = AuditAction::parse("proxy_host.update").ok()?;
    let kind = ResourceKind::parse("proxy_host").ok()?;
    let mut entries: Vec<ChainedEntry> = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 0..ENTRIES {
        let entry = AuditEntry {
            time_us: 1_700_000_000_000_000 + i as i64 * 1_000,
            org,
            actor: Actor::User(UserId::from_uuid(Uuid::from_u128(u128::from(i % 7)))),
            action: action.clone(),
            resource: Resource::new(kind.clone(), ResourceId::parse(&format!("host-{i}")).ok()?),
            source_ip: Some(IpAddr::from([
                10,
                0,
                (i / 256 % 256) as u8,
                (i % 256) as u8,
            ])),
            outcome: Outcome::Success,
            details: json!({
                "changed": ["upstream", "certificate"],
                "upstream": {"from": "http://app:8080", "to": "http://app:8081"},
                "request_id": format!("req-{i}"),
            }),
        };
        let next = append(entries.last(), entry).ok()?;
        if (i + 1) % 1_000 == 0 {
            checkpoints.push(Checkpoint::sign(&next, i as i64, key));
        }
        entries.push(next);
    }
    Some((entries, checkpoints))
}

fn verify_chain(c: &mut Criterion) {
    let org = OrgId::from_uuid(Uuid::from_u128(1));
    let key = SigningKey::from_bytes(&[7; 32]);
    let Some((entries, checkpoints)) = chain(org, &key) else {
        eprintln!("could not build the benchmark chain");
        return;
    };
    let verifying = key.verifying_key();
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(ENTRIES));
    group.bench_function("verify_10000_entries", |b| {
        b.iter(|| {
            let report = verify(org, &entries, &checkpoints, &verifying);
            assert!(report.is_ok());
            report
        })
    });
    group.finish();
}

criterion_group!(benches, verify_chain);
criterion_main!(benches);
