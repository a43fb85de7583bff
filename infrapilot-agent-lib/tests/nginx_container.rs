//! nginx in a container the agent manages, and container upstreams, against the real Docker
//! engine with real traffic. The nginx image is built from Debian's nginx (`FROM scratch`
//! with the binary and its libraries; no registry is reachable), the upstreams are busybox
//! `httpd` containers. Its workers (not root) read the htpasswd files, which nobody else can.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::InspectContainerOptions;
use infrapilot_agent_lib::nginx::{HostState, NginxPlacement, ProxyCommands, ProxySetup};
use infrapilot_agent_lib::testing::http::{self, until};
use infrapilot_agent_lib::testing::{
    RunOptions, TestContainer, TestDocker, connect, ensure_nginx_image, wait_until,
};
use infrapilot_core::desired::{ApplyReport, CertificateFiles, DesiredState};
use infrapilot_core::ids::CertificateId;
use infrapilot_core::nginx::{
    AccessList, BasicAuthUser, PasswordHash, Satisfy, Site, SslMode, Username,
};
use infrapilot_core::values::Upstream;

mod common;

use common::*;

const WEB: &[&str] = &["httpd", "-f", "-p", "8080", "-h", "/www"];

fn container_proxy(
    docker: &TestDocker,
    root: &Path,
    name: &str,
    ports: (u16, u16),
) -> ProxyCommands {
    let (key, value) = docker.label();
    ProxySetup {
        nginx_root: root.join("nginx"),
        placement: NginxPlacement::Container {
            name: name.to_owned(),
            image: infrapilot_agent_lib::testing::NGINX_IMAGE.to_owned(),
            host_root: None,
            labels: BTreeMap::from([(key.to_owned(), value.to_owned())]),
        },
        ports,
        state_file: root.join("desired-state.json"),
        acme_dir: root.join("acme"),
        acme_ca_root: None,
        docker: Some(docker.docker().clone()),
        log_rotation: None,
    }
    .build()
    .unwrap()
}

fn state(revision: u64, hosts: Vec<infrapilot_core::nginx::ProxyHost>) -> DesiredState {
    DesiredState {
        revision,
        proxy: Site {
            proxy_hosts: hosts,
            ..Site::default()
        },
        certificates: Vec::new(),
        acme: None,
    }
}

/// A host forwarding to `upstream` (`container:NAME:PORT` or a URL).
fn to(n: u128, domain: &str, upstream: &str) -> infrapilot_core::nginx::ProxyHost {
    let mut h = host(n, domain, 1, SslMode::None);
    h.upstream = Upstream::parse(upstream).unwrap();
    h
}

/// A network `app` and a web server `web` on it.
async fn web_on_a_network(docker: &TestDocker) -> (String, TestContainer) {
    let app = docker.network("app").await.unwrap();
    let options = RunOptions {
        network: Some(app.clone()),
        ..Default::default()
    };
    (app, docker.run("web", WEB, options).await.unwrap())
}

async fn networks_of(docker: &TestDocker, container: &str) -> BTreeSet<String> {
    docker
        .docker()
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default()
}

async fn container_id(docker: &TestDocker, container: &str) -> Option<String> {
    docker
        .docker()
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .ok()
        .and_then(|c| c.id)
}

fn network_of<'a>(
    report: &'a ApplyReport,
    container: &str,
) -> &'a infrapilot_core::nginx::upstreams::UpstreamNetworkStatus {
    report
        .networks
        .iter()
        .find(|n| n.container == container)
        .unwrap_or_else(|| panic!("no network status for {container}: {report:?}"))
}

async fn answers(port: u16, host: &str, status: u16, body: &str) {
    let got = until(port, host, |(code, text)| {
        *code == status && text.contains(body)
    })
    .await
    .unwrap();
    assert!(
        got.0 == status && got.1.contains(body),
        "{host} answered {got:?}, wanted {status} with {body:?}"
    );
}

#[tokio::test]
async fn the_agent_runs_nginx_in_its_own_container_and_reaches_containers_over_their_networks() {
    let docker = TestDocker::new("nginx_container").await.unwrap();
    ensure_nginx_image().await.unwrap();
    let (app, web) = web_on_a_network(&docker).await;
    let legacy = docker
        .run("legacy", WEB, RunOptions::default())
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let nginx = docker.name("nginx");
    let ports = (free_port(), free_port());
    let proxy = container_proxy(&docker, root.path(), &nginx, ports);

    // Three hosts: one to a container on a user-defined network (reached by name, nginx joins
    // the network), one to a container on the default bridge (by address), one to a
    // container that does not exist (reported; its host answers 502, the others serve).
    let missing = docker.name("missing");
    let hosts = vec![
        to(1, "web.test", &format!("container:{}:8080", web.name)),
        to(2, "legacy.test", &format!("container:{}:8080", legacy.name)),
        to(3, "missing.test", &format!("container:{missing}:8080")),
    ];
    let report = proxy.apply(&state(1, hosts.clone())).await.unwrap();
    assert!(report.error.is_none(), "{report:?}");
    assert!(report.reloaded, "nginx started: {report:?}");
    assert!(
        report.hosts.iter().all(|h| h.state == HostState::Applied),
        "{report:?}"
    );
    let by_name = network_of(&report, &web.name);
    assert_eq!(by_name.network.as_deref(), Some(app.as_str()), "{report:?}");
    assert!(by_name.connected_by_agent && by_name.address.is_none() && by_name.error.is_none());
    let by_address = network_of(&report, &legacy.name);
    assert_eq!(by_address.network.as_deref(), Some("bridge"));
    assert!(by_address.address.is_some() && !by_address.connected_by_agent);
    let unreachable = network_of(&report, &missing);
    assert!(
        unreachable
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no container of that name")),
        "{unreachable:?}"
    );

    // The container: the agent's label, restart policy, the nginx root mounted at its path.
    let inspect = docker
        .docker()
        .inspect_container(&nginx, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let labels = inspect.config.as_ref().unwrap().labels.clone().unwrap();
    assert!(labels.contains_key("io.infrapilot.nginx"), "{labels:?}");
    let host_config = inspect.host_config.clone().unwrap();
    assert_eq!(
        host_config
            .restart_policy
            .unwrap()
            .name
            .unwrap()
            .to_string(),
        "unless-stopped"
    );
    let nginx_root = root.path().join("nginx").canonicalize().unwrap();
    assert!(
        host_config
            .binds
            .unwrap()
            .contains(&format!("{0}:{0}", nginx_root.display())),
        "the nginx root is mounted at the same path"
    );
    assert!(networks_of(&docker, &nginx).await.contains(&app));

    // Real traffic through the published port.
    answers(ports.0, "web.test", 200, "infrapilot test").await;
    answers(ports.0, "legacy.test", 200, "infrapilot test").await;
    answers(ports.0, "missing.test", 502, "").await;
    // nginx writes its access log into the mounted root, where the agent's tailer reads it.
    let logs = nginx_root.join("logs");
    assert!(
        wait_until(Duration::from_secs(5), || async {
            std::fs::read_dir(&logs).unwrap().flatten().any(|f| {
                std::fs::read_to_string(f.path()).is_ok_and(|t| t.contains("GET / HTTP/1.1"))
            })
        })
        .await,
        "the access log is on the agent's side of the mount"
    );

    // The same state again: nothing written, no reload, the network kept.
    let again = proxy.apply(&state(2, hosts.clone())).await.unwrap();
    assert!(!again.reloaded, "{again:?}");
    assert!(network_of(&again, &web.name).connected_by_agent);

    // A host whose certificate nginx (inside the container) cannot load is quarantined with
    // nginx's own words; the others keep answering.
    let mut broken = to(4, "broken.test", &format!("container:{}:8080", web.name));
    broken.ssl = custom_tls(40);
    let mut with_broken = state(3, [hosts.clone(), vec![broken]].concat());
    with_broken.certificates = vec![CertificateFiles {
        id: CertificateId::from_uuid(uuid::Uuid::from_u128(40)),
        fullchain: "not a certificate\n".to_owned(),
        privkey: "not a key\n".to_owned(),
    }];
    let report = proxy.apply(&with_broken).await.unwrap();
    let quarantined: Vec<_> = report.quarantined().collect();
    assert_eq!(quarantined.len(), 1, "{report:?}");
    let why = quarantined[0].error.as_deref().unwrap();
    assert!(why.contains("[emerg]") && why.contains("PEM"), "{why}");
    answers(ports.0, "web.test", 200, "infrapilot test").await;

    // No host uses the container on `app` any more: nginx leaves the network it joined, and
    // keeps the default bridge it did not.
    let report = proxy
        .apply(&state(4, vec![hosts[1].clone()]))
        .await
        .unwrap();
    assert_eq!(report.networks.len(), 1, "{report:?}");
    let after = networks_of(&docker, &nginx).await;
    assert!(
        !after.contains(&app) && after.contains("bridge"),
        "{after:?}"
    );
    answers(ports.0, "legacy.test", 200, "infrapilot test").await;
    answers(ports.0, "web.test", 404, "").await;

    // A restarted agent adopts the running container (same id) and, nothing having changed,
    // does not reload.
    let id = container_id(&docker, &nginx).await.unwrap();
    let restarted = container_proxy(&docker, root.path(), &nginx, ports);
    let report = restarted.restore().await.unwrap();
    assert!(!report.reloaded, "{report:?}");
    assert_eq!(
        container_id(&docker, &nginx).await.as_deref(),
        Some(id.as_str())
    );

    // Other settings (new ports): the agent's container is replaced and serves on them.
    let moved = (free_port(), free_port());
    let replaced = container_proxy(&docker, root.path(), &nginx, moved);
    let report = replaced.restore().await.unwrap();
    assert!(report.reloaded && report.error.is_none(), "{report:?}");
    assert_ne!(container_id(&docker, &nginx).await, Some(id));
    answers(moved.0, "legacy.test", 200, "infrapilot test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_its_container_nginxs_workers_alone_read_the_htpasswd_files() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    let docker = TestDocker::new("nginx_container_htpasswd").await.unwrap();
    ensure_nginx_image().await.unwrap();
    let (_app, web) = web_on_a_network(&docker).await;
    let root = tempfile::tempdir().unwrap();
    let nginx = docker.name("nginx");
    let ports = (free_port(), free_port());
    let proxy = container_proxy(&docker, root.path(), &nginx, ports);

    let mut guarded = to(1, "guarded.test", &format!("container:{}:8080", web.name));
    guarded.access_list = Some(AccessList {
        rules: Vec::new(),
        users: vec![BasicAuthUser {
            username: Username::parse("alice").unwrap(),
            // `secret`, as nginx's `{SHA}` scheme stores it.
            password_hash: PasswordHash::parse("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap(),
        }],
        satisfy: Satisfy::All,
    });
    let report = proxy.apply(&state(1, vec![guarded.clone()])).await.unwrap();
    assert!(report.error.is_none(), "{report:?}");

    // Owner and group only, the group the image's workers run as (its `nogroup`, 65534).
    let file = root
        .path()
        .join(format!("nginx/htpasswd/proxy-{}.htpasswd", guarded.id));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o640,
        "{}",
        file.display()
    );
    assert_eq!(meta.gid(), 65534, "{}", file.display());
    // The workers inside the container read it: a password is asked for and checked.
    let port = ports.0;
    let asked = |credentials: Option<(&'static str, &'static str)>, code: u16| async move {
        let mut last = (0, String::new());
        for _ in 0..100 {
            last = http::get_as(port, "guarded.test", credentials)
                .await
                .unwrap();
            if last.0 == code {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{credentials:?}: wanted {code}, got {last:?}");
    };
    asked(None, 401).await;
    asked(Some(("alice", "wrong")), 401).await;
    asked(Some(("alice", "secret")), 200).await;

    // The host goes, and its htpasswd file with it.
    let report = proxy.apply(&state(2, Vec::new())).await.unwrap();
    assert!(report.error.is_none(), "{report:?}");
    assert!(!file.exists(), "{} is removed", file.display());
}

#[tokio::test]
async fn a_container_of_that_name_the_agent_did_not_create_is_left_alone() {
    let docker = TestDocker::new("nginx_foreign").await.unwrap();
    ensure_nginx_image().await.unwrap();
    let foreign = docker
        .run("someone-elses", &["sleep", "300"], RunOptions::default())
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let proxy = container_proxy(
        &docker,
        root.path(),
        &foreign.name,
        (free_port(), free_port()),
    );
    let report = proxy
        .apply(&state(1, vec![to(1, "a.test", "http://127.0.0.1:9")]))
        .await
        .unwrap();
    let error = report.error.as_deref().unwrap_or_default();
    assert!(error.contains("did not create"), "{report:?}");
    assert!(
        report.hosts.iter().all(|h| h.state == HostState::Failed),
        "{report:?}"
    );
    assert_eq!(
        container_id(&docker, &foreign.name).await.as_deref(),
        Some(foreign.id.as_str()),
        "the foreign container is untouched"
    );
}

#[tokio::test]
async fn the_hosts_nginx_reaches_a_container_by_its_address_and_follows_it_when_it_moves() {
    let docker = TestDocker::new("nginx_host_upstream").await.unwrap();
    let (app, web) = web_on_a_network(&docker).await;
    let root = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port());
    let mut setup = ProxySetup::host(
        root.path().join("nginx"),
        NGINX,
        ports,
        root.path().join("desired-state.json"),
        root.path().join("acme"),
    );
    setup.docker = Some(connect().await.unwrap());
    let proxy = std::sync::Arc::new(setup.build().unwrap());
    let _stop = StopAt(root.path().join("nginx/conf/nginx.conf"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _cancel = shutdown.clone().drop_guard();
    tokio::spawn(proxy.clone().run_background(shutdown));

    let upstream = format!("container:{}:8080", web.name);
    let report = proxy
        .apply(&state(1, vec![to(1, "web.test", &upstream)]))
        .await
        .unwrap();
    let status = network_of(&report, &web.name);
    assert_eq!(status.network.as_deref(), Some(app.as_str()), "{report:?}");
    let first = status.address.clone().unwrap();
    let rendered = std::fs::read_dir(root.path().join("nginx/conf/hosts"))
        .unwrap()
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect::<String>();
    assert!(rendered.contains(&format!("{first}:8080")), "{rendered}");
    answers(ports.0, "web.test", 200, "infrapilot test").await;

    // The container stops, another takes its address, it starts again with a new one: the
    // agent sees the start and re-applies, and the host follows it.
    let d = docker.docker();
    d.stop_container(
        &web.name,
        None::<bollard::query_parameters::StopContainerOptions>,
    )
    .await
    .unwrap();
    let squatter = docker
        .run(
            "squatter",
            &["sleep", "300"],
            RunOptions {
                network: Some(app.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    d.start_container(
        &web.name,
        None::<bollard::query_parameters::StartContainerOptions>,
    )
    .await
    .unwrap();
    let moved = d
        .inspect_container(&web.name, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .network_settings
        .unwrap()
        .networks
        .unwrap()[&app]
        .ip_address
        .clone()
        .unwrap();
    assert_ne!(
        moved, first,
        "the squatter ({}) took the old address",
        squatter.name
    );
    answers(ports.0, "web.test", 200, "infrapilot test").await;
    let report = proxy.reports().borrow().clone().unwrap();
    assert_eq!(
        network_of(&report, &web.name).address.as_deref(),
        Some(moved.as_str()),
        "{report:?}"
    );
}

/// Stops the host's nginx of the main config at `.0` when the test ends.
struct StopAt(std::path::PathBuf);

impl Drop for StopAt {
    fn drop(&mut self) {
        let _ = std::process::Command::new(NGINX)
            .args(["-q", "-c", &self.0.to_string_lossy(), "-s", "stop"])
            .output();
    }
}
