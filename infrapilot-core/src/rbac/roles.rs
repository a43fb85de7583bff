use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::values::ValueError;

/// A role inside one organization, from least to most powerful.
///
/// The derived ordering is the power ordering: `Viewer < Operator < Admin < Owner`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrgRole {
    /// Reads everything operational; changes nothing.
    Viewer,
    /// Runs workloads: container lifecycle and exec, proxy hosts, certificates, logs.
    /// The organization seed calls this role `member`.
    #[serde(alias = "member")]
    Operator,
    /// Manages the organization: people, agents, policies, alerts, SSO, settings.
    Admin,
    /// Everything an admin may do, plus billing and deleting the organization.
    Owner,
}

impl OrgRole {
    /// Every role, weakest first.
    pub const ALL: [OrgRole; 4] = [
        OrgRole::Viewer,
        OrgRole::Operator,
        OrgRole::Admin,
        OrgRole::Owner,
    ];

    /// The role's stable name, as stored and sent over the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Viewer => "viewer",
            OrgRole::Operator => "operator",
            OrgRole::Admin => "admin",
            OrgRole::Owner => "owner",
        }
    }
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgRole {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(OrgRole::Viewer),
            "operator" | "member" => Ok(OrgRole::Operator),
            "admin" => Ok(OrgRole::Admin),
            "owner" => Ok(OrgRole::Owner),
            _ => Err(ValueError::new(
                "role",
                s,
                "must be one of viewer, operator, admin, owner",
            )),
        }
    }
}

/// A role over the whole installation, held by an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformRole {
    /// Operates the installation: every organization and user, editions and billing.
    SuperAdmin,
}

/// The role a request acts with in one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    /// A membership role (possibly capped by an API token).
    Org(OrgRole),
    /// A super admin, who may do everything everywhere.
    SuperAdmin,
}

impl Effective {
    /// The effective role of an account with `platform` role and `membership` in the
    /// organization at hand, acting through a token capped at `cap` (if any).
    ///
    /// Returns `None` when the account has no business in the organization at all. A cap only
    /// ever lowers a role; a super admin acting through a capped token acts with the cap.
    pub fn resolve(
        platform: Option<PlatformRole>,
        membership: Option<OrgRole>,
        cap: Option<OrgRole>,
    ) -> Option<Effective> {
        let base = match (platform, membership) {
            (Some(PlatformRole::SuperAdmin), _) => Effective::SuperAdmin,
            (None, Some(role)) => Effective::Org(role),
            (None, None) => return None,
        };
        Some(match cap {
            None => base,
            Some(cap) => match base {
                Effective::SuperAdmin => Effective::Org(cap),
                Effective::Org(role) => Effective::Org(role.min(cap)),
            },
        })
    }
}

impl From<OrgRole> for Effective {
    fn from(role: OrgRole) -> Self {
        Effective::Org(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_is_operator() {
        assert_eq!("member".parse::<OrgRole>().unwrap(), OrgRole::Operator);
        let r: OrgRole = serde_json::from_str("\"member\"").unwrap();
        assert_eq!(r, OrgRole::Operator);
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"operator\"");
        assert!(
            "root"
                .parse::<OrgRole>()
                .unwrap_err()
                .reason()
                .contains("one of")
        );
    }

    #[test]
    fn resolve_caps_and_memberships() {
        use OrgRole::*;
        assert_eq!(Effective::resolve(None, None, None), None);
        assert_eq!(
            Effective::resolve(None, Some(Admin), None),
            Some(Effective::Org(Admin))
        );
        assert_eq!(
            Effective::resolve(None, Some(Admin), Some(Owner)),
            Some(Effective::Org(Admin))
        );
        assert_eq!(
            Effective::resolve(None, Some(Admin), Some(Viewer)),
            Some(Effective::Org(Viewer))
        );
        assert_eq!(
            Effective::resolve(Some(PlatformRole::SuperAdmin), None, None),
            Some(Effective::SuperAdmin)
        );
        assert_eq!(
            Effective::resolve(Some(PlatformRole::SuperAdmin), None, Some(Operator)),
            Some(Effective::Org(Operator))
        );
    }
}
