//! The policies API on SQLite and PostgreSQL: validation with located errors, templates,
//! changes, the dry run, violations (filter, resolve) and statistics, and roles.

use axum::http::StatusCode;
use serde_json::json;

use super::http_tests_support::{bootstrap, call, create_member, login};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

async fn policies_end_to_end(state: AppState) {
    let (admin, org) = bootstrap(&state).await;

    // A broken document: every problem is named by its location.
    let r = call(&state, "POST", "/api/v1/policies", Some(&admin), None, Some(json!({
        "name": "bad",
        "condition": {"any": [{"field": "image", "operator": "matches"}, {"field": "x", "operator": "nope", "value": 1}]},
        "action": "block",
    }))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("condition.any[0]")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("condition.any[1]")),
        "{fields:?}"
    );
    assert_eq!(r.content_type, "application/problem+json");
    let r = call(
        &state,
        "POST",
        "/api/v1/policies",
        Some(&admin),
        None,
        Some(json!({
            "name": "x", "condition": {"all": []}, "action": "explode",
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.body["errors"].to_string().contains("action"), "{r:?}");

    // A custom policy and one from a template.
    let r = call(
        &state,
        "POST",
        "/api/v1/policies",
        Some(&admin),
        None,
        Some(json!({
            "name": "no busybox in prod",
            "description": "busybox is for tests",
            "condition": {"field": "image", "operator": "matches", "value": "^busybox"},
            "action": "warn",
            "message": "image {value} is a test image",
            "applies_to": {"environments": ["production"], "actions": ["start", "create"]},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let custom = r.body["policy"]["id"].as_str().unwrap().to_owned();
    let templates = call(
        &state,
        "GET",
        "/api/v1/policies/templates",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(
        templates.body.as_array().unwrap().len(),
        11,
        "{templates:?}"
    );
    let r = call(
        &state,
        "POST",
        "/api/v1/policies/from-template",
        Some(&admin),
        None,
        Some(json!({
            "template": {"template": "no_exec_production", "environments": ["production"]},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["template"], "no_exec_production");
    let no_exec = r.body["policy"]["id"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "POST",
        "/api/v1/policies/from-template",
        Some(&admin),
        None,
        Some(json!({
            "template": {"template": "no_such_thing"},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("no_privileged_containers"),
        "{r:?}"
    );
    let r = call(
        &state,
        "POST",
        "/api/v1/policies/from-template",
        Some(&admin),
        None,
        Some(json!({
            "template": {"template": "no_privileged_containers"}, "name": "no busybox in prod",
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "names are unique: {r:?}");

    // Changes are validated too, and audited.
    let r = call(
        &state,
        "PATCH",
        &format!("/api/v1/policies/{custom}"),
        Some(&admin),
        None,
        Some(json!({
            "condition": {"field": "image", "operator": "less_than", "value": "text"},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = call(
        &state,
        "PATCH",
        &format!("/api/v1/policies/{custom}"),
        Some(&admin),
        None,
        Some(json!({
            "enabled": false, "priority": 5,
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["policy"]["enabled"], false);
    assert_eq!(r.body["policy"]["priority"], 5);

    // The dry run uses the agent's labels: exec on a production agent is blocked.
    let prod = testing::insert_agent(&state, org.parse().unwrap(), "prod-host").await;
    let r = call(
        &state,
        "PATCH",
        &format!("/api/v1/agents/{prod}"),
        Some(&admin),
        None,
        Some(json!({
            "labels": {"env": "production"},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = call(&state, "POST", "/api/v1/policies/evaluate", Some(&admin), None, Some(json!({
        "resource": {"name": "web", "image": "busybox:1"}, "operation": "exec", "agent_id": prod,
    }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["decision"], "block", "{r:?}");
    let r = call(
        &state,
        "POST",
        "/api/v1/policies/evaluate",
        Some(&admin),
        None,
        Some(json!({
            "resource": {"name": "web", "image": "busybox:1"}, "operation": "exec",
        })),
    )
    .await;
    assert_eq!(
        r.body["decision"], "allow",
        "no agent, no environment: {r:?}"
    );

    // Violations: filters, resolution, statistics.
    let v1 = testing::insert_violation(
        &state,
        org.parse().unwrap(),
        no_exec.parse().unwrap(),
        "web",
    )
    .await;
    let _v2 =
        testing::insert_violation(&state, org.parse().unwrap(), custom.parse().unwrap(), "db")
            .await;
    let r = call(
        &state,
        "GET",
        "/api/v1/policy-violations",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{r:?}");
    assert_eq!(r.body["items"][0]["resource"], "db", "newest first");
    let r = call(
        &state,
        "GET",
        &format!("/api/v1/policy-violations?policy_id={no_exec}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{r:?}");
    let r = call(
        &state,
        "GET",
        "/api/v1/policy-violations?limit=1",
        Some(&admin),
        None,
        None,
    )
    .await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = call(
        &state,
        "GET",
        &format!("/api/v1/policy-violations?limit=1&cursor={cursor}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"][0]["resource"], "web", "{r:?}");
    assert!(r.body["next_cursor"].is_null());
    let r = call(
        &state,
        "GET",
        "/api/v1/policy-violations?status=maybe",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(
        &state,
        "POST",
        &format!("/api/v1/policy-violations/{v1}/resolve"),
        Some(&admin),
        None,
        Some(json!({"note": "exec was approved"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["resolution_note"], "exec was approved");
    assert!(r.body["resolved_at"].is_string());
    let r = call(
        &state,
        "POST",
        &format!("/api/v1/policy-violations/{v1}/resolve"),
        Some(&admin),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    let r = call(
        &state,
        "GET",
        "/api/v1/policy-violations?status=open",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["resource"], "db");
    let r = call(
        &state,
        "GET",
        "/api/v1/policies/stats",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["policies"], 2);
    assert_eq!(r.body["enabled"], 1);
    assert_eq!(r.body["violations"], 2);
    assert_eq!(r.body["open"], 1);
    assert_eq!(r.body["by_action"]["warn"]["total"], 2, "{r:?}");

    // A viewer reads but does not write.
    create_member(&state, &admin, "viewer@example.com").await;
    let viewer = login(&state, "viewer@example.com").await;
    let r = call(&state, "GET", "/api/v1/policies", Some(&viewer), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = call(
        &state,
        "DELETE",
        &format!("/api/v1/policies/{custom}"),
        Some(&viewer),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Deleting keeps the history; the audit log has every change.
    let r = call(
        &state,
        "DELETE",
        &format!("/api/v1/policies/{custom}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &state,
        "GET",
        &format!("/api/v1/policies/{custom}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &state,
        "GET",
        "/api/v1/policy-violations",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let audit = call(
        &state,
        "GET",
        "/api/v1/audit?limit=200",
        Some(&admin),
        None,
        None,
    )
    .await
    .body
    .to_string();
    for action in [
        "policy.create",
        "policy.update",
        "policy.delete",
        "policy_violation.resolve",
    ] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit log"
        );
    }
}

#[tokio::test]
async fn policies_end_to_end_sqlite() {
    policies_end_to_end(testing::app_state(Kind::Sqlite, Edition::Community).await).await;
}

#[tokio::test]
async fn policies_end_to_end_postgres() {
    policies_end_to_end(testing::app_state(Kind::Postgres, Edition::Community).await).await;
}
