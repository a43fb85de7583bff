//! The committed OpenAPI document (`openapi/openapi.json`) is what the server generates.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p infrapilot-server --test openapi`.

use std::path::PathBuf;

#[test]
fn committed_openapi_matches_the_handlers() {
    let generated = infrapilot_server::openapi()
        .to_pretty_json()
        .expect("serializes")
        + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the handlers: run \
         `UPDATE_OPENAPI=1 cargo test -p infrapilot-server --test openapi` and commit the result"
    );
}

#[test]
fn every_operation_documents_its_errors_as_problems() {
    let doc: serde_json::Value =
        serde_json::from_str(&infrapilot_server::openapi().to_json().unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 20, "only {} paths", paths.len());
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} must be documented as application/problem+json"
                    );
                }
            }
        }
    }
}

#[test]
fn every_schema_reference_resolves() {
    let text = infrapilot_server::openapi().to_json().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut missing: Vec<&str> = text
        .split("#/components/schemas/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or_default())
        .filter(|name| !schemas.contains_key(*name))
        .collect();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "unresolvable schema references: {missing:?}"
    );
}
