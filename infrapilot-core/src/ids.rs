//! Typed identifiers.
//!
//! Each entity has its own id type so that an agent id can never be passed where an
//! organization id is expected. Ids are UUIDs; the core never generates them (that needs
//! randomness or a clock), the shells do and wrap them with [`OrgId::from_uuid`] and friends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID produced by the caller.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID behind this id.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = crate::values::ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    crate::values::ValueError::new(stringify!($name), s, "is not a UUID")
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    )*};
}

typed_id! {
    /// Identifies an organization (a tenant).
    OrgId,
    /// Identifies a user account.
    UserId,
    /// Identifies an enrolled agent (one Docker host).
    AgentId,
    /// Identifies a policy.
    PolicyId,
    /// Identifies a recorded policy violation.
    ViolationId,
    /// Identifies a proxy host, redirection host or default host.
    ProxyHostId,
    /// Identifies a TLS certificate (Let's Encrypt or uploaded).
    CertificateId,
    /// Identifies an access list (allow/deny CIDRs and basic-auth users).
    AccessListId,
    /// Identifies an enrollment token.
    EnrollmentTokenId,
    /// Identifies a personal API token.
    ApiTokenId,
    /// Identifies an invitation to join an organization.
    InvitationId,
    /// Identifies an alert rule.
    AlertRuleId,
    /// Identifies an alert notification channel.
    AlertChannelId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = AgentId::from_uuid(Uuid::from_u128(0x1234));
        let text = id.to_string();
        assert_eq!(text.parse::<AgentId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id);
    }

    #[test]
    fn a_bad_id_names_its_kind() {
        let err = "nope".parse::<OrgId>().unwrap_err();
        assert_eq!(err.field(), "OrgId");
        assert_eq!(err.value(), "nope");
    }
}
