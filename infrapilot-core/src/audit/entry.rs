//! One audited event, before it is placed in a chain.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{AuditAction, ResourceId, ResourceKind};
use crate::ids::{AgentId, ApiTokenId, OrgId, UserId};

/// One audited event: who did what to which resource, from where, and how it ended.
///
/// Every field is covered by the chain hash (see [`super::canonical`]), so none of them can be
/// changed after the entry was chained without the change being detected. There is no
/// invariant across fields, so they are public; each field's type validates itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// When it happened, in microseconds since the Unix epoch (UTC).
    ///
    /// Microseconds because that is what PostgreSQL's `timestamptz` and SQLite's integer
    /// columns keep exactly: a finer unit would be rounded on the way to the database and the
    /// entry read back would no longer match its hash. Store it as `timestamptz` (or
    /// `BIGINT`), never as floating-point seconds.
    pub time_us: i64,
    /// The organization whose chain the entry belongs to.
    pub org: OrgId,
    /// Who did it.
    pub actor: Actor,
    /// What was done, e.g. `proxy_host.create`.
    pub action: AuditAction,
    /// What it was done to.
    pub resource: Resource,
    /// The client's IP address, when the action came over the network.
    pub source_ip: Option<IpAddr>,
    /// How it ended.
    pub outcome: Outcome,
    /// Free-form context (the changed fields, an error message, …).
    ///
    /// Hashed in the canonical JSON form of [`super::canonical_json`], so the key order a
    /// database hands back does not matter.
    pub details: serde_json::Value,
}

/// Who performed an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// A personal API token (the user behind it is recorded with the token).
    ApiToken(ApiTokenId),
    /// An enrolled agent acting on its own (reporting, renewing a certificate).
    Agent(AgentId),
    /// The control plane itself (scheduled jobs, migrations).
    System,
}

/// The resource an audited action touched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// The kind of resource, e.g. `proxy_host`.
    pub kind: ResourceKind,
    /// Its id, usually a UUID.
    pub id: ResourceId,
}

impl Resource {
    /// A resource of `kind` with `id`.
    pub fn new(kind: ResourceKind, id: ResourceId) -> Self {
        Self { kind, id }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was carried out.
    Success,
    /// It was allowed but failed (validation, an upstream error, …).
    Failure,
    /// Authorization refused it.
    Denied,
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn json_shape() {
        let entry = AuditEntry {
            time_us: 1_700_000_000_123_456,
            org: OrgId::from_uuid(Uuid::from_u128(1)),
            actor: Actor::User(UserId::from_uuid(Uuid::from_u128(2))),
            action: AuditAction::parse("proxy_host.create").unwrap(),
            resource: Resource::new(
                ResourceKind::parse("proxy_host").unwrap(),
                ResourceId::parse("web").unwrap(),
            ),
            source_ip: Some("10.0.0.1".parse().unwrap()),
            outcome: Outcome::Denied,
            details: serde_json::json!({"b": 1, "a": [true, null]}),
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["actor"]["type"], "user");
        assert_eq!(json["outcome"], "denied");
        assert_eq!(json["source_ip"], "10.0.0.1");
        assert_eq!(
            serde_json::from_value::<AuditEntry>(json.clone()).unwrap(),
            entry
        );
        let system = serde_json::to_value(Actor::System).unwrap();
        assert_eq!(system, serde_json::json!({"type": "system"}));
        let mut bad = json;
        bad["action"] = "Bad Action".into();
        assert!(serde_json::from_value::<AuditEntry>(bad).is_err());
    }
}
