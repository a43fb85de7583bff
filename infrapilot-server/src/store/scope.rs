use infrapilot_core::ids::{AgentId, ApiTokenId, OrgId, UserId};
use infrapilot_core::rbac::{Action, Effective, Resource, can};

/// Who is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (browser session).
    User(UserId),
    /// A user's personal API token.
    ApiToken {
        /// The token's owner.
        user: UserId,
        /// The token.
        token: ApiTokenId,
    },
    /// An enrolled agent acting on its own (enrollment, reports).
    Agent(AgentId),
    /// The server itself (setup, jobs).
    System,
}

impl Actor {
    /// The user behind the actor, if any.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Actor::User(user) | Actor::ApiToken { user, .. } => Some(*user),
            Actor::Agent(_) | Actor::System => None,
        }
    }

    /// A stable text form for audit entries: `user:<id>`, `api_token:<id>`, `system`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::User(user) => format!("user:{user}"),
            Actor::ApiToken { token, .. } => format!("api_token:{token}"),
            Actor::Agent(agent) => format!("agent:{agent}"),
            Actor::System => "system".to_owned(),
        }
    }
}

/// The right to act inside one organization, with one effective role.
///
/// Made only by the authentication layer from a checked membership, or by flows that have
/// just created or proven the organization (setup, invitation acceptance, enrollment). The
/// constructor is crate-private: handlers and other crates receive scopes, they never make
/// them from a bare id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgScope {
    org: OrgId,
    actor: Actor,
    role: Effective,
}

impl OrgScope {
    pub(crate) fn new(org: OrgId, actor: Actor, role: Effective) -> Self {
        Self { org, actor, role }
    }

    /// The scope the server's own work acts in for `org` (relaying commands, storing agents'
    /// reports and logs, evaluating alerts): the system, with a viewer's role.
    pub(crate) fn system(org: OrgId) -> Self {
        Self::new(
            org,
            Actor::System,
            Effective::Org(infrapilot_core::rbac::OrgRole::Viewer),
        )
    }

    /// The organization.
    pub fn org(&self) -> OrgId {
        self.org
    }

    /// Who acts.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The role they act with.
    pub fn role(&self) -> Effective {
        self.role
    }

    /// Whether the role allows `action` on `resource`.
    pub fn can(&self, action: Action, resource: Resource) -> bool {
        can(self.role, action, resource)
    }
}
