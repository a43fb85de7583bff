//! The cross-tenant test: two organizations with data; every operation of the API (read from
//! the OpenAPI document, so a new endpoint is covered the day it is added) is tried with
//! organization A's session and A's API token — against B's ids, and with `X-Org-Id: B`.
//! B's data must never appear in an answer, and B must be exactly as it was afterwards.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::docker_tests::docker;
use super::http_tests::{PASSWORD, Reply, call, login};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

pub(super) struct Tenant {
    token: String,
    pub(super) org: String,
    user: String,
}

pub(super) async fn signup(state: &AppState, email: &str, org_name: &str) -> Tenant {
    let (user, org) = super::http_tests_support::signup(state, email, org_name).await;
    Tenant {
        token: login(state, email).await,
        org,
        user,
    }
}

/// Everything B has, as B sees it.
async fn snapshot(state: &AppState, b: &Tenant, carol: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for uri in [
        "/api/v1/organization".to_owned(),
        "/api/v1/members".to_owned(),
        "/api/v1/invitations".to_owned(),
        "/api/v1/api-tokens?all=true".to_owned(),
        "/api/v1/enrollment-tokens".to_owned(),
        "/api/v1/agents".to_owned(),
        "/api/v1/policies".to_owned(),
        "/api/v1/policy-violations".to_owned(),
        "/api/v1/proxy-hosts".to_owned(),
        "/api/v1/certificates".to_owned(),
        format!("/api/v1/users/{carol}"),
        "/api/v1/audit?limit=200".to_owned(),
        "/api/v1/logs?order=oldest".to_owned(),
        "/api/v1/logs/streams".to_owned(),
        "/api/v1/logs/settings".to_owned(),
        "/api/v1/events?type=container.die".to_owned(),
        "/api/v1/alert-channels".to_owned(),
        "/api/v1/alert-rules".to_owned(),
        "/api/v1/access-lists".to_owned(),
        "/api/v1/alerts".to_owned(),
    ] {
        let r = call(state, "GET", &uri, Some(&b.token), None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {r:?}");
        if uri == "/api/v1/agents" {
            // Heartbeats change an online agent's metrics and times; what a tenant could
            // change is the rest.
            let agents: Vec<Value> = r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| json!([a["id"], a["name"], a["labels"], a["disabled"]]))
                .collect();
            out.push(json!(agents));
            continue;
        }
        out.push(r.body);
    }
    out
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    if method == "get" || method == "delete" {
        return None;
    }
    Some(match path {
        "/api/v1/members/{user_id}" => json!({"role": "admin"}),
        "/api/v1/users/{id}" => json!({"name": "pwned", "disabled": true}),
        "/api/v1/organization" => json!({"name": "pwned"}),
        "/api/v1/invitations" => json!({"email": "x@example.com", "role": "viewer"}),
        "/api/v1/api-tokens" => json!({"name": "x"}),
        "/api/v1/enrollment-tokens" => json!({"name": "x"}),
        "/api/v1/agents/{id}" => json!({"name": "pwned", "disabled": true}),
        "/api/v1/access-lists/{id}" => json!({"name": "pwned", "list": {"rules": [
            {"action": "allow", "cidr": "0.0.0.0/0"}], "users": [], "satisfy": "any"}}),
        "/api/v1/alert-channels/{id}" => json!({"name": "pwned",
            "config": {"type": "webhook", "url": "http://127.0.0.1:9/pwned"}}),
        "/api/v1/alert-rules/{id}" => json!({"rule": {"name": "pwned", "kind": "agent_offline",
            "after_secs": 60, "severity": "info", "enabled": false}}),
        _ => json!({}),
    })
}

async fn check_cross_tenant(state: AppState) {
    let a = signup(&state, "alice@example.com", "Alpha").await;
    let b = signup(&state, "bob@example.com", "Beta").await;

    // B's data: a member, an invitation, an API token, an enrollment token.
    // Carol joins B by accepting an invitation as a new account.
    let r = call(
        &state,
        "POST",
        "/api/v1/invitations",
        Some(&b.token),
        None,
        Some(json!({"email": "carol@example.com", "role": "viewer"})),
    )
    .await;
    let r = call(
        &state,
        "POST",
        "/api/v1/invitations/accept",
        None,
        None,
        Some(json!({
            "token": r.body["token"], "name": "Carol", "password": PASSWORD,
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let carol = r.body["user_id"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "POST",
        "/api/v1/invitations",
        Some(&b.token),
        None,
        Some(json!({"email": "dave@example.com", "role": "admin"})),
    )
    .await;
    let invitation = r.body["invitation"]["id"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "POST",
        "/api/v1/api-tokens",
        Some(&b.token),
        None,
        Some(json!({"name": "b-ci"})),
    )
    .await;
    let b_api_token = r.body["api_token"]["id"].as_str().unwrap().to_owned();
    let b_api_secret = r.body["token"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "POST",
        "/api/v1/enrollment-tokens",
        Some(&b.token),
        None,
        Some(json!({"name": "b-hosts", "labels": {"env": "beta-prod"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let enrollment = r.body["enrollment_token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent_id = testing::insert_agent(&state, b.org.parse().unwrap(), "beta-host").await;
    let agent = agent_id.to_string();
    // B's agent is online with the real Docker engine behind it, and runs a container of B's:
    // an operation that forgot the organization would reach it and succeed.
    let b_container = BetaContainer::start().await;
    tokio::spawn(crate::agents::builtin::serve(
        state.clone(),
        b.org.parse().unwrap(),
        agent_id,
        "/var/run/docker.sock".into(),
    ));
    wait_online(&state, &b.token, &agent).await;
    // B's logs and events, as B's agent ships them: a container's line and a Docker event.
    seed_logs(&state, b.org.parse().unwrap(), agent_id).await;
    // B's alerting: a channel with a secret, a rule that notifies it, an alert.
    let r = call(
        &state,
        "POST",
        "/api/v1/alert-channels",
        Some(&b.token),
        None,
        Some(json!({"name": "beta-hook", "config": {"type": "webhook",
            "url": "http://127.0.0.1:9/hook", "secret": "beta-secret-webhook-key-123"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let channel = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "POST",
        "/api/v1/alert-rules",
        Some(&b.token),
        None,
        Some(
            json!({"rule": {"name": "beta-rule", "kind": "agent_offline", "after_secs": 60,
            "severity": "critical", "enabled": true}, "channels": [channel]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let rule = r.body["rule"]["id"].as_str().unwrap().to_owned();
    let alert = seed_alert(&state, b.org.parse().unwrap(), rule.parse().unwrap()).await;
    let r = call(
        &state,
        "POST",
        "/api/v1/access-lists",
        Some(&b.token),
        None,
        Some(json!({"name": "beta-office", "list": {"rules": [{"action": "allow", "cidr": "10.9.9.0/24"}],
            "users": [], "satisfy": "any"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let access_list = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "POST",
        "/api/v1/policies/from-template",
        Some(&b.token),
        None,
        Some(json!({"template": {"template": "no_privileged_containers"}, "name": "beta-policy"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let policy = r.body["policy"]["id"].as_str().unwrap().to_owned();
    let violation = testing::insert_violation(
        &state,
        b.org.parse().unwrap(),
        policy.parse().unwrap(),
        "beta-secret-container",
    )
    .await
    .to_string();
    let beta_host =
        json!({"domains": ["beta-secret.example"], "upstream": "http://beta-upstream:80"});
    let r = call(
        &state,
        "POST",
        "/api/v1/proxy-hosts",
        Some(&b.token),
        None,
        Some(json!({"agent_id": agent, "host": beta_host})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let proxy_host = r.body["id"].as_str().unwrap().to_owned();
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = rcgen::CertificateParams::new(vec!["beta-tls.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    let r = call(
        &state,
        "POST",
        "/api/v1/certificates",
        Some(&b.token),
        None,
        Some(json!({"name": "beta-cert", "certificate": pem, "private_key": key.serialize_pem()})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let certificate = r.body["id"].as_str().unwrap().to_owned();

    // A's credentials: a session and an owner-level API token.
    let r = call(
        &state,
        "POST",
        "/api/v1/api-tokens",
        Some(&a.token),
        None,
        Some(json!({"name": "a-ci"})),
    )
    .await;
    let a_api = r.body["token"].as_str().unwrap().to_owned();

    let before = snapshot(&state, &b, &carol).await;
    // Strings that belong to B and must never reach A.
    let secrets = [
        carol.as_str(),
        invitation.as_str(),
        b_api_token.as_str(),
        enrollment.as_str(),
        b.user.as_str(),
        agent.as_str(),
        "beta-host",
        "carol@example.com",
        "dave@example.com",
        "bob@example.com",
        "Beta",
        "b-ci",
        "b-hosts",
        "beta-prod",
        policy.as_str(),
        violation.as_str(),
        "beta-policy",
        "beta-secret-container",
        "beta-secret.example",
        "beta-tls.example",
        "beta-cert",
        certificate.as_str(),
        "beta-upstream",
        proxy_host.as_str(),
        b_container.name.as_str(),
        b_container.id.as_str(),
        "beta-secret-log-line",
        "beta-secret-crash",
        "beta-hook",
        "beta-secret-webhook-key-123",
        "beta-rule",
        "beta-secret-alert",
        "beta-office",
        "10.9.9.0",
        access_list.as_str(),
        channel.as_str(),
        rule.as_str(),
        alert.as_str(),
    ];

    let doc: Value = serde_json::from_str(&crate::openapi().to_json().unwrap()).unwrap();
    let mut tried = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let uri = path
            .replace("/members/{user_id}", &format!("/members/{carol}"))
            .replace("/users/{id}", &format!("/users/{carol}"))
            .replace("/invitations/{id}", &format!("/invitations/{invitation}"))
            .replace("/api-tokens/{id}", &format!("/api-tokens/{b_api_token}"))
            .replace(
                "/enrollment-tokens/{id}",
                &format!("/enrollment-tokens/{enrollment}"),
            )
            .replace("/agents/{id}", &format!("/agents/{agent}"))
            .replace("/policies/{id}", &format!("/policies/{policy}"))
            .replace("/proxy-hosts/{id}", &format!("/proxy-hosts/{proxy_host}"))
            .replace(
                "/certificates/{id}",
                &format!("/certificates/{certificate}"),
            )
            .replace(
                "/policy-violations/{id}",
                &format!("/policy-violations/{violation}"),
            )
            .replace(
                "/alert-channels/{id}",
                &format!("/alert-channels/{channel}"),
            )
            .replace("/alert-rules/{id}", &format!("/alert-rules/{rule}"))
            .replace(
                "/access-lists/{id}",
                &format!("/access-lists/{access_list}"),
            )
            .replace("/alerts/{id}", &format!("/alerts/{alert}"))
            .replace("{container}", &b_container.name)
            .replace("{network}", "beta-net")
            .replace("{image}", "beta-image")
            .replace("{volume}", "beta-volume")
            .replace("{project}", "beta-stack")
            .replace("{action}", "restart");
        assert!(!uri.contains('{'), "no B id to put into {path}");
        for method in ops.as_object().unwrap().keys() {
            for credential in [&a.token, &a_api] {
                for org_header in [Some(b.org.as_str()), None] {
                    // An API token refuses any X-Org-Id but its own, with 401.
                    let r: Reply = call(
                        &state,
                        &method.to_uppercase(),
                        &uri,
                        Some(credential),
                        org_header,
                        if (path == "/api/v1/proxy-hosts/{id}" && method == "put")
                            || (path == "/api/v1/proxy-hosts" && method == "post")
                        {
                            // A valid body, so the handler gets as far as the lookup.
                            Some(json!({"agent_id": agent, "host": beta_host}))
                        } else {
                            body_for(method, path)
                        },
                    )
                    .await;
                    tried += 1;
                    let text = r.body.to_string();
                    for secret in secrets {
                        assert!(
                            !text.contains(secret),
                            "{method} {uri} (org header {org_header:?}) leaked {secret:?}: {text}"
                        );
                    }
                    assert!(
                        r.status != StatusCode::INTERNAL_SERVER_ERROR,
                        "{method} {uri}: {r:?}"
                    );
                    if org_header.is_some()
                        && path != "/api/v1/orgs"
                        && !path.starts_with("/api/v1/auth")
                        && !path.starts_with("/api/v1/setup")
                        && ![
                            "/healthz",
                            "/readyz",
                            "/metrics",
                            "/install.sh",
                            "/download/infrapilot-agentd",
                        ]
                        .contains(&path.as_str())
                        && path != "/api/v1/invitations/accept"
                    {
                        assert!(
                            !r.status.is_success(),
                            "{method} {uri} with X-Org-Id of B succeeded: {r:?}"
                        );
                    }
                }
            }
        }
    }
    assert!(tried > 100, "only {tried} requests");
    // Nothing of B changed, and B's own token still works.
    let after = snapshot(&state, &b, &carol).await;
    assert!(
        before == after,
        "organization B changed:\nbefore {before:?}\nafter {after:?}"
    );
    let r = call(
        &state,
        "GET",
        "/api/v1/members",
        Some(&b_api_secret),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let verify = call(
        &state,
        "GET",
        "/api/v1/audit/verify",
        Some(&b.token),
        None,
        None,
    )
    .await;
    assert!(verify.body["broken"].is_null(), "{verify:?}");
    assert_eq!(
        b_container.started_at(),
        b_container.started,
        "B's container was not stopped, restarted or removed"
    );
}

/// Stores a container line and a Docker event for `agent` of `org`, as shipped.
async fn seed_logs(
    state: &AppState,
    org: infrapilot_core::ids::OrgId,
    agent: infrapilot_core::ids::AgentId,
) {
    use infrapilot_proto::v1::{LogBatch, LogRecord};
    let now = crate::util::now_micros() * 1000;
    let lines = LogBatch {
        stream: "container:beta".into(),
        kind: "container".into(),
        container_id: "beta".into(),
        container_name: "beta-secret-container".into(),
        records: vec![LogRecord {
            seq: 1,
            time_unix_nanos: now,
            source: "stdout".into(),
            line: b"ERROR beta-secret-log-line".to_vec(),
        }],
        ..Default::default()
    };
    assert_eq!(
        crate::logs::ingest(state, org, agent, lines).await.unwrap(),
        1
    );
    let event = json!({
        "action": "die", "container_id": "beta", "container_name": "beta-secret-crash",
        "image": "busybox", "exit_code": 3, "time_unix_nanos": now,
    });
    let events = LogBatch {
        stream: "docker:events".into(),
        kind: "docker_events".into(),
        records: vec![LogRecord {
            seq: 1,
            time_unix_nanos: now,
            source: "event".into(),
            line: event.to_string().into_bytes(),
        }],
        ..Default::default()
    };
    assert_eq!(
        crate::logs::ingest(state, org, agent, events)
            .await
            .unwrap(),
        1
    );
}

/// Stores an open alert of `rule` for `org`.
async fn seed_alert(
    state: &AppState,
    org: infrapilot_core::ids::OrgId,
    rule: infrapilot_core::ids::AlertRuleId,
) -> String {
    use crate::store::{Actor, AlertRecord, OrgScope};
    let scope = OrgScope::new(
        org,
        Actor::System,
        infrapilot_core::rbac::Effective::Org(infrapilot_core::rbac::OrgRole::Viewer),
    );
    let id = crate::util::new_id().to_string();
    let mut tx = state.store().org(&scope).await.unwrap();
    tx.insert_alert(&AlertRecord {
        id: id.clone(),
        rule_id: rule,
        rule_name: "beta-rule".into(),
        subject_key: "{}".into(),
        subject: "beta-secret-alert".into(),
        severity: "critical".into(),
        summary: "beta-secret-alert fired".into(),
        details: json!({}),
        fired_at: crate::util::now_micros(),
        resolved_at: None,
        resolution: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A running container of organization B's, removed when dropped.
struct BetaContainer {
    name: String,
    id: String,
    /// `State.StartedAt` when it started.
    started: String,
}

impl BetaContainer {
    async fn start() -> BetaContainer {
        let image = infrapilot_agent_lib::testing::ensure_test_image()
            .await
            .expect("the test image");
        let name = format!(
            "beta-web-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let id = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "infrapilot.test=cross-tenant",
            &image,
            "sleep",
            "3600",
        ]);
        let mut container = BetaContainer {
            name,
            id,
            started: String::new(),
        };
        container.started = container.started_at();
        container
    }

    fn started_at(&self) -> String {
        docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.StartedAt}}",
            &self.id,
        ])
    }
}

impl Drop for BetaContainer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.id])
            .output();
    }
}

async fn wait_online(state: &AppState, token: &str, agent: &str) {
    for _ in 0..100 {
        let r = call(
            state,
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(token),
            None,
            None,
        )
        .await;
        if r.body["status"] == "online" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("B's agent did not come online");
}

#[tokio::test]
async fn sqlite() {
    check_cross_tenant(testing::app_state(Kind::Sqlite, Edition::Saas).await).await;
}

#[tokio::test]
async fn postgres() {
    check_cross_tenant(testing::app_state(Kind::Postgres, Edition::Saas).await).await;
}
