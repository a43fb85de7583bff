//! Revocation takes effect at once, and credential guesses are bounded by throttles the
//! caller cannot reset (SECURITY.md, classes 2 and 3), each tried by enumeration: every way a
//! session ends × every replica, and every endpoint that checks a credential.

use axum::http::StatusCode;
use infrapilot_core::identity::{Totp, TotpSecret};
use serde_json::{Value, json};

use super::http_tests::{PASSWORD, Reply, call};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

/// Every way a session ends.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    Logout,
    RefreshReuse,
    PasswordChange,
    PasswordReset,
    Disable,
}

const REVOCATIONS: [Revocation; 5] = [
    Revocation::Logout,
    Revocation::RefreshReuse,
    Revocation::PasswordChange,
    Revocation::PasswordReset,
    Revocation::Disable,
];

/// A super admin creates an account; returns its id.
async fn create_account(state: &AppState, admin: &str, org: &str, email: &str) -> String {
    let r = call(
        state,
        "POST",
        "/api/v1/users",
        Some(admin),
        Some(org),
        Some(json!({"email": email, "name": "Person", "password": PASSWORD, "role": "operator"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().unwrap().to_owned()
}

async fn sign_in(state: &AppState, email: &str) -> (String, String) {
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
    (
        r.body["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        r.body["session"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

async fn refresh(state: &AppState, token: &str) -> Reply {
    call(
        state,
        "POST",
        "/api/v1/auth/refresh",
        None,
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

/// Both kinds of request an access token makes: an account one and an organization one.
async fn works(state: &AppState, access: &str, org: &str) -> [StatusCode; 2] {
    [
        call(state, "GET", "/api/v1/auth/me", Some(access), None, None)
            .await
            .status,
        call(
            state,
            "GET",
            "/api/v1/members",
            Some(access),
            Some(org),
            None,
        )
        .await
        .status,
    ]
}

async fn revocation_is_immediate(replicas: [AppState; 2]) {
    let [a, b] = &replicas;
    let (admin, org) = super::http_tests::bootstrap(a).await;
    for (n, how) in REVOCATIONS.into_iter().enumerate() {
        let email = format!("session-{n}@example.com");
        let id = create_account(a, &admin, &org, &email).await;
        let (access, refresh_token) = sign_in(a, &email).await;
        let mut live = vec![access.clone()];
        for replica in [a, b] {
            assert_eq!(works(replica, &access, &org).await, [StatusCode::OK; 2]);
        }
        match how {
            Revocation::Logout => {
                let r = call(a, "POST", "/api/v1/auth/logout", Some(&access), None, None).await;
                assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
            }
            Revocation::RefreshReuse => {
                let r = refresh(a, &refresh_token).await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
                live.push(r.body["access_token"].as_str().unwrap().to_owned());
                let r = refresh(b, &refresh_token).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "reuse: {r:?}");
            }
            Revocation::PasswordChange => {
                let r = call(
                    a,
                    "POST",
                    "/api/v1/auth/password",
                    Some(&access),
                    None,
                    Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
                )
                .await;
                assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
            }
            Revocation::PasswordReset | Revocation::Disable => {
                let body = match how {
                    Revocation::Disable => json!({"disabled": true}),
                    _ => json!({"password": PASSWORD}),
                };
                let r = call(
                    a,
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    Some(&admin),
                    Some(&org),
                    Some(body),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
            }
        }
        for token in &live {
            for replica in [a, b] {
                assert_eq!(
                    works(replica, token, &org).await,
                    [StatusCode::UNAUTHORIZED; 2],
                    "{how:?}: the session's access tokens are refused on every replica"
                );
            }
        }
        assert_eq!(
            refresh(b, &refresh_token).await.status,
            StatusCode::UNAUTHORIZED
        );
        // A new session works (except for a disabled account).
        if !matches!(how, Revocation::Disable) {
            let (fresh, _) = sign_in(b, &email).await;
            assert_eq!(works(a, &fresh, &org).await, [StatusCode::OK; 2], "{how:?}");
        }
    }
}

#[tokio::test]
async fn revocation_is_immediate_sqlite() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    revocation_is_immediate([state.clone(), state]).await;
}

#[tokio::test]
async fn revocation_is_immediate_on_every_postgres_replica() {
    let db = testing::database(Kind::Postgres).await;
    let a = testing::app_state_on(&db, Edition::Community).await;
    let b = testing::app_state_on(&db, Edition::Community).await;
    revocation_is_immediate([a, b]).await;
}

/// A code no TOTP window around now accepts.
fn wrong_code(totp: &Totp) -> String {
    let step = Totp::step_at(crate::util::now_secs()).unwrap();
    let near: Vec<String> = (step - 2..=step + 2)
        .map(|s| totp.code_for_step(s))
        .collect();
    (0..10)
        .map(|n| format!("00000{n}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

fn current_code(totp: &Totp) -> String {
    totp.code_for_step(Totp::step_at(crate::util::now_secs()).unwrap())
}

/// Starts MFA enrolment for the session's account; returns its TOTP.
async fn enroll(state: &AppState, access: &str) -> Totp {
    let r = call(
        state,
        "POST",
        "/api/v1/auth/mfa/enroll",
        Some(access),
        None,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    Totp::new(TotpSecret::from_base32(r.body["secret"].as_str().unwrap()).unwrap())
}

/// Enrols and confirms MFA; returns the TOTP.
async fn with_mfa(state: &AppState, access: &str) -> Totp {
    let totp = enroll(state, access).await;
    let r = call(
        state,
        "POST",
        "/api/v1/auth/mfa/confirm",
        Some(access),
        None,
        Some(json!({"code": current_code(&totp)})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    totp
}

/// Signs in with the password of an account with MFA; returns the second step's token.
async fn mfa_token(state: &AppState, email: &str) -> String {
    let r = call(
        state,
        "POST",
        "/api/v1/auth/login",
        None,
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the password still signs in: {r:?}"
    );
    r.body["mfa_token"].as_str().unwrap().to_owned()
}

/// Every endpoint that checks a credential.
#[derive(Debug, Clone, Copy)]
enum Check {
    LoginPassword,
    LoginSecondFactor,
    ChangePassword,
    EnrollPassword,
    ConfirmCode,
    DisableCode,
    BackupCodesCode,
}

const CHECKS: [Check; 7] = [
    Check::LoginPassword,
    Check::LoginSecondFactor,
    Check::ChangePassword,
    Check::EnrollPassword,
    Check::ConfirmCode,
    Check::DisableCode,
    Check::BackupCodesCode,
];

/// How many wrong guesses each bound allows before a lockout (ThrottlePolicy's free
/// failures, plus the failure that earns the first lockout).
const PASSWORD_GUESSES: usize = 6;
const CODE_GUESSES: usize = 6;

async fn guesses_are_bounded(state: AppState) {
    let (admin, org) = super::http_tests::bootstrap(&state).await;
    for (n, check) in CHECKS.into_iter().enumerate() {
        let email = format!("guess-{n}@example.com");
        create_account(&state, &admin, &org, &email).await;
        let (access, _) = sign_in(&state, &email).await;
        let totp = match check {
            Check::LoginSecondFactor | Check::DisableCode | Check::BackupCodesCode => {
                Some(with_mfa(&state, &access).await)
            }
            Check::ConfirmCode => Some(enroll(&state, &access).await),
            _ => None,
        };
        let guesses = match check {
            Check::LoginPassword | Check::ChangePassword | Check::EnrollPassword => {
                PASSWORD_GUESSES
            }
            _ => CODE_GUESSES,
        };
        let attempt = |right: bool| {
            let (state, access, email, totp) = (&state, &access, &email, &totp);
            async move {
                let code = totp.as_ref().map(|t| {
                    if right {
                        current_code(t)
                    } else {
                        wrong_code(t)
                    }
                });
                let password = if right {
                    PASSWORD
                } else {
                    "a wrong password guess"
                };
                let (method, path, token, body): (_, _, Option<&str>, Value) = match check {
                    Check::LoginPassword => (
                        "POST",
                        "/api/v1/auth/login",
                        None,
                        json!({"email": email, "password": password}),
                    ),
                    Check::LoginSecondFactor => {
                        // The caller holds the password and signs in again before each guess:
                        // that must not reset the count.
                        let token = mfa_token(state, email).await;
                        (
                            "POST",
                            "/api/v1/auth/login/mfa",
                            None,
                            json!({"mfa_token": token, "code": code}),
                        )
                    }
                    Check::ChangePassword => (
                        "POST",
                        "/api/v1/auth/password",
                        Some(access.as_str()),
                        json!({"current_password": password, "new_password": PASSWORD}),
                    ),
                    Check::EnrollPassword => (
                        "POST",
                        "/api/v1/auth/mfa/enroll",
                        Some(access.as_str()),
                        json!({"password": password}),
                    ),
                    Check::ConfirmCode => (
                        "POST",
                        "/api/v1/auth/mfa/confirm",
                        Some(access.as_str()),
                        json!({"code": code}),
                    ),
                    Check::DisableCode => (
                        "POST",
                        "/api/v1/auth/mfa/disable",
                        Some(access.as_str()),
                        json!({"password": PASSWORD, "code": code}),
                    ),
                    Check::BackupCodesCode => (
                        "POST",
                        "/api/v1/auth/mfa/backup-codes",
                        Some(access.as_str()),
                        json!({"password": PASSWORD, "code": code}),
                    ),
                };
                call(state, method, path, token, None, Some(body)).await
            }
        };
        for i in 0..guesses {
            let r = attempt(false).await;
            assert!(
                matches!(
                    r.status,
                    StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY
                ),
                "{check:?} guess {i}: {r:?}"
            );
        }
        // Past the bound even the right credential is refused until the lockout ends.
        let r = attempt(true).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{check:?} after {guesses} wrong guesses: {r:?}"
        );
    }
}

#[tokio::test]
async fn guesses_are_bounded_sqlite() {
    guesses_are_bounded(testing::app_state(Kind::Sqlite, Edition::Community).await).await;
}

#[tokio::test]
async fn guesses_are_bounded_postgres() {
    guesses_are_bounded(testing::app_state(Kind::Postgres, Edition::Community).await).await;
}

/// The setup code: wrong codes are counted for the instance, and the right one is refused
/// past the bound.
#[tokio::test]
async fn the_setup_code_is_throttled() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let setup = |code: String| {
        let state = &state;
        async move {
            call(
                state,
                "POST",
                "/api/v1/setup",
                None,
                None,
                Some(json!({
                    "setup_code": code, "email": "a@example.com", "name": "A",
                    "password": PASSWORD, "organization_name": "X",
                })),
            )
            .await
        }
    };
    for i in 0..11 {
        let r = setup(format!("wrong-{i}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    }
    let r = setup(state.keys().setup_code().to_owned()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
}

/// How an open stream's authority ends: every revocation, the member's removal, and an API
/// token's revocation (the stream then opened with that token).
#[derive(Debug, Clone, Copy)]
enum StreamEnd {
    Session(Revocation),
    Removal,
    TokenRevoked,
}

/// The streams a request can hold open over plain HTTP (the WebSockets use the same check,
/// tested with a real agent in `docker_tests`).
const STREAMS: [&str; 2] = ["/api/v1/events/stream", "/api/v1/logs/tail"];

/// Opens a stream with `token`; returns its body.
async fn open_stream(state: &AppState, token: &str, uri: &str) -> axum::body::Body {
    use tower::ServiceExt as _;
    let req = axum::http::Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = crate::app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    res.into_body()
}

/// Reads a stream to its end (a hang fails the test); returns the `revoked` event's problem.
async fn revoked_problem(body: axum::body::Body, what: &str) -> Value {
    use http_body_util::BodyExt as _;
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(60), body.collect())
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream stayed open after the revocation"))
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let block = text
        .split("\n\n")
        .find(|b| b.lines().any(|l| l == "event: revoked"))
        .unwrap_or_else(|| panic!("{what}: the stream ended without a revoked event: {text}"));
    let data = block
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    serde_json::from_str(data).unwrap()
}

/// Whether a stream is still open after `window`: it neither ended nor sent `revoked`.
async fn still_open(body: &mut axum::body::Body, window: std::time::Duration) -> bool {
    use http_body_util::BodyExt as _;
    let deadline = tokio::time::Instant::now() + window;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return true,
            Ok(None | Some(Err(_))) => return false,
            Ok(Some(Ok(frame))) => {
                if frame
                    .data_ref()
                    .is_some_and(|d| String::from_utf8_lossy(d).contains("event: revoked"))
                {
                    return false;
                }
            }
        }
    }
}

async fn streams_end_on_revocation(replicas: [AppState; 2]) {
    let [a, b] = &replicas;
    let (admin, org) = super::http_tests::bootstrap(a).await;
    // The administrator's own streams, open through every case: nothing but a revocation of
    // their own authority ends a stream.
    let mut bystanders = Vec::new();
    for replica in [a, b] {
        for uri in STREAMS {
            bystanders.push(open_stream(replica, &admin, uri).await);
        }
    }
    let ends = REVOCATIONS
        .into_iter()
        .map(StreamEnd::Session)
        .chain([StreamEnd::Removal, StreamEnd::TokenRevoked]);
    let mut cases = 0;
    for (n, end) in ends.enumerate() {
        let email = format!("stream-{n}@example.com");
        let id = create_account(a, &admin, &org, &email).await;
        let (access, refresh_token) = sign_in(a, &email).await;
        let mut credential = access.clone();
        let mut token_id = String::new();
        if matches!(end, StreamEnd::TokenRevoked) {
            let r = call(
                a,
                "POST",
                "/api/v1/api-tokens",
                Some(&access),
                None,
                Some(json!({"name": "stream"})),
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            credential = r.body["token"].as_str().unwrap().to_owned();
            token_id = r.body["api_token"]["id"].as_str().unwrap().to_owned();
        }
        // Every stream, open on every replica, before the revocation.
        let mut open = Vec::new();
        for (r, replica) in [a, b].into_iter().enumerate() {
            for uri in STREAMS {
                open.push((
                    format!("{end:?} on replica {r}: {uri}"),
                    open_stream(replica, &credential, uri).await,
                ));
            }
        }
        let (method, path, token, body) = match end {
            StreamEnd::Session(Revocation::Logout) => {
                ("POST", "/api/v1/auth/logout".to_owned(), &access, None)
            }
            StreamEnd::Session(Revocation::RefreshReuse) => {
                assert_eq!(refresh(a, &refresh_token).await.status, StatusCode::OK);
                (
                    "POST",
                    "/api/v1/auth/refresh".to_owned(),
                    &access,
                    Some(json!({"refresh_token": refresh_token})),
                )
            }
            StreamEnd::Session(Revocation::PasswordChange) => (
                "POST",
                "/api/v1/auth/password".to_owned(),
                &access,
                Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
            ),
            StreamEnd::Session(Revocation::PasswordReset) => (
                "PATCH",
                format!("/api/v1/users/{id}"),
                &admin,
                Some(json!({"password": PASSWORD})),
            ),
            StreamEnd::Session(Revocation::Disable) => (
                "PATCH",
                format!("/api/v1/users/{id}"),
                &admin,
                Some(json!({"disabled": true})),
            ),
            StreamEnd::Removal => ("DELETE", format!("/api/v1/members/{id}"), &admin, None),
            StreamEnd::TokenRevoked => (
                "DELETE",
                format!("/api/v1/api-tokens/{token_id}"),
                &access,
                None,
            ),
        };
        let r = call(b, method, &path, Some(token), Some(&org), body).await;
        assert!(
            r.status.is_success() || matches!(end, StreamEnd::Session(Revocation::RefreshReuse)),
            "{end:?}: {r:?}"
        );
        let expected = match end {
            StreamEnd::Removal => 404,
            _ => 401,
        };
        for (what, body) in open {
            let problem = revoked_problem(body, &what).await;
            assert_eq!(problem["status"], expected, "{what}: {problem}");
            cases += 1;
        }
    }
    assert_eq!(cases, 7 * 2 * STREAMS.len());
    for mut body in bystanders {
        assert!(
            still_open(&mut body, 2 * crate::auth::STREAM_RECHECK).await,
            "a stream whose authority never ended was closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_on_revocation_sqlite() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    streams_end_on_revocation([state.clone(), state]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_on_revocation_on_every_postgres_replica() {
    let db = testing::database(Kind::Postgres).await;
    let a = testing::app_state_on(&db, Edition::Community).await;
    let b = testing::app_state_on(&db, Edition::Community).await;
    streams_end_on_revocation([a, b]).await;
}
