//! What a policy is asked about (an [`ActionKind`]) and what it does when it fires
//! (a [`PolicyAction`]), and the overall [`Decision`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The operation a caller is about to perform on a resource. Policies select the kinds they
/// apply to with `applies_to.actions`.
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
pub enum ActionKind {
    /// Creating a container.
    Create,
    /// Starting a stopped container.
    Start,
    /// Restarting a running container.
    Restart,
    /// Stopping a container.
    Stop,
    /// Removing a container.
    Delete,
    /// Running a command inside a container.
    Exec,
    /// Changing a container's configuration (recreate with new settings).
    Update,
    /// Creating a proxy host.
    CreateProxy,
    /// Changing a proxy host.
    UpdateProxy,
}

impl ActionKind {
    /// Every kind, in declaration order.
    pub const ALL: [ActionKind; 9] = [
        ActionKind::Create,
        ActionKind::Start,
        ActionKind::Restart,
        ActionKind::Stop,
        ActionKind::Delete,
        ActionKind::Exec,
        ActionKind::Update,
        ActionKind::CreateProxy,
        ActionKind::UpdateProxy,
    ];

    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Start => "start",
            ActionKind::Restart => "restart",
            ActionKind::Stop => "stop",
            ActionKind::Delete => "delete",
            ActionKind::Exec => "exec",
            ActionKind::Update => "update",
            ActionKind::CreateProxy => "create_proxy",
            ActionKind::UpdateProxy => "update_proxy",
        }
    }

    /// A bit unique to this kind, for the compiled `applies_to` set.
    pub(crate) const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a policy fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Refuse the operation.
    Block,
    /// Allow the operation but show the user a warning.
    Warn,
    /// Allow the operation silently; the violation is only recorded (audit log).
    Audit,
}

impl PolicyAction {
    /// The decision this action contributes on its own.
    pub const fn decision(self) -> Decision {
        match self {
            PolicyAction::Block => Decision::Block,
            PolicyAction::Warn => Decision::Warn,
            PolicyAction::Audit => Decision::Allow,
        }
    }
}

/// The overall answer for one operation. Ordered so that the strictest is the greatest:
/// `Allow < Warn < Block`, and the decision of a response is the maximum over its violations.
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
pub enum Decision {
    /// Go ahead (no violation, or only `audit` ones).
    Allow,
    /// Go ahead, but at least one `warn` policy fired.
    Warn,
    /// Refuse: at least one `block` policy fired.
    Block,
}
