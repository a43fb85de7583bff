//! Every JSON request body of the API, read from the OpenAPI document the server serves (so
//! a new endpoint is covered the day it is added):
//!
//! - refuses a field it does not know, at the top and in every nested object (those of its
//!   examples and those its schema describes), with a 400/422 naming the field's path;
//! - accepts every example the document gives for it (request-body and schema examples).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::http_tests_support::{Reply, bootstrap, call};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

const UNKNOWN: &str = "zz_unknown_field";

/// Objects whose keys are the user's own (names of headers, labels, the attributes of the
/// resource a policy dry run judges), not fields: any key is known there, so they are not
/// tried.
const FREE_FORM_MAPS: [&str; 4] = [
    "/config/headers",
    "/rule/scope/agent_selector",
    "/applies_to/labels",
    "/resource",
];

/// One operation with a JSON request body.
struct Operation {
    method: String,
    path: String,
    /// Every example the document gives for the body, by where it was found.
    examples: Vec<(String, Value)>,
    /// The body's properties that are objects of their own (a struct, or a document the
    /// schema leaves open), to try an unknown field in.
    nested: Vec<String>,
}

/// Whether `schema` describes a JSON object (through a `$ref`, or one branch of an optional).
fn is_object(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    schema["properties"].is_object()
        || schema["type"] == "object"
        || ["oneOf", "anyOf", "allOf"].iter().any(|k| {
            schema[*k]
                .as_array()
                .is_some_and(|branches| branches.iter().any(|b| is_object(doc, b)))
        })
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The operations of the served document that take a JSON body.
async fn operations(state: &AppState) -> Vec<Operation> {
    let r = call(state, "GET", "/api/openapi.json", None, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let doc = r.body;
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(content) = op["requestBody"]["content"]["application/json"].as_object() else {
                continue;
            };
            let schema = resolve(&doc, &content["schema"]);
            let mut examples = Vec::new();
            if let Some(e) = content.get("example") {
                examples.push(("requestBody.example".to_owned(), e.clone()));
            }
            for (name, e) in content
                .get("examples")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                examples.push((format!("requestBody.examples.{name}"), e["value"].clone()));
            }
            if let Some(e) = schema.get("example") {
                examples.push(("schema.example".to_owned(), e.clone()));
            }
            for (i, e) in schema
                .get("examples")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                examples.push((format!("schema.examples[{i}]"), e.clone()));
            }
            let nested = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, property)| is_object(&doc, property))
                .map(|(name, _)| name.clone())
                .collect();
            out.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                examples,
                nested,
            });
        }
    }
    assert!(
        out.len() >= 40,
        "only {} operations with a JSON body",
        out.len()
    );
    out
}

/// `/host/locations/0` as the API names it: `host.locations[0]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// The JSON pointer of every object in `value`, the root included.
fn object_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(at.clone());
            for (k, v) in map {
                object_pointers(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                object_pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn named_fields(r: &Reply) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn every_request_body_refuses_unknown_fields_at_every_level() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (token, org) = bootstrap(&state).await;
    let agent = testing::insert_agent(&state, org.parse().unwrap(), "unknown-agent").await;
    let id = "0190a0d6-7a2b-7c3d-8e4f-0000000000aa";
    let mut tried = 0;
    let mut failures = Vec::new();
    let operations = operations(&state).await;
    for op in &operations {
        // The valid shape to start from: the first example, else an empty object.
        let base = op.examples.first().map_or_else(
            || json!({}),
            |(_, e)| with_agent(e.clone(), &agent.to_string()),
        );
        // With an example, the item a change is about exists (a handler that reads the
        // item before it reads a nested document must get that far); without, any id will
        // do, since the body's own fields are read before anything else.
        let uri = if op.examples.is_empty() {
            op.path
                .split('/')
                .map(|s| if s.starts_with('{') { id } else { s })
                .collect::<Vec<_>>()
                .join("/")
        } else {
            uri_for(&state, &token, &operations, op, &base, &agent.to_string()).await
        };
        let mut cases = Vec::new();
        object_pointers(&base, String::new(), &mut cases);
        cases.retain(|p| !FREE_FORM_MAPS.contains(&p.as_str()));
        // Nested objects the schema describes that the example leaves out.
        for name in &op.nested {
            if base.get(name).is_none() {
                cases.push(format!("/{name}"));
            }
        }
        for pointer in cases {
            let mut body = base.clone();
            if body.pointer(&pointer).is_none() {
                body[pointer.trim_start_matches('/')] = json!({});
            }
            let Some(object) = body.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
                panic!("{} {}: {pointer} is not an object", op.method, op.path);
            };
            object.insert(UNKNOWN.to_owned(), json!(true));
            let r = call(&state, &op.method, &uri, Some(&token), None, Some(body)).await;
            let expected = match dotted(&pointer).as_str() {
                "" => UNKNOWN.to_owned(),
                parent => format!("{parent}.{UNKNOWN}"),
            };
            let refused = matches!(
                r.status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            );
            // An externally tagged choice takes one key; a second is refused as such.
            let named = named_fields(&r).contains(&expected)
                || r.body
                    .to_string()
                    .contains("expected map with a single key");
            if !(refused && named) {
                failures.push(format!(
                    "{} {} with {expected}: {} {}",
                    op.method, op.path, r.status, r.body["detail"]
                ));
            }
            tried += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "unknown fields not refused by name:\n{}",
        failures.join("\n")
    );
    // 43 operations at the top, and the nested objects of the examples and schemas.
    assert!(tried >= 60, "only {tried} bodies were tried");
}

#[tokio::test]
async fn every_example_in_the_openapi_document_is_accepted() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (token, org) = bootstrap(&state).await;
    let agent = testing::insert_agent(&state, org.parse().unwrap(), "example-agent").await;
    let operations = operations(&state).await;
    let mut sent = 0;
    for op in &operations {
        for (where_, example) in &op.examples {
            let body = with_agent(example.clone(), &agent.to_string());
            let uri = uri_for(&state, &token, &operations, op, &body, &agent.to_string()).await;
            let r = call(&state, &op.method, &uri, Some(&token), None, Some(body)).await;
            assert!(
                r.status.is_success(),
                "{} {} ({where_}) refused its own example: {r:?}\n{example:#}",
                op.method,
                op.path
            );
            sent += 1;
            // What an example made goes again, so the next example of the same kind (a
            // unique name, a domain) starts from an empty organization.
            if let Some(id) = created_id(&r.body) {
                // The item is under the URI, or beside it (`POST /policies/from-template`
                // makes `/policies/{id}`).
                let item = match uri.rsplit_once('/') {
                    Some((_, last)) if last == id.as_str() => uri.clone(),
                    Some((parent, _))
                        if !operations.iter().any(|o| o.path == format!("{uri}/{{id}}")) =>
                    {
                        format!("{parent}/{id}")
                    }
                    _ => format!("{uri}/{id}"),
                };
                // Items without a DELETE (405) stay; a failure of one that has one shows.
                let r = call(&state, "DELETE", &item, Some(&token), None, None).await;
                assert!(
                    r.status.is_success() || r.status == StatusCode::METHOD_NOT_ALLOWED,
                    "DELETE {item}: {r:?}"
                );
            }
        }
    }
    // The proxy host (proxy and redirection, create and change), default server, access list
    // and alert rule examples (the latter three on both their create and their change), and
    // the policy ones (create, from a template, change, dry run).
    assert!(sent >= 12, "only {sent} examples were sent");
}

/// `body` with this test's agent standing in for the examples' placeholder `agent_id`.
fn with_agent(mut body: Value, agent: &str) -> Value {
    if let Some(object) = body.as_object_mut()
        && object.contains_key("agent_id")
    {
        object.insert("agent_id".to_owned(), json!(agent));
    }
    body
}

/// The id of the item an answer shows: its `id`, or a rule's `rule.id`, or a policy's
/// `policy.id`.
fn created_id(body: &Value) -> Option<String> {
    body["id"]
        .as_str()
        .or_else(|| body["rule"]["id"].as_str())
        .or_else(|| body["policy"]["id"].as_str())
        .map(str::to_owned)
}

/// The URI to send `body` to: the agent for an agent's path, and for a change of one item
/// (`PUT`/`PATCH …/{id}`) an item made first by `POST`ing the same body to the collection.
async fn uri_for(
    state: &AppState,
    token: &str,
    operations: &[Operation],
    op: &Operation,
    body: &Value,
    agent: &str,
) -> String {
    let mut uri = op.path.replace("/agents/{id}", &format!("/agents/{agent}"));
    if let Some(collection) = uri.strip_suffix("/{id}")
        && operations
            .iter()
            .any(|o| o.method == "POST" && o.path == collection)
    {
        let r = call(
            state,
            "POST",
            collection,
            Some(token),
            None,
            Some(body.clone()),
        )
        .await;
        assert!(r.status.is_success(), "POST {collection}: {r:?}");
        let id = created_id(&r.body).expect("the created item's id");
        uri = format!("{collection}/{id}");
    }
    assert!(!uri.contains('{'), "no id to put into {}", op.path);
    uri
}
