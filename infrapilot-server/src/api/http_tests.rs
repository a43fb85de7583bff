//! HTTP integration tests through the real router (`app(state).oneshot(request)`), on
//! SQLite and PostgreSQL.

use axum::http::StatusCode;
use serde_json::json;

use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

pub(crate) use super::http_tests_support::{PASSWORD, Reply, bootstrap, call, login};

macro_rules! both {
    ($name:ident, $edition:expr, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let state = testing::app_state(Kind::Sqlite, $edition).await;
                ($body)(state).await;
            }

            #[tokio::test]
            async fn postgres() {
                let state = testing::app_state(Kind::Postgres, $edition).await;
                ($body)(state).await;
            }
        }
    };
}

both!(
    setup_works_once_and_needs_the_code,
    Edition::Community,
    |state: AppState| async move {
        let r = call(&state, "GET", "/api/v1/setup", None, None, None).await;
        assert_eq!(r.body["setup_required"], true);
        let wrong = call(&state, "POST", "/api/v1/setup", None, None, Some(json!({
        "setup_code": "nope", "email": "a@example.com", "name": "A", "password": PASSWORD, "organization_name": "X",
    })))
    .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.content_type.starts_with("application/problem+json"));
        let (token, org) = bootstrap(&state).await;
        let again = call(
            &state,
            "POST",
            "/api/v1/setup",
            None,
            None,
            Some(json!({
                "setup_code": state.keys().setup_code(), "email": "b@example.com", "name": "B",
                "password": PASSWORD, "organization_name": "Y",
            })),
        )
        .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
        let me = call(&state, "GET", "/api/v1/auth/me", Some(&token), None, None).await;
        assert_eq!(me.body["platform_role"], "super_admin");
        assert_eq!(me.body["organizations"][0]["id"], org.as_str());
        assert_eq!(me.body["organizations"][0]["role"], "owner");
        // Setup is audited, in the new organization's chain.
        let audit = call(&state, "GET", "/api/v1/audit", Some(&token), None, None).await;
        assert_eq!(audit.status, StatusCode::OK, "{audit:?}");
        let actions: Vec<&str> = audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["auth.login", "instance.setup"], "newest first");
        assert_eq!(audit.body["items"][0]["outcome"], "success");
    }
);

both!(
    bad_input_names_the_field,
    Edition::Community,
    |state: AppState| async move {
        let r = call(&state, "POST", "/api/v1/setup", None, None, Some(json!({
        "setup_code": "x", "email": "not-an-email", "name": "A", "password": PASSWORD, "organization_name": "X",
    })))
    .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert_eq!(r.body["errors"][0]["field"], "email");
        let r = call(
            &state,
            "POST",
            "/api/v1/setup",
            None,
            None,
            Some(json!({"setup_code": 5})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert_eq!(r.body["errors"][0]["field"], "setup_code");
        let r = call(&state, "POST", "/api/v1/setup", None, None, Some(json!({
        "setup_code": "x", "email": "a@example.com", "name": "A", "password": "short", "organization_name": "X",
    })))
    .await;
        assert_eq!(r.body["errors"][0]["field"], "password", "{r:?}");
        let r = call(&state, "GET", "/api/v1/nothing-here", None, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.content_type.starts_with("application/problem+json"));
        let r = call(&state, "DELETE", "/healthz", None, None, None).await;
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{r:?}"
        );
    }
);

both!(
    login_failures_are_generic_and_throttled,
    Edition::Community,
    |state: AppState| async move {
        let (admin, _) = bootstrap(&state).await;
        let wrong = |email: &'static str| {
            let state = state.clone();
            async move {
                call(
                    &state,
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    None,
                    Some(json!({"email": email, "password": "wrong password!!"})),
                )
                .await
            }
        };
        let unknown = wrong("nobody@example.com").await;
        let bad = wrong("admin@example.com").await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            unknown.body["detail"], bad.body["detail"],
            "no hint whether the account exists"
        );
        // Five free failures (one above, four here), then every failure locks the account.
        for _ in 0..5 {
            wrong("admin@example.com").await;
        }
        let locked = wrong("admin@example.com").await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{locked:?}");
        assert!(locked.body["retry_after"].as_u64().unwrap() > 0);
        // Each failure on a real account is in its organizations' audit log (the unknown one is not).
        let failures = call(
            &state,
            "GET",
            "/api/v1/audit?action=auth.login&outcome=failure",
            Some(&admin),
            None,
            None,
        )
        .await;
        assert_eq!(
            failures.body["items"].as_array().unwrap().len(),
            6,
            "{failures:?}"
        );
        // Even the right password waits out the lockout.
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login",
            None,
            None,
            Some(json!({"email": "admin@example.com", "password": PASSWORD})),
        )
        .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    }
);

both!(
    refresh_rotates_and_reuse_revokes_the_family,
    Edition::Community,
    |state: AppState| async move {
        bootstrap(&state).await;
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login",
            None,
            None,
            Some(json!({"email": "admin@example.com", "password": PASSWORD})),
        )
        .await;
        let first = r.body["session"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/refresh",
            None,
            None,
            Some(json!({"refresh_token": first})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let second = r.body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(first, second);
        // Replaying the first token revokes the family: the second stops working too.
        let replay = call(
            &state,
            "POST",
            "/api/v1/auth/refresh",
            None,
            None,
            Some(json!({"refresh_token": first})),
        )
        .await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
        assert!(replay.body["detail"].as_str().unwrap().contains("revoked"));
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/refresh",
            None,
            None,
            Some(json!({"refresh_token": second})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
);

both!(
    logout_ends_the_session,
    Edition::Community,
    |state: AppState| async move {
        bootstrap(&state).await;
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login",
            None,
            None,
            Some(json!({"email": "admin@example.com", "password": PASSWORD})),
        )
        .await;
        let access = r.body["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let refresh = r.body["session"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            call(
                &state,
                "POST",
                "/api/v1/auth/logout",
                Some(&access),
                None,
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/refresh",
            None,
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
);

both!(
    totp_enrol_login_backup_codes_and_disable,
    Edition::Community,
    |state: AppState| async move {
        use infrapilot_core::identity::{Totp, TotpSecret};
        let (token, _) = bootstrap(&state).await;
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/mfa/enroll",
            Some(&token),
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(
            r.body["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        assert!(r.body["qr_svg"].as_str().unwrap().contains("<svg"));
        let totp = Totp::new(TotpSecret::from_base32(r.body["secret"].as_str().unwrap()).unwrap());
        let now = crate::util::now_secs();
        let bad = call(
            &state,
            "POST",
            "/api/v1/auth/mfa/confirm",
            Some(&token),
            None,
            Some(json!({"code": "000000"})),
        )
        .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let step = Totp::step_at(now).unwrap();
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/mfa/confirm",
            Some(&token),
            None,
            Some(json!({"code": totp.code_for_step(step)})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let codes: Vec<String> = serde_json::from_value(r.body["backup_codes"].clone()).unwrap();
        assert_eq!(codes.len(), 10);

        // Password alone is not enough now.
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login",
            None,
            None,
            Some(json!({"email": "admin@example.com", "password": PASSWORD})),
        )
        .await;
        assert_eq!(r.body["mfa_required"], true);
        assert!(r.body.get("session").is_none());
        let mfa_token = r.body["mfa_token"].as_str().unwrap().to_owned();
        // The step used to confirm cannot be replayed; the next one works.
        let replay = call(
            &state,
            "POST",
            "/api/v1/auth/login/mfa",
            None,
            None,
            Some(json!({"mfa_token": mfa_token, "code": totp.code_for_step(step)})),
        )
        .await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login/mfa",
            None,
            None,
            Some(json!({"mfa_token": mfa_token, "code": totp.code_for_step(step + 1)})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // A backup code works once.
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login",
            None,
            None,
            Some(json!({"email": "admin@example.com", "password": PASSWORD})),
        )
        .await;
        let mfa_token = r.body["mfa_token"].as_str().unwrap().to_owned();
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login/mfa",
            None,
            None,
            Some(json!({"mfa_token": mfa_token, "code": codes[0]})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login/mfa",
            None,
            None,
            Some(json!({"mfa_token": mfa_token, "code": codes[0]})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let me = call(&state, "GET", "/api/v1/auth/me", Some(&token), None, None).await;
        assert_eq!(me.body["backup_codes_left"], 9);
        // Disabling needs password and a code.
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/mfa/disable",
            Some(&token),
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/mfa/disable",
            Some(&token),
            None,
            Some(json!({"password": PASSWORD, "code": codes[1]})),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        let r = call(
            &state,
            "POST",
            "/api/v1/auth/login",
            None,
            None,
            Some(json!({"email": "admin@example.com", "password": PASSWORD})),
        )
        .await;
        assert_eq!(r.body["mfa_required"], false);
    }
);

both!(
    members_invitations_and_the_last_owner,
    Edition::Community,
    |state: AppState| async move {
        let (admin, org) = bootstrap(&state).await;
        let r = call(
            &state,
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(&org),
            Some(json!({
                "email": "viewer@example.com", "name": "Vi", "password": PASSWORD, "role": "viewer",
            })),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let viewer_id = r.body["id"].as_str().unwrap().to_owned();
        let viewer = login(&state, "viewer@example.com").await;
        // A viewer reads but cannot change.
        assert_eq!(
            call(&state, "GET", "/api/v1/members", Some(&viewer), None, None)
                .await
                .status,
            StatusCode::OK
        );
        let r = call(
            &state,
            "POST",
            "/api/v1/invitations",
            Some(&viewer),
            None,
            Some(json!({"email": "x@example.com", "role": "viewer"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // The last owner can neither leave nor be demoted.
        let me = call(&state, "GET", "/api/v1/auth/me", Some(&admin), None, None).await;
        let admin_id = me.body["id"].as_str().unwrap().to_owned();
        let r = call(
            &state,
            "PATCH",
            &format!("/api/v1/members/{admin_id}"),
            Some(&admin),
            None,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert!(r.body["detail"].as_str().unwrap().contains("last owner"));
        // Invite, accept as a new account, sign in.
        let r = call(
            &state,
            "POST",
            "/api/v1/invitations",
            Some(&admin),
            None,
            Some(json!({"email": "new@example.com", "role": "member"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let invite = r.body["token"].as_str().unwrap().to_owned();
        assert_eq!(r.body["invitation"]["role"], "operator");
        let r = call(
            &state,
            "POST",
            "/api/v1/invitations/accept",
            None,
            None,
            Some(json!({"token": invite, "name": "New", "password": PASSWORD})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = call(
            &state,
            "POST",
            "/api/v1/invitations/accept",
            None,
            None,
            Some(json!({"token": invite, "name": "New", "password": PASSWORD})),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "an invitation works once"
        );
        let newbie = login(&state, "new@example.com").await;
        let me = call(&state, "GET", "/api/v1/auth/me", Some(&newbie), None, None).await;
        assert_eq!(me.body["organizations"][0]["role"], "operator");
        // Member limit.
        let r = call(
            &state,
            "PATCH",
            "/api/v1/organization",
            Some(&admin),
            None,
            Some(json!({"max_users": 3})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = call(
            &state,
            "POST",
            "/api/v1/users",
            Some(&admin),
            None,
            Some(json!({
                "email": "four@example.com", "name": "Four", "password": PASSWORD, "role": "viewer",
            })),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert!(r.body["type"].as_str().unwrap().ends_with("limit-reached"));
        // Removing the viewer revokes their access at once.
        assert_eq!(
            call(
                &state,
                "DELETE",
                &format!("/api/v1/members/{viewer_id}"),
                Some(&admin),
                None,
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        let r = call(
            &state,
            "GET",
            "/api/v1/members",
            Some(&viewer),
            Some(&org),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    }
);

both!(
    api_tokens_are_shown_once_capped_and_revocable,
    Edition::Community,
    |state: AppState| async move {
        let (admin, _) = bootstrap(&state).await;
        let r = call(
            &state,
            "POST",
            "/api/v1/users",
            Some(&admin),
            None,
            Some(json!({
                "email": "op@example.com", "name": "Op", "password": PASSWORD, "role": "operator",
            })),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let op = login(&state, "op@example.com").await;
        let r = call(
            &state,
            "POST",
            "/api/v1/api-tokens",
            Some(&op),
            None,
            Some(json!({"name": "ci", "role": "admin"})),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot exceed own role: {r:?}"
        );
        let r = call(
            &state,
            "POST",
            "/api/v1/api-tokens",
            Some(&op),
            None,
            Some(json!({"name": "ci", "expires_in_days": 30})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let secret = r.body["token"].as_str().unwrap().to_owned();
        let id = r.body["api_token"]["id"].as_str().unwrap().to_owned();
        let list = call(
            &state,
            "GET",
            "/api/v1/api-tokens",
            Some(&secret),
            None,
            None,
        )
        .await;
        assert_eq!(list.status, StatusCode::OK, "{list:?}");
        assert_eq!(list.body["items"][0]["role"], "operator");
        assert!(
            !list.body.to_string().contains(&secret[10..]),
            "the secret is never listed"
        );
        assert!(list.body["items"][0]["last_used_at"].is_string());
        let r = call(
            &state,
            "POST",
            "/api/v1/invitations",
            Some(&secret),
            None,
            Some(json!({"email": "x@example.com", "role": "viewer"})),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "an operator token cannot invite"
        );
        assert_eq!(
            call(
                &state,
                "DELETE",
                &format!("/api/v1/api-tokens/{id}"),
                Some(&op),
                None,
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        let r = call(
            &state,
            "GET",
            "/api/v1/api-tokens",
            Some(&secret),
            None,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
);

both!(
    community_has_one_organization,
    Edition::Community,
    |state: AppState| async move {
        let (admin, _) = bootstrap(&state).await;
        let r = call(
            &state,
            "POST",
            "/api/v1/orgs",
            Some(&admin),
            None,
            Some(json!({"name": "Second"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("INFRAPILOT_EDITION=saas")
        );
        let r = call(&state, "POST", "/api/v1/auth/signup", None, None, Some(json!({
        "email": "s@example.com", "name": "S", "password": PASSWORD, "organization_name": "S",
    })))
    .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
);

#[tokio::test]
async fn health_ready_metrics_and_openapi() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    assert_eq!(
        call(&state, "GET", "/healthz", None, None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&state, "GET", "/readyz", None, None, None)
            .await
            .status,
        StatusCode::OK
    );
    call(&state, "GET", "/api/v1/setup", None, None, None).await;
    let m = call(&state, "GET", "/metrics", None, None, None).await;
    let text = m.body.as_str().unwrap();
    assert!(text.contains("route=\"/api/v1/setup\""), "{text}");
    let doc = call(&state, "GET", "/api/openapi.json", None, None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/api/v1/members"].is_object());
}

both!(
    enrollment_tokens_pin_the_ca_and_are_shown_once,
    Edition::Community,
    |state: AppState| async move {
        use infrapilot_core::enrollment::EnrollmentToken;
        let (admin, _) = bootstrap(&state).await;
        let r = call(&state, "POST", "/api/v1/enrollment-tokens", Some(&admin), None, Some(json!({
        "name": "edge hosts", "labels": {"env": "production"}, "max_uses": 2, "expires_in_secs": 3600,
    })))
    .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let text = r.body["token"].as_str().unwrap().to_owned();
        let token = EnrollmentToken::parse(&text).unwrap();
        assert_eq!(token.ca_fingerprint, state.ca().fingerprint());
        let command = r.body["install_command"].as_str().unwrap();
        assert!(
            command.starts_with(
                "curl -fsSL http://127.0.0.1:8080/install.sh | INFRAPILOT_ENROLL_TOKEN="
            ),
            "{command}"
        );
        assert!(command.contains(&text));
        let id = r.body["enrollment_token"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(r.body["enrollment_token"]["status"], "active");
        let list = call(
            &state,
            "GET",
            "/api/v1/enrollment-tokens",
            Some(&admin),
            None,
            None,
        )
        .await;
        assert_eq!(list.body["items"][0]["labels"]["env"], "production");
        assert!(
            !list.body.to_string().contains(&text),
            "the secret is shown once"
        );
        let r = call(
            &state,
            "POST",
            &format!("/api/v1/enrollment-tokens/{id}/revoke"),
            Some(&admin),
            None,
            None,
        )
        .await;
        assert_eq!(r.body["status"], "revoked", "{r:?}");
        for (body, field) in [
            (
                json!({"name": "x", "labels": {"bad key": "v"}}),
                "labels.bad key",
            ),
            (
                json!({"name": "x", "expires_in_secs": 5}),
                "expires_in_secs",
            ),
            (json!({"name": "x", "max_uses": 0}), "max_uses"),
            (json!({"name": ""}), "name"),
        ] {
            let r = call(
                &state,
                "POST",
                "/api/v1/enrollment-tokens",
                Some(&admin),
                None,
                Some(body),
            )
            .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
            assert_eq!(r.body["errors"][0]["field"], field, "{r:?}");
        }
        assert_eq!(
            call(
                &state,
                "DELETE",
                &format!("/api/v1/enrollment-tokens/{id}"),
                Some(&admin),
                None,
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            call(
                &state,
                "GET",
                &format!("/api/v1/enrollment-tokens/{id}"),
                Some(&admin),
                None,
                None
            )
            .await
            .status,
            StatusCode::NOT_FOUND
        );
        let verify = call(
            &state,
            "GET",
            "/api/v1/audit/verify",
            Some(&admin),
            None,
            None,
        )
        .await;
        assert!(verify.body["broken"].is_null(), "{verify:?}");
        assert_eq!(
            verify.body["entries"], 5,
            "setup, login, create, revoke, delete: {verify:?}"
        );
    }
);
