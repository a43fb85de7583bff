//! Who may act on whose membership.
//!
//! The matrix says which roles may change members at all ([`super::can`] with
//! [`super::Resource::Member`]); this says *which* members. One rule covers grants, role
//! changes and removals: a role never reaches above itself. An actor may act on a member whose
//! role is at most its own and may give a role at most its own, so only an owner grants,
//! changes or removes the owner role, and an admin manages admins, operators and viewers. A
//! super admin may act on every member. Rules that count rows (the last owner, the member
//! limit) are the service's, which holds the lock that makes counting safe.

use super::roles::{Effective, OrgRole};

/// A change to one membership, as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// A new membership with this role (an invitation: the invitee joins by accepting it).
    Grant(OrgRole),
    /// A member holding `from` gets `to`.
    Change {
        /// The member's current role.
        from: OrgRole,
        /// The role they get.
        to: OrgRole,
    },
    /// A member holding this role is removed.
    Remove(OrgRole),
}

/// Why [`may_change_member`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemberRefusal {
    /// The member's role is above the actor's.
    #[error(
        "the member is {target}, above your role ({actor}); only a higher role can change them"
    )]
    TargetAbove {
        /// The member's role.
        target: OrgRole,
        /// The actor's role.
        actor: OrgRole,
    },
    /// The role to give is above the actor's.
    #[error("you cannot give the {role} role: it is above your own ({actor})")]
    GrantAbove {
        /// The role asked for.
        role: OrgRole,
        /// The actor's role.
        actor: OrgRole,
    },
}

/// Whether `actor` may make `change`: the member's current role and the role given are both at
/// most the actor's own.
pub fn may_change_member(actor: Effective, change: MemberChange) -> Result<(), MemberRefusal> {
    let Effective::Org(actor) = actor else {
        return Ok(());
    };
    let (target, given) = match change {
        MemberChange::Grant(role) => (None, Some(role)),
        MemberChange::Change { from, to } => (Some(from), Some(to)),
        MemberChange::Remove(role) => (Some(role), None),
    };
    if let Some(target) = target.filter(|t| *t > actor) {
        return Err(MemberRefusal::TargetAbove { target, actor });
    }
    if let Some(role) = given.filter(|r| *r > actor) {
        return Err(MemberRefusal::GrantAbove { role, actor });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    fn change() -> impl Strategy<Value = MemberChange> {
        let role = || select(OrgRole::ALL.to_vec());
        prop_oneof![
            role().prop_map(MemberChange::Grant),
            (role(), role()).prop_map(|(from, to)| MemberChange::Change { from, to }),
            role().prop_map(MemberChange::Remove),
        ]
    }

    /// The model: every role the change touches is at most the actor's.
    fn model(actor: OrgRole, change: MemberChange) -> bool {
        let touched: &[OrgRole] = match &change {
            MemberChange::Grant(r) | MemberChange::Remove(r) => std::slice::from_ref(r),
            MemberChange::Change { from, to } => &[*from, *to],
        };
        touched.iter().all(|r| *r <= actor)
    }

    #[test]
    fn every_actor_and_change_matches_the_model() {
        use OrgRole::*;
        for actor in OrgRole::ALL {
            for a in OrgRole::ALL {
                for b in OrgRole::ALL {
                    for change in [
                        MemberChange::Grant(a),
                        MemberChange::Remove(a),
                        MemberChange::Change { from: a, to: b },
                    ] {
                        assert_eq!(
                            may_change_member(Effective::Org(actor), change).is_ok(),
                            model(actor, change),
                            "{actor} {change:?}"
                        );
                    }
                }
            }
        }
        // The cases people ask about, spelled out.
        let admin = Effective::Org(Admin);
        assert!(may_change_member(admin, MemberChange::Remove(Owner)).is_err());
        assert!(may_change_member(admin, MemberChange::Grant(Owner)).is_err());
        assert!(
            may_change_member(
                admin,
                MemberChange::Change {
                    from: Admin,
                    to: Viewer
                }
            )
            .is_ok()
        );
        assert!(may_change_member(Effective::Org(Owner), MemberChange::Remove(Owner)).is_ok());
    }

    proptest! {
        #[test]
        fn a_super_admin_may_make_every_change(change in change()) {
            prop_assert!(may_change_member(Effective::SuperAdmin, change).is_ok());
        }

        #[test]
        fn refusals_name_a_role_above_the_actor(actor in select(OrgRole::ALL.to_vec()), change in change()) {
            match may_change_member(Effective::Org(actor), change) {
                Ok(()) => prop_assert!(model(actor, change)),
                Err(MemberRefusal::TargetAbove { target, actor: a }) => prop_assert!(target > a && a == actor),
                Err(MemberRefusal::GrantAbove { role, actor: a }) => prop_assert!(role > a && a == actor),
            }
        }
    }
}
