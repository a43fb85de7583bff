//! Every object of a host document refuses a field it does not know, at every depth: a
//! misspelt option must never be dropped silently (the host would be served without it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nginx_support;

use infrapilot_core::nginx::*;
use nginx_support::*;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

const UNKNOWN: &str = "zz_unknown_option";

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

/// Asserts that `T` accepts `document` and refuses it with an unknown field added to each of
/// its objects, naming that field. Returns how many objects were tried.
fn check_every_level<T: DeserializeOwned + std::fmt::Debug>(document: &Value) -> usize {
    serde_json::from_value::<T>(document.clone())
        .unwrap_or_else(|e| panic!("the document itself is refused: {e}\n{document}"));
    let mut pointers = Vec::new();
    object_pointers(document, String::new(), &mut pointers);
    for pointer in &pointers {
        let mut changed = document.clone();
        changed
            .pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert(UNKNOWN.to_owned(), Value::Bool(true));
        match serde_json::from_value::<T>(changed) {
            Ok(parsed) => panic!("{UNKNOWN} at {pointer:?} was dropped silently: {parsed:?}"),
            // An externally tagged choice (`{"megabytes": 50}`) takes exactly one key; a
            // second one is refused as such, which names the object rather than the key.
            Err(e) => assert!(
                e.to_string().contains(UNKNOWN)
                    || e.to_string().contains("expected map with a single key"),
                "{UNKNOWN} at {pointer:?} refused without being named: {e}"
            ),
        }
    }
    pointers.len()
}

#[test]
fn every_object_of_the_fixture_site_refuses_unknown_fields() {
    let site = Site {
        default_server: DefaultServer {
            unclaimed: Unclaimed::Redirect {
                target: infrapilot_core::values::Domain::parse("example.org").unwrap(),
                target_scheme: TargetScheme::Https,
                status: RedirectStatus::Found,
                preserve_path: true,
            },
            ..default_server()
        },
        proxy_hosts: vec![
            plain_host(),
            tls_host(),
            locations_host(),
            access_host(),
            rate_limit_host(),
            websocket_host(),
        ],
        redirection_hosts: vec![redirect_host()],
    };
    let document = serde_json::to_value(&site).unwrap();
    // The site, its default server and unclaimed answer, each host with its nested objects.
    let tried = check_every_level::<Site>(&document);
    assert!(tried >= 30, "only {tried} objects were tried");
    for host in document["proxy_hosts"].as_array().unwrap() {
        check_every_level::<ProxyHost>(host);
    }
    for host in document["redirection_hosts"].as_array().unwrap() {
        check_every_level::<RedirectionHost>(host);
    }
    check_every_level::<DefaultServer>(&document["default_server"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_object_of_any_valid_site_refuses_unknown_fields(site in site()) {
        check_every_level::<Site>(&serde_json::to_value(&site).unwrap());
    }
}
