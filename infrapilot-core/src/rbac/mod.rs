//! Tenancy roles and the permission matrix.
//!
//! # One model for two role sets
//!
//! The product has two kinds of role, and this module makes them one model:
//!
//! - **Organization roles**, held per membership: [`OrgRole::Owner`] > [`OrgRole::Admin`] >
//!   [`OrgRole::Operator`] > [`OrgRole::Viewer`]. `member` (the organization seed's name) is the
//!   same role as the platform seed's `operator`: it runs workloads but manages no people or
//!   settings. Both spellings deserialize to [`OrgRole::Operator`].
//! - **The platform role** [`PlatformRole::SuperAdmin`], held by an account rather than a
//!   membership, for operating the whole installation (every organization, every user, the
//!   edition and billing). The platform seed's `admin`, `operator` and `viewer` are organization
//!   roles in this model: in the single-organization community edition they are exactly the
//!   roles people hold in that one organization.
//!
//! An [`Effective`] role is what a request acts with: a super admin acts as
//! [`Effective::SuperAdmin`] in every organization, everyone else with their membership role,
//! capped by the token they use (an API token is never stronger than its creator).
//!
//! # The matrix
//!
//! [`can`] answers whether a role may perform an [`Action`] on a [`Resource`]. The matrix is a
//! table of the *least* role each pair needs ([`required_role`]), so a higher role can never
//! lack a permission a lower one has. Pairs that make no sense (exec on a certificate) are
//! refused for every role. The table is rendered for people by [`matrix_markdown`].
//!
//! # Memberships
//!
//! [`may_change_member`] says *which* members a role may act on: none whose role is above its
//! own, and no role above its own given. Accounts (credentials, MFA, disabled) are not a
//! membership's: only the account itself or a super admin changes them, which the matrix says
//! by giving [`Resource::User`] changes to [`Effective::SuperAdmin`] alone.

mod matrix;
mod membership;
mod roles;

pub use matrix::{Action, Resource, can, matrix_markdown, required_role};
pub use membership::{MemberChange, MemberRefusal, may_change_member};
pub use roles::{Effective, OrgRole, PlatformRole};
