//! Let's Encrypt against Pebble (Let's Encrypt's ACME test server) and the real nginx: the
//! agent obtains a real certificate over HTTP-01 and nginx serves it (checked with a TLS
//! client trusting only Pebble's root); a certificate that falls due is renewed from the
//! agent's own state with no control plane; a failed validation is recorded verbatim, backed
//! off, and the host says why it waits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use infrapilot_agent_lib::nginx::acme::{AcmeManager, Http01Webroot};
use infrapilot_agent_lib::nginx::{HostState, NginxController, NginxRunner, ProxyCommands};
use infrapilot_agent_lib::testing::http;
use infrapilot_agent_lib::testing::pebble::Pebble;
use infrapilot_core::acme::{AcmeSettings, FIRST_RETRY_SECS};
use infrapilot_core::desired::{ApplyReport, DesiredState};
use infrapilot_core::ids::CertificateId;
use infrapilot_core::nginx::{Layout, Site, SslMode, Tls};

mod common;

use common::*;

const SHOP: &str = "shop.infrapilot.test";

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn lets_encrypt(n: u128) -> SslMode {
    SslMode::LetsEncrypt(Tls {
        certificate: CertificateId::from_uuid(uuid::Uuid::from_u128(n)),
        force_https: false,
        http2: false,
        hsts: None,
    })
}

/// An agent's proxy with Let's Encrypt set up: state and ACME files under `state`, challenges
/// answered into `webroot` (the layout's ACME webroot, unless a test wants them lost).
fn proxy(layout: &Layout, state: &Path, webroot: &str, pebble: &Pebble) -> Arc<ProxyCommands> {
    let acme = AcmeManager::new(
        state.join("acme"),
        Box::new(Http01Webroot::new(webroot)),
        Some(pebble.listener_ca_file()),
    );
    Arc::new(
        ProxyCommands::new(
            NginxController::new(layout.clone(), NginxRunner::host(NGINX)),
            state.join("desired-state.json"),
        )
        .with_acme(acme),
    )
}

fn desired(revision: u64, site: Site, pebble: &Pebble) -> DesiredState {
    DesiredState {
        revision,
        proxy: site,
        certificates: Vec::new(),
        acme: Some(AcmeSettings {
            directory_url: pebble.directory_url(),
            contact_email: Some("ops@infrapilot.test".to_owned()),
        }),
    }
}

fn state_of(report: &ApplyReport, n: u128) -> (HostState, Option<String>) {
    let id = infrapilot_core::ids::ProxyHostId::from_uuid(uuid::Uuid::from_u128(n));
    let host = report.hosts.iter().find(|h| h.id == id).unwrap();
    (host.state, host.error.clone())
}

/// What the shop answers over HTTPS once every nginx worker runs the latest configuration,
/// trusting only `root`.
async fn served(port: u16, root: &str) -> (u16, String) {
    http::until_tls(port, SHOP, root, |r| r.0 == 200)
        .await
        .unwrap()
}

/// One test's world: nginx on free ports (stopped at the end), Pebble validating on nginx's
/// HTTP port, the agent's state directory, and an upstream named `shop`.
struct World {
    root: tempfile::TempDir,
    layout: Layout,
    pebble: Pebble,
    shop: u16,
}

impl World {
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let layout = layout(&root.path().join("nginx"));
        let pebble = Pebble::start(layout.http_port).await.unwrap();
        let shop = upstream("shop").await;
        Self {
            root,
            layout,
            pebble,
            shop,
        }
    }

    fn state(&self) -> std::path::PathBuf {
        self.root.path().join("state")
    }

    /// The agent's proxy, answering challenges into nginx's ACME webroot.
    fn proxy(&self) -> Arc<ProxyCommands> {
        proxy(
            &self.layout,
            &self.state(),
            self.layout.acme_webroot.as_str(),
            &self.pebble,
        )
    }

    /// The shop alone, with a Let's Encrypt certificate.
    fn shop_site(&self) -> Site {
        Site {
            proxy_hosts: vec![host(1, SHOP, self.shop, lets_encrypt(11))],
            ..Site::default()
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let controller = NginxController::new(self.layout.clone(), NginxRunner::host(NGINX));
        drop(Stop(&controller));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_certificate_is_issued_over_http01_and_nginx_serves_it() {
    let world = World::new().await;
    let (layout, pebble) = (&world.layout, &world.pebble);
    let proxy = world.proxy();
    let plain = upstream("plain").await;
    let site = Site {
        proxy_hosts: vec![
            host(1, SHOP, world.shop, lets_encrypt(11)),
            host(2, "plain.infrapilot.test", plain, SslMode::None),
        ],
        ..Site::default()
    };

    // Before the certificate exists, the host waits (and says so) while the other is served.
    let report = proxy.apply(&desired(1, site, pebble)).await.unwrap();
    let (state, error) = state_of(&report, 1);
    assert_eq!(state, HostState::Quarantined);
    assert!(
        error
            .as_deref()
            .unwrap()
            .starts_with("waiting for its Let's Encrypt certificate"),
        "{error:?}"
    );
    assert_eq!(state_of(&report, 2).0, HostState::Applied);
    assert_eq!(
        get(layout.http_port, "plain.infrapilot.test").await,
        (200, "upstream plain".to_owned())
    );

    // One pass orders it: Pebble validates the token nginx serves, the host goes live.
    let (issued, next) = proxy.acme_pass(now()).await;
    let issued = issued.unwrap_or_else(|| panic!("nothing issued; pebble log:\n{}", pebble.log()));
    assert_eq!(
        state_of(&issued, 1),
        (HostState::Applied, None),
        "{issued:?}"
    );
    assert!(issued.reloaded);
    let cert = &issued.certificates[0];
    assert_eq!(cert.domains, [SHOP]);
    assert_eq!(cert.record.failures, 0);
    assert!(cert.record.not_after > now() + 30 * 86_400, "{cert:?}");
    assert!(
        cert.record.issuer.contains("Pebble"),
        "{}",
        cert.record.issuer
    );
    let renew_at = cert.record.not_after - infrapilot_core::acme::RENEW_BEFORE_SECS;
    assert_eq!(next, Some(renew_at));

    // A TLS client trusting only Pebble's root accepts what nginx serves for the name.
    let pebble_root = pebble.issuing_root().await.unwrap();
    assert_eq!(
        served(layout.https_port, &pebble_root).await,
        (200, "upstream shop".to_owned())
    );

    // The account and the key are private; nothing is due until the renewal window.
    let state = world.state().join("acme");
    assert_eq!(mode(&state.join("account.json")), 0o600);
    let cert_dir = state.join(format!("certs/{}", uuid::Uuid::from_u128(11)));
    assert_eq!(mode(&cert_dir.join("privkey.pem")), 0o600);
    assert_eq!(proxy.acme_pass(now()).await, (None, Some(renew_at)));
    // The challenge file was removed after validation.
    let challenges = Path::new(layout.acme_webroot.as_str()).join(".well-known/acme-challenge");
    assert_eq!(std::fs::read_dir(challenges).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_due_for_renewal_is_renewed_with_no_control_plane() {
    let world = World::new().await;
    let (layout, pebble) = (&world.layout, &world.pebble);

    // The agent holds a certificate that expires in ten days (inside the 30-day window).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![SHOP.to_owned()]).unwrap();
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    params.not_after = expires;
    let old = params.self_signed(&key).unwrap();
    let first = world.proxy();
    let id = CertificateId::from_uuid(uuid::Uuid::from_u128(11));
    first
        .acme()
        .unwrap()
        .store(id, vec![SHOP.to_owned()], &old.pem(), &key.serialize_pem())
        .await
        .unwrap();
    let report = first
        .apply(&desired(1, world.shop_site(), pebble))
        .await
        .unwrap();
    assert_eq!(state_of(&report, 1), (HostState::Applied, None));
    assert_eq!(
        served(layout.https_port, &old.pem()).await,
        (200, "upstream shop".to_owned()),
        "the old certificate is served"
    );
    drop(first);

    // The agent restarts with no server anywhere: it restores its state and its own loop
    // renews the certificate.
    let agent = world.proxy();
    agent.restore().await.unwrap();
    let mut reports = agent.reports();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(agent.clone().run_acme(shutdown.clone()));
    let renewed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            reports.changed().await.unwrap();
            let report = reports.borrow_and_update().clone().unwrap();
            if report.certificates[0].record.not_after > expires.unix_timestamp() {
                return report;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no renewal within 60 s; pebble log:\n{}", pebble.log()));
    shutdown.cancel();
    task.await.unwrap();
    assert!(
        renewed.reloaded,
        "the renewed certificate is picked up by a reload"
    );
    assert!(renewed.certificates[0].record.issuer.contains("Pebble"));
    let pebble_root = pebble.issuing_root().await.unwrap();
    assert_eq!(
        served(layout.https_port, &pebble_root).await,
        (200, "upstream shop".to_owned()),
        "nginx serves the renewed certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_is_reported_verbatim_and_backed_off() {
    let world = World::new().await;
    // Challenge files go where nginx does not serve them: Pebble's validation gets a 404.
    let lost = world.root.path().join("not-the-webroot");
    let proxy = proxy(
        &world.layout,
        &world.state(),
        lost.to_str().unwrap(),
        &world.pebble,
    );
    proxy
        .apply(&desired(1, world.shop_site(), &world.pebble))
        .await
        .unwrap();
    let at = now();
    let (issued, next) = proxy.acme_pass(at).await;
    assert_eq!(issued, None);
    assert_eq!(next, Some(at + FIRST_RETRY_SECS), "the retry is backed off");
    let id = CertificateId::from_uuid(uuid::Uuid::from_u128(11));
    let record = proxy.acme().unwrap().record(id).await.unwrap();
    assert_eq!(record.failures, 1);
    let error = record.last_error.clone().unwrap();
    // Pebble's own words: the type and the status nginx answered.
    assert!(error.contains("urn:ietf:params:acme:error:"), "{error}");
    assert!(error.contains("404"), "{error}");
    // Within the back-off nothing is attempted; the host's status carries the error.
    assert_eq!(
        proxy.acme_pass(at + 1).await,
        (None, Some(at + FIRST_RETRY_SECS))
    );
    let report = proxy.restore().await.unwrap();
    let (state, message) = state_of(&report, 1);
    assert_eq!(state, HostState::Quarantined);
    let message = message.unwrap();
    assert!(message.contains("the last attempt failed"), "{message}");
    assert!(message.contains(&error), "{message}");
}
