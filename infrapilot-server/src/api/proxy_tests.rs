//! Proxy hosts end to end: the API, the community built-in agent with the host's real nginx
//! (Debian's, in a temporary directory on loopback ports), and real traffic through it to
//! upstreams on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use infrapilot_agent_lib::logs::{LogConfig, LogPipeline, Selection};
use infrapilot_agent_lib::nginx::acme::{AcmeManager, Http01Webroot};
use infrapilot_agent_lib::nginx::{
    NginxController, NginxRunner, ProxyCommands, UpstreamNetworks, host_layout,
};
use infrapilot_agent_lib::testing::free_port;
use infrapilot_agent_lib::testing::http;
use infrapilot_agent_lib::testing::pebble::Pebble;
use infrapilot_core::nginx::Layout;
use serde_json::{Value, json};

use super::http_tests_support::{Reply, bootstrap, call};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

const NGINX: &str = "/usr/sbin/nginx";

async fn upstream(name: &'static str) -> u16 {
    http::upstream(name).await.unwrap()
}

async fn get(port: u16, host: &str) -> (u16, String) {
    http::get(port, host).await.unwrap()
}

/// Waits for five answers in a row with `body` from the reloaded configuration.
async fn until_body(port: u16, host: &str, body: &str) -> String {
    http::until(port, host, |r| r.1 == body).await.unwrap().1
}

/// Waits for five answers in a row with `code` from the reloaded configuration.
async fn until_code(port: u16, host: &str, code: u16) -> (u16, String) {
    http::until(port, host, |r| r.0 == code).await.unwrap()
}

struct Env {
    state: AppState,
    admin: String,
    agent: String,
    layout: Layout,
    root: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::process::Command::new(NGINX)
            .args(["-q", "-c", &self.layout.main_conf_path(), "-s", "stop"])
            .output();
    }
}

impl Env {
    async fn new() -> Env {
        Self::start(None).await
    }

    /// The built-in agent with nginx and, given `pebble`, Let's Encrypt from it.
    async fn start(pebble: Option<(&Pebble, u16)>) -> Env {
        Self::start_with(
            pebble,
            Some(infrapilot_agent_lib::nginx::DEFAULT_LOG_ROTATION),
        )
        .await
    }

    /// [`Env::start`] with nginx's logs rotated past `log_rotation`.
    async fn start_with(pebble: Option<(&Pebble, u16)>, log_rotation: Option<u64>) -> Env {
        assert!(
            Path::new(NGINX).exists(),
            "these tests need nginx at {NGINX} (cargo xtask provision installs it)"
        );
        let root = tempfile::tempdir().unwrap();
        let http_port = pebble.map_or_else(free_port, |(_, port)| port);
        let layout = host_layout(root.path(), http_port, free_port()).unwrap();
        // The engine finds the containers hosts forward to (reached by address from the host).
        let docker = infrapilot_agent_lib::testing::connect().await.unwrap();
        let mut proxy = ProxyCommands::new(
            NginxController::new(layout.clone(), NginxRunner::host(NGINX)).with_upstreams(
                UpstreamNetworks::host(docker, root.path().join("upstream-networks.json")),
            ),
            root.path().join("desired-state.json"),
        )
        .with_log_rotation(log_rotation);
        let mut vars = Vec::new();
        let directory;
        if let Some((pebble, _)) = pebble {
            proxy = proxy.with_acme(AcmeManager::new(
                root.path().join("acme"),
                Box::new(Http01Webroot::new(layout.acme_webroot.as_str())),
                Some(pebble.listener_ca_file()),
            ));
            directory = pebble.directory_url();
            vars.push(("INFRAPILOT_ACME_DIRECTORY_URL", directory.as_str()));
            vars.push(("INFRAPILOT_ACME_EMAIL", "ops@infrapilot.test"));
        }
        let proxy = Arc::new(proxy);
        let db = testing::database(Kind::Sqlite).await;
        let state = testing::app_state_with(&db, Edition::Community, &vars).await;
        let (admin, _) = bootstrap(&state).await;
        // Logs: nginx's access and error logs (no container's: the label matches none).
        let mut logs = LogConfig::new(root.path().join("agent-logs"));
        logs.selection = Selection::Label {
            key: "infrapilot.test.none".to_owned(),
            value: None,
        };
        let logs = LogPipeline::open(logs).unwrap();
        tokio::spawn(crate::agents::builtin::run_with(
            state.clone(),
            "/var/run/docker.sock".into(),
            crate::agents::builtin::BuiltinOptions {
                proxy: Some(proxy),
                logs: Some(logs),
            },
        ));
        let mut agent = None;
        for _ in 0..100 {
            let list = call(&state, "GET", "/api/v1/agents", Some(&admin), None, None).await;
            if let Some(a) = list.body["items"].as_array().and_then(|a| a.first())
                && a["status"] == "online"
            {
                agent = Some(a["id"].as_str().unwrap().to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Env {
            state,
            admin,
            agent: agent.expect("the built-in agent comes online"),
            layout,
            root,
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        call(&self.state, method, path, Some(&self.admin), None, body).await
    }

    async fn create(&self, host: Value) -> Reply {
        self.api(
            "POST",
            "/api/v1/proxy-hosts",
            Some(json!({"agent_id": self.agent, "host": host})),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_hosts_are_applied_quarantined_changed_and_removed_through_the_api() {
    let env = Env::new().await;
    let port = env.layout.http_port;
    let (one, two) = (upstream("one").await, upstream("two").await);

    // Two hosts, applied and served.
    let r = env
        .create(json!({"domains": ["one.test"], "upstream": format!("http://127.0.0.1:{one}")}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let first = r.body["id"].as_str().unwrap().to_owned();
    let r = env
        .create(json!({"domains": ["two.test"], "upstream": format!("http://127.0.0.1:{two}")}))
        .await;
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let second = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        until_code(port, "one.test", 200).await,
        (200, "upstream one".to_owned())
    );
    assert_eq!(
        until_code(port, "two.test", 200).await,
        (200, "upstream two".to_owned())
    );

    // A host whose certificate is not there yet (this agent has no Let's Encrypt set up) is
    // quarantined with the reason; the others keep answering. (A certificate file nginx
    // cannot load is quarantined with nginx's own message: the agent library's nginx tests.)
    let r = env
        .create(json!({
            "domains": ["broken.test"],
            "upstream": format!("http://127.0.0.1:{one}"),
            "ssl": {"mode": "lets_encrypt", "certificate": uuid::Uuid::new_v4(),
                    "force_https": false, "http2": false},
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "quarantined", "{r:?}");
    assert!(
        r.body["status_error"]
            .as_str()
            .unwrap()
            .contains("waiting for its Let's Encrypt certificate: Let's Encrypt is not set up"),
        "{r:?}"
    );
    assert_eq!(
        get(port, "one.test").await,
        (200, "upstream one".to_owned())
    );
    assert_eq!(
        get(port, "two.test").await,
        (200, "upstream two".to_owned())
    );

    // A domain another host serves conflicts; config syntax in any field is refused with the
    // field named, and nothing changes.
    let r = env
        .create(json!({"domains": ["ONE.test"], "upstream": "http://127.0.0.1:1"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    for (host, field) in [
        (
            json!({"domains": ["x.test;"], "upstream": "http://127.0.0.1:1"}),
            "host.domains[0]",
        ),
        (
            json!({"domains": ["x.test"], "upstream": "http://a:1 } server {"}),
            "host.upstream",
        ),
        (
            json!({"domains": ["x.test"], "upstream": "http://a:1\nreturn 200"}),
            "host.upstream",
        ),
        (
            json!({"domains": ["x.test\""], "upstream": "http://a:1"}),
            "host.domains[0]",
        ),
    ] {
        let r = env.create(host.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{host}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(r.body["errors"][0]["field"], field, "{host}: {r:?}");
    }
    let r = env
        .api(
            "POST",
            "/api/v1/proxy-hosts",
            Some(json!({"agent_id": uuid::Uuid::new_v4(), "host": {"domains": ["y.test"], "upstream": "http://a:1"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "agent_id", "{r:?}");

    // Change the first host's upstream: it now reaches upstream two.
    let r = env
        .api(
            "PUT",
            &format!("/api/v1/proxy-hosts/{first}"),
            Some(json!({
                "agent_id": env.agent,
                "host": {"domains": ["one.test"], "upstream": format!("http://127.0.0.1:{two}")},
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["status"], "applied", "{r:?}");
    assert_eq!(
        until_body(port, "one.test", "upstream two").await,
        "upstream two",
        "the change is live"
    );

    // The preview shows the rendered config, with this agent's own ports and paths (it runs
    // nginx on free loopback ports under a temporary directory, not on 80 under
    // /var/lib/infrapilot-agent); the agent is in sync.
    let r = env
        .api("GET", &format!("/api/v1/proxy-hosts/{first}/preview"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let config = r.body["files"][0]["contents"].as_str().unwrap();
    assert!(config.contains("server_name one.test"), "{r:?}");
    assert_eq!(r.body["layout_reported"], true, "{r:?}");
    assert_eq!(r.body["http_port"], env.layout.http_port, "{r:?}");
    assert_eq!(r.body["https_port"], env.layout.https_port, "{r:?}");
    assert!(
        config.contains(&format!("listen {};", env.layout.http_port)),
        "{config}"
    );
    assert!(config.contains(env.layout.log_dir.as_str()), "{config}");
    assert!(!config.contains("/var/lib/infrapilot-agent"), "{config}");
    assert!(
        r.body["files"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with(env.layout.conf_dir.as_str()),
        "{r:?}"
    );
    let r = env
        .api("GET", &format!("/api/v1/agents/{}/proxy", env.agent), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["in_sync"], true, "{r:?}");
    assert_eq!(r.body["hosts"].as_array().unwrap().len(), 3, "{r:?}");

    // Disable, then delete the second host: it stops being served.
    let r = env
        .api(
            "PUT",
            &format!("/api/v1/proxy-hosts/{second}"),
            Some(json!({
                "agent_id": env.agent, "enabled": false,
                "host": {"domains": ["two.test"], "upstream": format!("http://127.0.0.1:{two}")},
            })),
        )
        .await;
    assert_eq!(r.body["status"], "disabled", "{r:?}");
    assert_eq!(until_code(port, "two.test", 404).await.0, 404);
    let r = env
        .api("DELETE", &format!("/api/v1/proxy-hosts/{second}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let r = env
        .api("GET", &format!("/api/v1/proxy-hosts/{second}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(get(port, "one.test").await.0, 200);

    // The agent persisted what it runs, at the server's revision.
    let r = env
        .api("GET", &format!("/api/v1/agents/{}/proxy", env.agent), None)
        .await;
    let persisted: Value =
        serde_json::from_slice(&std::fs::read(env.root.path().join("desired-state.json")).unwrap())
            .unwrap();
    assert_eq!(persisted["revision"], r.body["desired_revision"], "{r:?}");
    assert_eq!(r.body["applied_revision"], r.body["desired_revision"]);

    // A policy can require HTTPS-only hosts.
    let r = env
        .api(
            "POST",
            "/api/v1/policies/from-template",
            Some(json!({"template": {"template": "require_ssl"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = env
        .create(json!({"domains": ["plain.test"], "upstream": "http://127.0.0.1:1"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

    let audit = env
        .api("GET", "/api/v1/audit?limit=100", None)
        .await
        .body
        .to_string();
    for action in [
        "proxy_host.create",
        "proxy_host.update",
        "proxy_host.delete",
    ] {
        assert!(audit.contains(action), "{action} is audited");
    }
}

/// `GET /` over HTTPS through nginx, trusting only `ca_pem`.
async fn get_tls(port: u16, host: &str, ca_pem: &str) -> (u16, String) {
    http::get_tls(port, host, "/", ca_pem).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_certificate_is_served_over_https() {
    let env = Env::new().await;
    let one = upstream("one").await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["secure.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();

    // Uploads are checked: the key must be the certificate's.
    let other = rcgen::KeyPair::generate().unwrap();
    let r = env
        .api(
            "POST",
            "/api/v1/certificates",
            Some(json!({"name": "bad", "certificate": cert.pem(), "private_key": other.serialize_pem()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "private_key", "{r:?}");
    let r = env
        .api(
            "POST",
            "/api/v1/certificates",
            Some(json!({"name": "secure", "certificate": cert.pem(), "private_key": key.serialize_pem()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["domains"], json!(["secure.test"]), "{r:?}");
    assert_eq!(r.body["private_key"], "set");
    assert_eq!(r.body["health"], "ok", "{r:?}");
    assert!(
        !r.body.to_string().contains("PRIVATE KEY"),
        "the key is never returned"
    );
    let cert_id = r.body["id"].as_str().unwrap().to_owned();
    let tls = |domain: &str| {
        json!({
            "domains": [domain], "upstream": format!("http://127.0.0.1:{one}"),
            "ssl": {"mode": "custom", "certificate": cert_id, "force_https": true, "http2": false},
        })
    };

    // A host the certificate does not cover is refused; one it covers is served over HTTPS,
    // and plain HTTP redirects to it.
    let r = env.create(tls("other.test")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(
        r.body["errors"][0]["field"], "host.ssl.certificate",
        "{r:?}"
    );
    let r = env.create(tls("secure.test")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let host_id = r.body["id"].as_str().unwrap().to_owned();
    // A reload starts new workers before the old ones stop accepting: wait for five answers
    // in a row from the new configuration.
    let mut streak = 0;
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = get_tls(env.layout.https_port, "secure.test", &cert.pem()).await;
        streak = if last == (200, "upstream one".to_owned()) {
            streak + 1
        } else {
            0
        };
        if streak == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(streak, 5, "HTTPS with the uploaded certificate: {last:?}");
    let (code, _) = until_code(env.layout.http_port, "secure.test", 301).await;
    assert_eq!(code, 301, "HTTP is redirected to HTTPS");
    let key_file = env
        .layout
        .certificate_paths(cert_id.parse().unwrap())
        .privkey;
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the agent keeps the key private"
    );

    // The test endpoint: the agent requests the host through its nginx and says what it saw.
    let test = format!("/api/v1/proxy-hosts/{host_id}/test");
    let r = env.api("POST", &test, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["url"], "https://secure.test/", "{r:?}");
    assert_eq!(r.body["status"], 200, "{r:?}");
    assert_eq!(
        r.body["certificate"]["names"],
        json!(["secure.test"]),
        "{r:?}"
    );
    assert_eq!(r.body["certificate"]["covers_domain"], true, "{r:?}");
    let r = env
        .api(
            "POST",
            &test,
            Some(json!({"https": false, "path": "/x?y=1"})),
        )
        .await;
    assert_eq!(r.body["status"], 301, "{r:?}");
    assert_eq!(r.body["location"], "https://secure.test/x?y=1", "{r:?}");
    assert!(r.body["certificate"].is_null(), "{r:?}");
    // A path that would break the request line is refused before anything is sent.
    let r = env
        .api("POST", &test, Some(json!({"path": "/a\r\nHost: evil"})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "path", "{r:?}");

    // A certificate in use cannot be deleted.
    let r = env
        .api("DELETE", &format!("/api/v1/certificates/{cert_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lets_encrypt_host_gets_a_real_certificate_and_the_server_learns_of_it() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port).await.unwrap();
    let env = Env::start(Some((&pebble, http_port))).await;
    let shop = upstream("shop").await;
    let host = |domains: Value| {
        json!({
            "domains": domains, "upstream": format!("http://127.0.0.1:{shop}"),
            "ssl": {"mode": "lets_encrypt", "force_https": true, "http2": true},
        })
    };

    // HTTP-01 cannot prove a wildcard: refused, naming the field.
    let r = env.create(host(json!(["*.shop.test"]))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "host.domains", "{r:?}");

    // The host gets its own certificate id; it waits for the certificate, then the agent's
    // own report (no API call) tells the server it is applied.
    let r = env.create(host(json!(["shop.infrapilot.test"]))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["host"]["ssl"]["certificate"], json!(id), "{r:?}");
    let mut status = Value::Null;
    for _ in 0..300 {
        status = env
            .api("GET", &format!("/api/v1/agents/{}/proxy", env.agent), None)
            .await
            .body;
        if status["hosts"][0]["status"] == "applied"
            && status["certificates"][0]["status"] == "valid"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status["hosts"][0]["status"],
        "applied",
        "{status}\n{}",
        pebble.log()
    );
    let cert = &status["certificates"][0];
    assert_eq!(cert["id"], json!(id), "{status}");
    assert_eq!(cert["domains"], json!(["shop.infrapilot.test"]));
    assert_eq!(cert["status"], "valid", "{status}");
    assert_eq!(cert["health"], "ok", "{status}");
    assert!(
        cert["issuer"].as_str().unwrap().contains("Pebble"),
        "{status}"
    );
    assert!(cert["days_until_expiry"].as_i64().unwrap() > 30, "{status}");

    // nginx serves the certificate Pebble issued; plain HTTP redirects to HTTPS.
    let root = pebble.issuing_root().await.unwrap();
    let answer = http::until_tls(env.layout.https_port, "shop.infrapilot.test", &root, |r| {
        r.0 == 200
    })
    .await
    .unwrap();
    assert_eq!(answer, (200, "upstream shop".to_owned()));
    assert_eq!(
        until_code(env.layout.http_port, "shop.infrapilot.test", 301)
            .await
            .0,
        301
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_server_answers_unclaimed_names_and_upstream_errors_with_its_pages() {
    let env = Env::new().await;
    let path = format!("/api/v1/agents/{}/default-server", env.agent);
    let r = env.api("GET", &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.body["default_server"],
        json!({"not_found_page": null, "bad_gateway_page": null, "unclaimed": {"action": "not_found"}})
    );

    // A page that could not be served is refused, naming the field; nothing changes.
    let r = env
        .api(
            "PUT",
            &path,
            Some(json!({"default_server": {"not_found_page": "a\u{0}b"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(
        r.body["errors"][0]["field"], "default_server.not_found_page",
        "{r:?}"
    );

    let pages = json!({"default_server": {
        "not_found_page": "<h1>Nothing here</h1>",
        "bad_gateway_page": "<h1>Be right back</h1>",
        "unclaimed": {"action": "not_found"},
    }});
    let r = env.api("PUT", &path, Some(pages.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body, pages);
    assert_eq!(env.api("GET", &path, None).await.body, pages);

    // A name no host claims gets the 404 page; a host whose upstream is down, the 502 page.
    let port = env.layout.http_port;
    let (code, body) = http::until(port, "nobody.test", |r| r.1.contains("Nothing here"))
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");
    let down = free_port();
    let r = env
        .create(json!({"domains": ["down.test"], "upstream": format!("http://127.0.0.1:{down}")}))
        .await;
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let (code, body) = http::until(port, "down.test", |r| r.1.contains("Be right back"))
        .await
        .unwrap();
    assert_eq!(code, 502, "{body}");

    // Unclaimed names redirected elsewhere, then dropped without an answer.
    let redirect = json!({"default_server": {"unclaimed": {"action": "redirect",
        "target": "www.example.com", "target_scheme": "https", "status": "found"}}});
    let r = env.api("PUT", &path, Some(redirect)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    until_code(port, "nobody.test", 302).await;
    let bad = json!({"default_server": {"unclaimed": {"action": "redirect",
        "target": "evil.example.com; return 200", "target_scheme": "https", "status": "found"}}});
    let r = env.api("PUT", &path, Some(bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(
        r.body["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("default_server.unclaimed"),
        "{r:?}"
    );
    let r = env
        .api(
            "PUT",
            &path,
            Some(json!({"default_server": {"unclaimed": {"action": "drop"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // The connection closes without a byte of answer (status 0 to this client).
    let (code, body) = until_code(port, "nobody.test", 0).await;
    assert!(body.is_empty(), "{code} {body}");
    assert_eq!(
        until_code(port, "down.test", 502).await.0,
        502,
        "claimed names still answer"
    );

    let audit = env.api("GET", "/api/v1/audit", None).await;
    assert!(
        audit
            .body
            .to_string()
            .contains("proxy_default_server.update"),
        "the change is audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_reach_the_server_and_add_up_to_host_metrics() {
    let env = Env::new().await;
    let port = env.layout.http_port;
    let up = upstream("metrics").await;
    let r = env
        .create(json!({"domains": ["metrics.test"], "upstream": format!("http://127.0.0.1:{up}")}))
        .await;
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let ok = r.body["id"].as_str().unwrap().to_owned();
    let down = free_port();
    let r = env
        .create(json!({"domains": ["broken.test"], "upstream": format!("http://127.0.0.1:{down}")}))
        .await;
    let broken = r.body["id"].as_str().unwrap().to_owned();
    until_body(port, "metrics.test", "upstream metrics").await;
    until_code(port, "broken.test", 502).await;
    let since = crate::util::rfc3339(crate::util::now_micros() - 1_000_000);
    for _ in 0..20 {
        assert_eq!(get(port, "metrics.test").await.0, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(port, "broken.test").await.0, 502);
    }
    let env = &env;
    let since = &since;
    let metrics = |id: String| async move {
        let uri = format!("/api/v1/proxy-hosts/{id}/metrics?since={since}");
        env.api("GET", &uri, None).await
    };
    let counted = infrapilot_agent_lib::testing::wait_until(Duration::from_secs(20), || async {
        metrics(ok.clone()).await.body["metrics"]["requests"].as_u64() >= Some(20)
            && metrics(broken.clone()).await.body["metrics"]["requests"].as_u64() >= Some(5)
    })
    .await;
    let good = metrics(ok.clone()).await;
    assert!(counted, "{good:?}");
    let m = &good.body["metrics"];
    assert_eq!(m["requests"], m["status_2xx"], "{good:?}");
    assert_eq!(m["server_error_ratio"], 0.0);
    assert!(m["upstream_p50_millis"].as_u64().is_some(), "{good:?}");
    assert!(m["upstream_p95_millis"].as_u64() >= m["upstream_p50_millis"].as_u64());
    let bad = metrics(broken.clone()).await;
    assert_eq!(bad.body["metrics"]["server_error_ratio"], 1.0, "{bad:?}");

    // The lines themselves are in the central logs, with the level their status gives.
    let r = env
        .api(
            "GET",
            "/api/v1/logs?source=access&level=error&limit=200",
            None,
        )
        .await;
    let lines = r.body["items"].as_array().unwrap();
    assert!(lines.len() >= 5, "{r:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["line"].as_str().unwrap().contains("broken.test"))
    );
    let r = env
        .api("GET", "/api/v1/proxy-hosts/not-an-id/metrics", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = env
        .api("GET", &format!("/api/v1/proxy-hosts/{ok}/metrics?since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "since");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_rotated_under_load_lose_no_line_and_count_none_twice() {
    // Rotated past 4 KiB: every few dozen requests while they come.
    let env = Env::start_with(None, Some(4096)).await;
    let port = env.layout.http_port;
    let up = upstream("rotated").await;
    let r = env
        .create(json!({"domains": ["rotated.test"], "upstream": format!("http://127.0.0.1:{up}")}))
        .await;
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    until_body(port, "rotated.test", "upstream rotated").await;
    let since = crate::util::rfc3339(crate::util::now_micros() - 1_000_000);
    // Before the count: requests until_body made.
    let uri = format!("/api/v1/proxy-hosts/{id}/metrics?since={since}");
    let (env, uri) = (&env, &uri);
    let requests =
        || async move { env.api("GET", uri, None).await.body["metrics"]["requests"].as_u64() };
    const SENT: u64 = 400;
    for _ in 0..SENT {
        assert_eq!(get(port, "rotated.test").await.0, 200);
    }
    let reached = infrapilot_agent_lib::testing::wait_until(Duration::from_secs(60), || async {
        requests().await >= Some(SENT)
    })
    .await;
    assert!(reached, "requests counted: {:?}", requests().await);
    // Rotations finish within ROTATE_WAIT; a line read twice would have shown up by then.
    tokio::time::sleep(infrapilot_agent_lib::logs::files::ROTATE_WAIT * 2).await;
    let counted = requests().await.unwrap();
    // until_body's own requests are counted too when they came after `since`.
    assert!(
        (SENT..SENT + 50).contains(&counted),
        "{counted} requests counted for {SENT} sent"
    );
    let log_dir = Path::new(env.layout.log_dir.as_str());
    let access = std::fs::read_dir(log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&id) && n.contains(".access.log"))
        .collect::<Vec<_>>();
    assert_eq!(access.len(), 2, "the log and one rotated file: {access:?}");
    let size =
        std::fs::metadata(log_dir.join(format!("proxy-{id}.access.log"))).map_or(0, |m| m.len());
    assert!(size < 64 * 1024, "the live file stays small: {size} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_access_list_guards_its_hosts_and_its_changes_reach_nginx() {
    let env = Env::new().await;
    let port = env.layout.http_port;
    let up = upstream("guarded").await;
    let r = env
        .api(
            "POST",
            "/api/v1/access-lists",
            Some(json!({"name": "office", "list": {"rules": [{"action": "allow", "cidr": "10.0.0.0/8"}],
                "users": [], "satisfy": "any"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let list = r.body["id"].as_str().unwrap().to_owned();
    // A bad rule is refused naming the field.
    let r = env
        .api(
            "POST",
            "/api/v1/access-lists",
            Some(json!({"name": "bad", "list": {"rules": [{"action": "allow", "cidr": "10.0.0.0/8; allow all"}],
                "users": [], "satisfy": "any"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(
        r.body["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("list.rules[0]"),
        "{r:?}"
    );

    let r = env
        .create(
            json!({"domains": ["guarded.test"], "upstream": format!("http://127.0.0.1:{up}"),
            "access_list_id": list}),
        )
        .await;
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let host = r.body["id"].as_str().unwrap().to_owned();
    until_code(port, "guarded.test", 403).await;
    let preview = env
        .api("GET", &format!("/api/v1/proxy-hosts/{host}/preview"), None)
        .await;
    assert!(
        preview.body.to_string().contains("allow 10.0.0.0/8"),
        "{preview:?}"
    );

    // The list lets this machine in: the host's agent gets it, and nginx lets it through.
    let r = env
        .api(
            "PUT",
            &format!("/api/v1/access-lists/{list}"),
            Some(json!({"name": "office", "list": {"rules": [{"action": "allow", "cidr": "127.0.0.0/8"}],
                "users": [], "satisfy": "any"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["hosts"], json!([host]));
    until_body(port, "guarded.test", "upstream guarded").await;

    // In use: not deletable. Unknown or doubled lists are refused naming the field.
    let r = env
        .api("DELETE", &format!("/api/v1/access-lists/{list}"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    let r = env
        .create(
            json!({"domains": ["other.test"], "upstream": format!("http://127.0.0.1:{up}"),
            "access_list_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["field"], "host.access_list_id", "{r:?}");
    let r = env
        .create(
            json!({"domains": ["other.test"], "upstream": format!("http://127.0.0.1:{up}"),
            "access_list_id": list, "access_list": {"rules": [], "users": [], "satisfy": "any"}}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["field"], "host.access_list_id", "{r:?}");
    let r = env
        .api("DELETE", &format!("/api/v1/proxy-hosts/{host}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let r = env
        .api("DELETE", &format!("/api/v1/access-lists/{list}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_upstream_is_reached_and_its_network_shown() {
    use infrapilot_agent_lib::testing::{RunOptions, TestDocker};
    let docker = TestDocker::new("proxy_api_container_upstream")
        .await
        .unwrap();
    let app = docker.network("app").await.unwrap();
    let web = docker
        .run(
            "web",
            &["httpd", "-f", "-p", "8080", "-h", "/www"],
            RunOptions {
                network: Some(app.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let env = Env::new().await;

    // A container reference that could carry config syntax is refused, naming the field.
    for bad in [
        "container:web;evil:80",
        "container:web:80 ",
        "container:{x}:80",
        "container:web",
    ] {
        let r = env
            .create(json!({"domains": ["bad.test"], "upstream": bad}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {r:?}");
        assert!(
            r.body["errors"][0]["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("host.upstream")),
            "{bad}: {r:?}"
        );
    }

    let upstream = format!("container:{}:8080", web.name);
    let r = env
        .create(json!({"domains": ["web.test"], "upstream": upstream}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = env
        .create(json!({"domains": ["gone.test"], "upstream": "container:no-such-container:80"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    http::until(env.layout.http_port, "web.test", |r| {
        r.1.contains("infrapilot test")
    })
    .await
    .unwrap();

    let status = env
        .api("GET", &format!("/api/v1/agents/{}/proxy", env.agent), None)
        .await;
    assert_eq!(status.status, StatusCode::OK, "{status:?}");
    let networks = status.body["networks"].as_array().unwrap();
    let reached = networks
        .iter()
        .find(|n| n["container"] == web.name.as_str())
        .unwrap();
    assert_eq!(reached["network"], app.as_str(), "{status:?}");
    assert_eq!(reached["hosts"], json!([id]));
    assert!(reached["address"].is_string() && reached["error"].is_null());
    let gone = networks
        .iter()
        .find(|n| n["container"] == "no-such-container")
        .unwrap();
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("no container of that name")),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_preview_says_when_the_agent_has_not_reported_its_layout() {
    // An agent that never connected has reported nothing: the preview falls back to the
    // agent's default layout and says so, rather than passing defaults off as its own.
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (admin, org) = bootstrap(&state).await;
    let agent = testing::insert_agent(&state, org.parse().unwrap(), "never-connected").await;
    let r = call(
        &state,
        "POST",
        "/api/v1/proxy-hosts",
        Some(&admin),
        None,
        Some(
            json!({"agent_id": agent, "host": {"domains": ["a.test"], "upstream": "http://a:80"}}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "pending", "{r:?}");
    let id = r.body["id"].as_str().unwrap();
    let uri = format!("/api/v1/proxy-hosts/{id}/preview");
    let r = call(&state, "GET", &uri, Some(&admin), None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["layout_reported"], false, "{r:?}");
    assert_eq!(r.body["http_port"], 80, "{r:?}");
    let config = r.body["files"][0]["contents"].as_str().unwrap();
    assert!(config.contains("listen 80;"), "{config}");
}
