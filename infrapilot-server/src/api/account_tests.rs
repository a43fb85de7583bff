//! Accounts belong to their owners (SECURITY.md, classes 1 and 4), tried by enumeration.
//!
//! Every operation that touches an account, a membership or an invitation is tried by every
//! actor — a session of each organization role, an API token of each role, another
//! organization's owner, a member of two organizations with different roles, the super admin
//! — against every target: each member of the organization (so self, a lower, an equal and a
//! higher role, and the owners), a member of another organization only, and the super admin.
//! A small model says what each case must answer; after every case the answer is compared
//! with the model, and after every actor the organization's members, every account's state
//! and every password are compared with the model too, so a refused case that changed
//! something anyway fails. API tokens are also tried on every account and platform operation.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use infrapilot_core::rbac::{Effective, MemberChange, OrgRole, may_change_member};
use serde_json::{Value, json};

use super::http_tests::{PASSWORD, call, login};
use super::http_tests_support::{self as support, signup};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

/// The people of one world, by short name. `o1` … `v2` are organization A's members with the
/// role their letter says; `both` owns organization B and is a viewer in A; `c` owns
/// organization C only; `s` is the super admin (a member of none of them).
const MEMBERS_OF_A: [(&str, OrgRole); 9] = [
    ("o1", OrgRole::Owner),
    ("o2", OrgRole::Owner),
    ("a1", OrgRole::Admin),
    ("a2", OrgRole::Admin),
    ("p1", OrgRole::Operator),
    ("p2", OrgRole::Operator),
    ("v1", OrgRole::Viewer),
    ("v2", OrgRole::Viewer),
    ("both", OrgRole::Viewer),
];

/// Every target: A's members, `c` and the super admin.
const TARGETS: [&str; 11] = [
    "o1", "o2", "a1", "a2", "p1", "p2", "v1", "v2", "both", "c", "s",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Session,
    /// An API token of the person's, capped at this role.
    Token(OrgRole),
}

/// Every actor: (who, how they authenticate).
const ACTORS: [(&str, Via); 11] = [
    ("o1", Via::Session),
    ("a1", Via::Session),
    ("p1", Via::Session),
    ("v1", Via::Session),
    ("o1", Via::Token(OrgRole::Owner)),
    ("a1", Via::Token(OrgRole::Admin)),
    ("p1", Via::Token(OrgRole::Operator)),
    // Viewers cannot make API tokens: an operator's token capped at viewer.
    ("p2", Via::Token(OrgRole::Viewer)),
    ("c", Via::Session),
    ("both", Via::Session),
    ("s", Via::Session),
];

#[derive(Debug, Clone)]
struct Person {
    id: String,
    email: String,
}

/// One world: organization A and its people, and what the model says about them.
struct World {
    org: String,
    people: BTreeMap<&'static str, Person>,
    /// Roles in A, as the model has them.
    roles: BTreeMap<&'static str, OrgRole>,
    /// Accounts still present.
    deleted: Vec<&'static str>,
    /// Accounts that own an organization other than A.
    owns_elsewhere: Vec<&'static str>,
    /// The super admin's session, to undo what an allowed case changed.
    admin: String,
}

/// Invites `email` into `org` as `role` (by `inviter`) and returns the token.
async fn invite(state: &AppState, inviter: &str, org: &str, email: &str, role: OrgRole) -> String {
    support::invite(state, inviter, org, email, role.as_str()).await
}

/// Accepts an invitation signed in as `session`, or as a new account without one.
async fn accept(state: &AppState, token: &str, session: Option<&str>) -> String {
    let r = support::accept(state, token, session).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["user_id"].as_str().unwrap().to_owned()
}

async fn me_id(state: &AppState, session: &str) -> String {
    let r = call(state, "GET", "/api/v1/auth/me", Some(session), None, None).await;
    r.body["id"].as_str().unwrap().to_owned()
}

async fn build_world(state: &AppState, n: usize, admin: &str) -> World {
    let email = |who: &str| format!("{who}.{n}@example.com");
    let (o1, org) = signup(state, &email("o1"), &format!("A{n}")).await;
    let (both, _) = signup(state, &email("both"), &format!("B{n}")).await;
    let (c, _) = signup(state, &email("c"), &format!("C{n}")).await;
    let owner = login(state, &email("o1")).await;
    let mut people = BTreeMap::new();
    for (who, id) in [("o1", o1), ("both", both), ("c", c)] {
        people.insert(
            who,
            Person {
                id,
                email: email(who),
            },
        );
    }
    for (who, role) in MEMBERS_OF_A {
        if people.contains_key(who) && who != "both" {
            continue;
        }
        let token = invite(state, &owner, &org, &email(who), role).await;
        let id = if who == "both" {
            let session = login(state, &email(who)).await;
            accept(state, &token, Some(&session)).await
        } else {
            accept(state, &token, None).await
        };
        people.insert(
            who,
            Person {
                id,
                email: email(who),
            },
        );
    }
    people.insert(
        "s",
        Person {
            id: me_id(state, admin).await,
            email: "admin@example.com".to_owned(),
        },
    );
    World {
        org,
        people,
        roles: MEMBERS_OF_A.into_iter().collect(),
        deleted: Vec::new(),
        owns_elsewhere: vec!["both", "c"],
        admin: admin.to_owned(),
    }
}

/// The credential an actor sends.
async fn credential(state: &AppState, world: &World, who: &str, via: Via) -> String {
    let session = login(state, &world.people[who].email).await;
    let Via::Token(role) = via else {
        return session;
    };
    let r = call(
        state,
        "POST",
        "/api/v1/api-tokens",
        Some(&session),
        Some(&world.org),
        Some(json!({"name": "matrix", "role": role.as_str()})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["token"].as_str().unwrap().to_owned()
}

/// One operation on a target.
#[derive(Debug, Clone, Copy)]
enum Op {
    ViewUser,
    Rename,
    ResetPassword,
    Disable,
    SetRole(OrgRole),
    RemoveMember,
    DeleteUser,
}

const OPS: [Op; 10] = [
    Op::ViewUser,
    Op::Rename,
    Op::ResetPassword,
    Op::Disable,
    Op::SetRole(OrgRole::Viewer),
    Op::SetRole(OrgRole::Operator),
    Op::SetRole(OrgRole::Admin),
    Op::SetRole(OrgRole::Owner),
    Op::RemoveMember,
    Op::DeleteUser,
];

impl World {
    /// The role the actor acts with in A, by the model.
    fn effective(&self, who: &str, via: Via) -> Option<Effective> {
        if who == "s" {
            return Some(Effective::SuperAdmin);
        }
        let role = self.roles.get(who).copied()?;
        Some(Effective::Org(match via {
            Via::Session => role,
            Via::Token(cap) => role.min(cap),
        }))
    }

    fn owners(&self) -> usize {
        self.roles
            .values()
            .filter(|r| **r == OrgRole::Owner)
            .count()
    }

    /// What the model says: may `who` (acting through `via`) do `op` to `target`?
    fn allowed(&self, who: &str, via: Via, op: Op, target: &str) -> bool {
        let Some(actor) = self.effective(who, via) else {
            return false;
        };
        let super_admin = actor == Effective::SuperAdmin && via == Via::Session;
        let member = self.roles.get(target).copied();
        let last_owner = member == Some(OrgRole::Owner) && self.owners() <= 1;
        match op {
            Op::ViewUser => {
                super_admin || (actor >= Effective::Org(OrgRole::Admin) && member.is_some())
            }
            Op::Rename | Op::ResetPassword => super_admin,
            Op::Disable => super_admin && target != who,
            Op::DeleteUser => {
                super_admin
                    && target != who
                    && !last_owner
                    && !self.owns_elsewhere.contains(&target)
            }
            Op::SetRole(to) => {
                let Some(from) = member else { return false };
                actor >= Effective::Org(OrgRole::Admin)
                    && may_change_member(actor, MemberChange::Change { from, to }).is_ok()
                    && !(last_owner && to != OrgRole::Owner)
            }
            Op::RemoveMember => {
                let Some(role) = member else { return false };
                actor >= Effective::Org(OrgRole::Admin)
                    && may_change_member(actor, MemberChange::Remove(role)).is_ok()
                    && !last_owner
            }
        }
    }

    /// Sends `op` on `target` with `credential`.
    async fn send(&self, state: &AppState, credential: &str, op: Op, target: &str) -> StatusCode {
        let id = &self.people[target].id;
        let (method, path, body) = match op {
            Op::ViewUser => ("GET", format!("/api/v1/users/{id}"), None),
            Op::Rename => (
                "PATCH",
                format!("/api/v1/users/{id}"),
                Some(json!({"name": "Renamed"})),
            ),
            Op::ResetPassword => (
                "PATCH",
                format!("/api/v1/users/{id}"),
                Some(json!({"password": PASSWORD})),
            ),
            Op::Disable => (
                "PATCH",
                format!("/api/v1/users/{id}"),
                Some(json!({"disabled": true})),
            ),
            Op::SetRole(role) => (
                "PATCH",
                format!("/api/v1/members/{id}"),
                Some(json!({"role": role.as_str()})),
            ),
            Op::RemoveMember => ("DELETE", format!("/api/v1/members/{id}"), None),
            Op::DeleteUser => ("DELETE", format!("/api/v1/users/{id}"), None),
        };
        call(
            state,
            method,
            &path,
            Some(credential),
            Some(&self.org),
            body,
        )
        .await
        .status
    }

    /// Puts back what an allowed `op` on `target` changed (the model keeps deletions).
    async fn undo(&mut self, state: &AppState, op: Op, target: &'static str) {
        let id = self.people[target].id.clone();
        match op {
            Op::ViewUser | Op::Rename | Op::ResetPassword => {}
            Op::Disable => {
                let r = call(
                    state,
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    Some(&self.admin),
                    Some(&self.org),
                    Some(json!({"disabled": false})),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
            }
            Op::SetRole(_) => {
                let role = self.roles[target];
                let r = call(
                    state,
                    "PATCH",
                    &format!("/api/v1/members/{id}"),
                    Some(&self.admin),
                    Some(&self.org),
                    Some(json!({"role": role.as_str()})),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
            }
            Op::RemoveMember => {
                let role = self.roles[target];
                let email = self.people[target].email.clone();
                let token = invite(state, &self.admin, &self.org, &email, role).await;
                let session = login(state, &email).await;
                accept(state, &token, Some(&session)).await;
            }
            Op::DeleteUser => {
                self.roles.remove(target);
                self.deleted.push(target);
            }
        }
    }

    /// Compares the organization's members, every account's state and every password with
    /// the model.
    async fn check(&self, state: &AppState, after: &str) {
        let r = call(
            state,
            "GET",
            "/api/v1/members?limit=100",
            Some(&self.admin),
            Some(&self.org),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let actual: BTreeMap<String, String> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["user_id"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: BTreeMap<String, String> = self
            .roles
            .iter()
            .map(|(who, role)| (self.people[who].id.clone(), role.as_str().to_owned()))
            .collect();
        assert_eq!(actual, expected, "members after {after}");
        for who in TARGETS {
            if self.deleted.contains(&who) {
                continue;
            }
            let r = call(
                state,
                "POST",
                "/api/v1/auth/login",
                None,
                None,
                Some(json!({"email": self.people[who].email, "password": PASSWORD})),
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{who} signs in with their own password after {after}: {r:?}"
            );
        }
    }
}

async fn account_matrix(state: AppState) {
    let (admin, _) = super::http_tests::bootstrap(&state).await;
    let mut cases = 0usize;
    for (n, (who, via)) in ACTORS.into_iter().enumerate() {
        let mut world = build_world(&state, n, &admin).await;
        let mut cred = credential(&state, &world, who, via).await;
        for target in TARGETS {
            for op in OPS {
                if world.deleted.contains(&target) {
                    continue;
                }
                let expected = world.allowed(who, via, op, target);
                let status = world.send(&state, &cred, op, target).await;
                let case = format!("{who} ({via:?}) {op:?} on {target}");
                if expected {
                    assert!(
                        status.is_success(),
                        "{case}: expected success, got {status}"
                    );
                    world.undo(&state, op, target).await;
                    // A reset password or a removal ends the target's sessions and tokens.
                    if target == who {
                        cred = credential(&state, &world, who, via).await;
                    }
                    if target == "s" {
                        world.admin = login(&state, "admin@example.com").await;
                        if who == "s" {
                            cred = world.admin.clone();
                        }
                    }
                } else {
                    assert!(
                        matches!(
                            status,
                            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::CONFLICT
                        ),
                        "{case}: expected a refusal, got {status}"
                    );
                }
                cases += 1;
            }
        }
        world.check(&state, &format!("actor {who} ({via:?})")).await;
        invitations(&state, &world, who, via, &cred, &mut cases).await;
    }
    eprintln!("account matrix: {cases} cases");
    assert_eq!(
        cases,
        ACTORS.len() * TARGETS.len() * OPS.len() + invitation_cases(),
        "every case ran"
    );
}

/// The organization-level cases of one actor: 4 roles invited, 4 super-admin-made
/// invitations revoked, renaming and re-slugging the organization, the same answer for a
/// registered and an unregistered address.
fn invitation_cases() -> usize {
    ACTORS.len() * 11
}

async fn invitations(
    state: &AppState,
    world: &World,
    who: &str,
    via: Via,
    cred: &str,
    cases: &mut usize,
) {
    let actor = world.effective(who, via);
    let may_invite = |role: OrgRole| {
        actor.is_some_and(|a| {
            a >= Effective::Org(OrgRole::Admin)
                && may_change_member(a, MemberChange::Grant(role)).is_ok()
        })
    };
    for role in OrgRole::ALL {
        // Invite a fresh address with each role.
        let r = call(
            state,
            "POST",
            "/api/v1/invitations",
            Some(cred),
            Some(&world.org),
            Some(json!({"email": format!("new-{}-{}@example.com", role.as_str(), world.org), "role": role.as_str()})),
        )
        .await;
        let case = format!("{who} ({via:?}) invites a new {role}");
        if may_invite(role) {
            assert_eq!(r.status, StatusCode::CREATED, "{case}: {r:?}");
        } else {
            assert!(
                matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "{case}: {r:?}"
            );
        }
        *cases += 1;
        // Revoke an invitation the super admin made with this role.
        let r = call(
            state,
            "POST",
            "/api/v1/invitations",
            Some(&world.admin),
            Some(&world.org),
            Some(json!({"email": format!("by-admin-{}@example.com", role.as_str()), "role": role.as_str()})),
        )
        .await;
        let id = r.body["invitation"]["id"].as_str().unwrap().to_owned();
        let r = call(
            state,
            "DELETE",
            &format!("/api/v1/invitations/{id}"),
            Some(cred),
            Some(&world.org),
            None,
        )
        .await;
        let case = format!("{who} ({via:?}) revokes an invitation as {role}");
        if may_invite(role) {
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{case}: {r:?}");
        } else {
            assert!(
                matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "{case}: {r:?}"
            );
        }
        *cases += 1;
    }
    // Renaming the organization and changing its slug are the owner's.
    for body in [
        json!({"name": "Renamed"}),
        json!({"slug": format!("renamed-{}", &world.org[world.org.len() - 12..])}),
    ] {
        let r = call(
            state,
            "PATCH",
            "/api/v1/organization",
            Some(cred),
            Some(&world.org),
            Some(body.clone()),
        )
        .await;
        let may = actor.is_some_and(|a| a >= Effective::Org(OrgRole::Owner));
        if may {
            assert_eq!(r.status, StatusCode::OK, "{who} ({via:?}) {body}: {r:?}");
        } else {
            assert!(
                matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "{who} ({via:?}) {body}: {r:?}"
            );
        }
        *cases += 1;
    }
    // Inviting a registered address answers exactly as inviting an unregistered one.
    let answers = [
        world.people["c"].email.clone(),
        format!("nobody-{}@example.com", world.org),
    ];
    let mut shapes = Vec::new();
    for email in answers {
        let r = call(
            state,
            "POST",
            "/api/v1/invitations",
            Some(cred),
            Some(&world.org),
            Some(json!({"email": email, "role": "viewer"})),
        )
        .await;
        shapes.push((r.status, shape(&r.body)));
    }
    assert_eq!(
        shapes[0], shapes[1],
        "{who} ({via:?}): a registered address shows"
    );
    *cases += 1;
}

/// A JSON value's keys and value kinds, without the values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), if k == "detail" { v.clone() } else { shape(v) }))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        other => other.clone(),
    }
}

#[tokio::test]
async fn account_matrix_sqlite() {
    account_matrix(testing::app_state(Kind::Sqlite, Edition::Saas).await).await;
}

#[tokio::test]
async fn account_matrix_postgres() {
    account_matrix(testing::app_state(Kind::Postgres, Edition::Saas).await).await;
}

/// Every account and platform operation, tried with an API token of each role: all refused,
/// and nothing changed. The same operations with a session are not refused for being one.
async fn tokens_stay_in_their_organization(state: AppState) {
    let (admin, org) = super::http_tests::bootstrap(&state).await;
    let account_ops: [(&str, &str, Value); 11] = [
        ("GET", "/api/v1/orgs", Value::Null),
        ("POST", "/api/v1/orgs", json!({"name": "Mine now"})),
        ("GET", "/api/v1/auth/me", Value::Null),
        ("PATCH", "/api/v1/auth/me", json!({"name": "Token"})),
        (
            "POST",
            "/api/v1/auth/password",
            json!({"current_password": PASSWORD, "new_password": "another long password 1"}),
        ),
        (
            "POST",
            "/api/v1/auth/mfa/enroll",
            json!({"password": PASSWORD}),
        ),
        (
            "POST",
            "/api/v1/auth/mfa/confirm",
            json!({"code": "123456"}),
        ),
        (
            "POST",
            "/api/v1/auth/mfa/disable",
            json!({"password": PASSWORD, "code": "123456"}),
        ),
        (
            "POST",
            "/api/v1/auth/mfa/backup-codes",
            json!({"password": PASSWORD, "code": "123456"}),
        ),
        ("POST", "/api/v1/auth/logout", Value::Null),
        (
            "POST",
            "/api/v1/invitations/accept",
            json!({"token": "ipinv_x"}),
        ),
    ];
    let mut cases = 0;
    for role in OrgRole::ALL {
        let r = call(
            &state,
            "POST",
            "/api/v1/api-tokens",
            Some(&admin),
            Some(&org),
            Some(json!({"name": "script", "role": role.as_str()})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let token = r.body["token"].as_str().unwrap().to_owned();
        for (method, path, body) in &account_ops {
            let body = (!body.is_null()).then(|| body.clone());
            let r = call(&state, method, path, Some(&token), None, body).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{role} token: {method} {path}: {r:?}"
            );
            assert!(
                r.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("API tokens act only inside"),
                "{method} {path}: {r:?}"
            );
            cases += 1;
        }
    }
    eprintln!("token cases: {cases}");
    // Nothing changed: one organization, the same name, MFA off, the password unchanged.
    let me = call(&state, "GET", "/api/v1/auth/me", Some(&admin), None, None).await;
    assert_eq!(me.body["name"], "Admin");
    assert_eq!(me.body["mfa_enabled"], false);
    assert_eq!(me.body["organizations"].as_array().unwrap().len(), 1);
    login(&state, "admin@example.com").await;
}

#[tokio::test]
async fn tokens_stay_in_their_organization_sqlite() {
    tokens_stay_in_their_organization(testing::app_state(Kind::Sqlite, Edition::Saas).await).await;
}
