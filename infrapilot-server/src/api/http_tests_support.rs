//! Request helpers shared by the HTTP tests and the load benchmark.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{AppState, app};

pub const PASSWORD: &str = "correct horse battery staple";

/// A response, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

/// Sends one request through the router.
pub async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    org: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(org) = org {
        req = req.header("x-org-id", org);
    }
    let req = match body {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = if content_type.starts_with("text/event-stream") {
        // An event stream never ends: what it sent in its first moments is the answer.
        read_for(res.into_body(), std::time::Duration::from_millis(1500)).await
    } else {
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    };
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        content_type,
        body,
    }
}

/// The bytes a body sends within `window` (or until it ends).
pub async fn read_for(mut body: Body, window: std::time::Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Some(data) = frame.data_ref() {
            out.extend_from_slice(data);
        }
    }
    out
}

/// Runs setup and signs in as the super admin; returns (access token, org id).
pub async fn bootstrap(state: &AppState) -> (String, String) {
    let code = state.keys().setup_code().to_owned();
    let r = call(
        state,
        "POST",
        "/api/v1/setup",
        None,
        None,
        Some(json!({
            "setup_code": code, "email": "admin@example.com", "name": "Admin",
            "password": PASSWORD, "organization_name": "Acme",
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let org = r.body["organization_id"].as_str().unwrap().to_owned();
    (login(state, "admin@example.com").await, org)
}

/// Signs in with the test password.
pub async fn login(state: &AppState, email: &str) -> String {
    let r = call(
        state,
        "POST",
        "/api/v1/auth/login",
        None,
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a viewer account in the token's organization.
pub async fn create_member(state: &AppState, token: &str, email: &str) {
    let r = call(
        state,
        "POST",
        "/api/v1/users",
        Some(token),
        None,
        Some(json!({
            "email": email, "name": "Member", "password": PASSWORD, "role": "viewer",
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

/// Signs up (SaaS edition) an account owning a new organization; returns (user id, org id).
pub async fn signup(state: &AppState, email: &str, org_name: &str) -> (String, String) {
    let r = call(
        state,
        "POST",
        "/api/v1/auth/signup",
        None,
        None,
        Some(json!({
            "email": email, "name": "Owner", "password": PASSWORD, "organization_name": org_name,
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (
        r.body["user_id"].as_str().unwrap().to_owned(),
        r.body["organization"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Invites `email` into `org` with `role` (as `session`); returns the invitation token.
pub async fn invite(state: &AppState, session: &str, org: &str, email: &str, role: &str) -> String {
    let r = call(
        state,
        "POST",
        "/api/v1/invitations",
        Some(session),
        Some(org),
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["token"].as_str().unwrap().to_owned()
}

/// Accepts an invitation signed in as `session`, or without one as a new account with the
/// test password.
pub async fn accept(state: &AppState, token: &str, session: Option<&str>) -> Reply {
    let body = match session {
        Some(_) => json!({"token": token}),
        None => json!({"token": token, "name": "Person", "password": PASSWORD}),
    };
    call(
        state,
        "POST",
        "/api/v1/invitations/accept",
        session,
        None,
        Some(body),
    )
    .await
}
