//! Builders shared by the audit tests.

use std::net::IpAddr;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::ids::{AgentId, ApiTokenId, OrgId, UserId};

pub fn org(n: u128) -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(n))
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// A plain entry whose content depends on `salt`.
pub fn entry(org: OrgId, salt: u64) -> AuditEntry {
    AuditEntry {
        time_us: 1_700_000_000_000_000 + salt as i64,
        org,
        actor: Actor::User(UserId::from_uuid(Uuid::from_u128(u128::from(salt)))),
        action: AuditAction::parse("proxy_host.update").unwrap(),
        resource: Resource::new(
            ResourceKind::parse("proxy_host").unwrap(),
            ResourceId::parse(&format!("host-{salt}")).unwrap(),
        ),
        source_ip: Some(IpAddr::from([10, 0, 0, (salt % 250) as u8])),
        outcome: Outcome::Success,
        details: json!({"salt": salt, "changed": ["upstream"]}),
    }
}

/// Chains `entries` in order.
pub fn build_chain(entries: Vec<AuditEntry>) -> Vec<ChainedEntry> {
    let mut chain: Vec<ChainedEntry> = Vec::with_capacity(entries.len());
    for e in entries {
        let next = append(chain.last(), e).unwrap();
        chain.push(next);
    }
    chain
}

pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite, not -0", |f| {
                f.is_finite() && !(*f == 0.0 && f.is_sign_negative())
            })
            .prop_map(Value::from),
        "\\PC{0,12}|[\\x00-\\x1f\"\\\\]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

pub fn arb_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        Just(Actor::System),
        arb_uuid().prop_map(|u| Actor::User(UserId::from_uuid(u))),
        arb_uuid().prop_map(|u| Actor::ApiToken(ApiTokenId::from_uuid(u))),
        arb_uuid().prop_map(|u| Actor::Agent(AgentId::from_uuid(u))),
    ]
}

pub fn arb_entry(org: OrgId) -> impl Strategy<Value = AuditEntry> {
    (
        any::<i64>(),
        arb_actor(),
        "[a-z][a-z_]{0,8}\\.[a-z]{1,8}",
        "[a-z][a-z0-9_]{0,10}",
        "[^\\p{Cc}]{1,20}",
        proptest::option::of(any::<IpAddr>()),
        prop_oneof![
            Just(Outcome::Success),
            Just(Outcome::Failure),
            Just(Outcome::Denied)
        ],
        arb_json(),
    )
        .prop_map(
            move |(time_us, actor, action, kind, id, source_ip, outcome, details)| AuditEntry {
                time_us,
                org,
                actor,
                action: AuditAction::parse(&action).unwrap(),
                resource: Resource::new(
                    ResourceKind::parse(&kind).unwrap(),
                    ResourceId::parse(&id).unwrap(),
                ),
                source_ip,
                outcome,
                details,
            },
        )
}
