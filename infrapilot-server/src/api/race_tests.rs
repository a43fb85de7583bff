//! Invariants that count rows hold under concurrency on PostgreSQL (SECURITY.md, class 11):
//! each is raced by many concurrent requests, many rounds, and must hold every time. (SQLite
//! serialises every writer with `BEGIN IMMEDIATE`; PostgreSQL's READ COMMITTED does not, so
//! these run there.) The agent limit, raced through real enrollments, is in
//! `agents::e2e_tests`.

use axum::http::StatusCode;
use serde_json::json;

use super::http_tests::{call, login};
use super::http_tests_support as support;
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

const ROUNDS: usize = 9;

/// Signs up an organization; returns (owner's session, org id).
async fn organization(state: &AppState, owner: &str) -> (String, String) {
    let (_, org) = support::signup(state, owner, owner).await;
    (login(state, owner).await, org)
}

/// Invites `email` as `role` and accepts as a new account; returns the account's id.
async fn join(state: &AppState, owner: &str, org: &str, email: &str, role: &str) -> String {
    let token = support::invite(state, owner, org, email, role).await;
    let r = support::accept(state, &token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["user_id"].as_str().unwrap().to_owned()
}

/// Members of `org` by role, as `session` sees them.
async fn members(state: &AppState, session: &str, org: &str) -> Vec<String> {
    let r = call(
        state,
        "GET",
        "/api/v1/members?limit=200",
        Some(session),
        Some(org),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_owned())
        .collect()
}

/// Two owners demote or remove each other at the same moment, or a super admin deletes both
/// owners' accounts at once (a third of the rounds each): the organization always keeps an
/// owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_owners_never_leave_an_organization_without_one() {
    let state = testing::app_state(Kind::Postgres, Edition::Saas).await;
    let (admin, _) = super::http_tests::bootstrap(&state).await;
    for round in 0..ROUNDS {
        let x_email = format!("x{round}@example.com");
        let (x, org) = organization(&state, &x_email).await;
        let x_id = call(&state, "GET", "/api/v1/auth/me", Some(&x), None, None)
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let y_id = join(&state, &x, &org, &format!("y{round}@example.com"), "owner").await;
        let y = login(&state, &format!("y{round}@example.com")).await;
        let pairs = if round % 3 == 2 {
            [(admin.clone(), y_id.clone()), (admin.clone(), x_id.clone())]
        } else {
            [(x.clone(), y_id.clone()), (y.clone(), x_id.clone())]
        };
        let tasks = pairs.map(|(session, other)| {
            let (state, org) = (state.clone(), org.clone());
            tokio::spawn(async move {
                let (method, path, body) = match round % 3 {
                    0 => ("PATCH", "members", Some(json!({"role": "viewer"}))),
                    1 => ("DELETE", "members", None),
                    _ => ("DELETE", "users", None),
                };
                call(
                    &state,
                    method,
                    &format!("/api/v1/{path}/{other}"),
                    Some(&session),
                    Some(&org),
                    body,
                )
                .await
                .status
            })
        });
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        let owners = members(&state, &admin, &org)
            .await
            .into_iter()
            .filter(|r| r == "owner")
            .count();
        assert_eq!(owners, 1, "round {round}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| s.is_success()).count(),
            1,
            "round {round}: exactly one of the two wins: {statuses:?}"
        );
    }
}

/// Twenty invitations accepted at once under a limit of three members: never more than three.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_hold_the_member_limit() {
    let state = testing::app_state(Kind::Postgres, Edition::Saas).await;
    let (admin, _) = super::http_tests::bootstrap(&state).await;
    for round in 0..ROUNDS {
        let (owner, org) = organization(&state, &format!("limit{round}@example.com")).await;
        let mut tokens = Vec::new();
        for n in 0..20 {
            tokens.push(
                support::invite(
                    &state,
                    &owner,
                    &org,
                    &format!("m{round}-{n}@example.com"),
                    "viewer",
                )
                .await,
            );
        }
        let r = call(
            &state,
            "PATCH",
            "/api/v1/organization",
            Some(&admin),
            Some(&org),
            Some(json!({"max_users": 3})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|token| {
                let state = state.clone();
                tokio::spawn(async move { support::accept(&state, &token, None).await.status })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            let status = task.await.unwrap();
            if status.is_success() {
                accepted += 1;
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "round {round}");
            }
        }
        assert_eq!(accepted, 2, "round {round}: the owner and two more");
        assert_eq!(
            members(&state, &admin, &org).await.len(),
            3,
            "round {round}"
        );
    }
}

/// Thirty wrong passwords for one account at once: exactly as many are judged as the throttle
/// allows before its lockout (five free and the one that earns it); the rest are refused
/// unjudged. Without the throttle row's lock, parallel guesses each read the same count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_are_all_counted() {
    let state = testing::app_state(Kind::Postgres, Edition::Saas).await;
    for round in 0..ROUNDS {
        let email = format!("guessed{round}@example.com");
        support::signup(&state, &email, &email).await;
        let tasks: Vec<_> = (0..30)
            .map(|n| {
                let (state, email) = (state.clone(), email.clone());
                tokio::spawn(async move {
                    call(
                        &state,
                        "POST",
                        "/api/v1/auth/login",
                        None,
                        None,
                        Some(json!({"email": email, "password": format!("wrong guess {n}")})),
                    )
                    .await
                    .status
                })
            })
            .collect();
        let mut judged = 0;
        for task in tasks {
            match task.await.unwrap() {
                StatusCode::UNAUTHORIZED => judged += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(
            judged, 6,
            "round {round}: guesses judged before the lockout"
        );
    }
}
