use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::roles::{Effective, OrgRole};

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read, list, inspect, stream (stats, log tail, events).
    View,
    /// Create a new one.
    Create,
    /// Change an existing one (including resolving a violation, changing a member's role).
    Update,
    /// Remove one (including revoking a token or an invitation, pruning).
    Delete,
    /// Run-time operations that change no definition: start, stop, restart, connect a
    /// container to a network, apply or test a proxy config, renew a certificate, send a test
    /// alert.
    Operate,
    /// Run a command inside a container.
    Exec,
    /// Export in bulk (CSV/NDJSON logs, audit exports).
    Export,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 7] = [
        Action::View,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Operate,
        Action::Exec,
        Action::Export,
    ];

    /// Whether the action changes anything (everything but view and export).
    pub fn is_mutation(self) -> bool {
        !matches!(self, Action::View | Action::Export)
    }

    /// The action's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Operate => "operate",
            Action::Exec => "exec",
            Action::Export => "export",
        }
    }
}

/// Everything the API acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// The organization itself (create, rename, delete).
    Organization,
    /// The organization's settings (limits, retention, defaults).
    OrgSettings,
    /// The organization's plan, invoices and payment.
    Billing,
    /// SSO configuration (OIDC, SAML, LDAP).
    SsoSettings,
    /// User accounts.
    User,
    /// Memberships of users in the organization.
    Member,
    /// Invitations to join the organization.
    Invitation,
    /// Personal API tokens.
    ApiToken,
    /// Agent enrollment tokens.
    EnrollmentToken,
    /// Enrolled agents (Docker hosts).
    Agent,
    /// Containers on an agent.
    Container,
    /// Compose stacks on an agent.
    Stack,
    /// Docker networks on an agent.
    Network,
    /// Docker images on an agent.
    Image,
    /// Docker volumes on an agent.
    Volume,
    /// Proxy hosts, redirection hosts, the default host and access lists.
    ProxyHost,
    /// TLS certificates (Let's Encrypt and uploaded).
    Certificate,
    /// Central logs.
    Log,
    /// The event inventory.
    Event,
    /// Alert rules, channels and history.
    Alert,
    /// Policies and policy templates.
    Policy,
    /// Recorded policy violations.
    Violation,
    /// The audit log and its verification.
    Audit,
}

impl Resource {
    /// Every resource.
    pub const ALL: [Resource; 23] = [
        Resource::Organization,
        Resource::OrgSettings,
        Resource::Billing,
        Resource::SsoSettings,
        Resource::User,
        Resource::Member,
        Resource::Invitation,
        Resource::ApiToken,
        Resource::EnrollmentToken,
        Resource::Agent,
        Resource::Container,
        Resource::Stack,
        Resource::Network,
        Resource::Image,
        Resource::Volume,
        Resource::ProxyHost,
        Resource::Certificate,
        Resource::Log,
        Resource::Event,
        Resource::Alert,
        Resource::Policy,
        Resource::Violation,
        Resource::Audit,
    ];

    /// The resource's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Organization => "organization",
            Resource::OrgSettings => "org_settings",
            Resource::Billing => "billing",
            Resource::SsoSettings => "sso_settings",
            Resource::User => "user",
            Resource::Member => "member",
            Resource::Invitation => "invitation",
            Resource::ApiToken => "api_token",
            Resource::EnrollmentToken => "enrollment_token",
            Resource::Agent => "agent",
            Resource::Container => "container",
            Resource::Stack => "stack",
            Resource::Network => "network",
            Resource::Image => "image",
            Resource::Volume => "volume",
            Resource::ProxyHost => "proxy_host",
            Resource::Certificate => "certificate",
            Resource::Log => "log",
            Resource::Event => "event",
            Resource::Alert => "alert",
            Resource::Policy => "policy",
            Resource::Violation => "violation",
            Resource::Audit => "audit",
        }
    }
}

// Short names for the table below.
const V: Option<Effective> = Some(Effective::Org(OrgRole::Viewer));
const O: Option<Effective> = Some(Effective::Org(OrgRole::Operator));
const A: Option<Effective> = Some(Effective::Org(OrgRole::Admin));
const W: Option<Effective> = Some(Effective::Org(OrgRole::Owner));
const S: Option<Effective> = Some(Effective::SuperAdmin);
const X: Option<Effective> = None;

/// The least role each action needs, in the order of [`Action::ALL`]:
/// view, create, update, delete, operate, exec, export. `X` means "not an action on this
/// resource" and is refused for everyone.
fn row(resource: Resource) -> [Option<Effective>; 7] {
    use Resource as R;
    match resource {
        //                   view create update delete operate exec export
        R::Organization => [V, S, W, W, X, X, X],
        R::OrgSettings => [V, X, A, X, X, X, X],
        R::Billing => [A, X, W, X, X, X, X],
        R::SsoSettings => [A, X, A, X, X, X, X],
        // Accounts belong to their owners: an organization sees its members' accounts, and only
        // a super admin creates, changes or deletes one (the account itself uses /auth/me).
        R::User => [A, S, S, S, X, X, X],
        // Members join by accepting an invitation, never by being added.
        R::Member => [V, X, A, A, X, X, X],
        R::Invitation => [A, A, X, A, X, X, X],
        R::ApiToken => [V, O, O, O, X, X, X],
        R::EnrollmentToken => [A, A, X, A, X, X, X],
        R::Agent => [V, A, A, A, X, X, X],
        R::Container => [V, O, O, A, O, O, X],
        R::Stack => [V, O, O, A, O, X, X],
        R::Network => [V, A, A, A, O, X, X],
        R::Image => [V, O, X, A, X, X, X],
        R::Volume => [V, O, X, A, X, X, X],
        R::ProxyHost => [V, O, O, O, O, X, X],
        R::Certificate => [V, O, O, O, O, X, X],
        R::Log => [V, X, X, X, X, X, O],
        R::Event => [V, X, X, X, X, X, O],
        R::Alert => [V, A, A, A, O, X, X],
        R::Policy => [V, A, A, A, X, X, X],
        R::Violation => [V, X, A, X, X, X, X],
        R::Audit => [A, X, X, X, X, X, A],
    }
}

fn index(action: Action) -> usize {
    match action {
        Action::View => 0,
        Action::Create => 1,
        Action::Update => 2,
        Action::Delete => 3,
        Action::Operate => 4,
        Action::Exec => 5,
        Action::Export => 6,
    }
}

/// The least role that may perform `action` on `resource`, or `None` when nobody may.
pub fn required_role(action: Action, resource: Resource) -> Option<Effective> {
    row(resource)[index(action)]
}

/// Whether `role` may perform `action` on `resource`.
///
/// This answers the role question only. Rules about *which* one (a user's own API tokens, the
/// last owner of an organization) are the service's to enforce on top.
pub fn can(role: impl Into<Effective>, action: Action, resource: Resource) -> bool {
    let role = role.into();
    required_role(action, resource).is_some_and(|least| role >= least)
}

/// The matrix as a Markdown table, one row per resource, naming the least role per action.
pub fn matrix_markdown() -> String {
    let mut out = String::from("| resource |");
    for action in Action::ALL {
        let _ = write!(out, " {} |", action.as_str());
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Action::ALL.len()));
    out.push('\n');
    for resource in Resource::ALL {
        let _ = write!(out, "| {} |", resource.as_str());
        for action in Action::ALL {
            let cell = match required_role(action, resource) {
                None => "—",
                Some(Effective::SuperAdmin) => "super_admin",
                Some(Effective::Org(role)) => role.as_str(),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    fn effective() -> impl Strategy<Value = Effective> {
        prop_oneof![
            select(OrgRole::ALL.to_vec()).prop_map(Effective::Org),
            Just(Effective::SuperAdmin),
        ]
    }

    fn check(role: OrgRole, action: Action, resource: Resource, expected: bool) {
        assert_eq!(
            can(role, action, resource),
            expected,
            "{role} {action:?} {resource:?}"
        );
    }

    #[test]
    fn representative_cells() {
        use Action::*;
        use OrgRole::*;
        use Resource::*;
        check(Viewer, View, Container, true);
        check(Viewer, Operate, Container, false);
        check(Operator, Operate, Container, true);
        check(Operator, Exec, Container, true);
        check(Operator, Delete, Container, false);
        check(Admin, Delete, Container, true);
        check(Owner, Exec, Certificate, false);
        check(Admin, Update, Billing, false);
        check(Owner, Update, Billing, true);
        check(Owner, Create, Organization, false);
        check(Operator, View, Audit, false);
        check(Admin, Export, Audit, true);
        check(Operator, Create, EnrollmentToken, false);
        assert!(can(Effective::SuperAdmin, Create, Organization));
    }

    proptest! {
        #[test]
        fn a_higher_role_never_lacks_a_lower_roles_permission(
            a in effective(), b in effective(),
            action in select(Action::ALL.to_vec()), resource in select(Resource::ALL.to_vec()),
        ) {
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(!can(low, action, resource) || can(high, action, resource));
        }

        #[test]
        fn a_viewer_can_mutate_nothing(
            action in select(Action::ALL.to_vec()), resource in select(Resource::ALL.to_vec()),
        ) {
            prop_assert!(!(action.is_mutation() && can(OrgRole::Viewer, action, resource)));
        }
    }

    #[test]
    fn every_resource_can_be_viewed_by_someone_and_super_admin_can_do_every_defined_action() {
        for resource in Resource::ALL {
            assert!(
                required_role(Action::View, resource).is_some(),
                "{resource:?}"
            );
            for action in Action::ALL {
                assert_eq!(
                    can(Effective::SuperAdmin, action, resource),
                    required_role(action, resource).is_some()
                );
            }
        }
    }

    #[test]
    fn markdown_names_every_resource() {
        let md = matrix_markdown();
        for resource in Resource::ALL {
            assert!(md.contains(&format!("| {} |", resource.as_str())));
        }
        assert_eq!(md.lines().count(), Resource::ALL.len() + 2);
    }
}
