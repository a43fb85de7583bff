//! No secrets left behind, against the real nginx: hosts with basic-auth users and
//! certificates (uploaded, Let's Encrypt, one nginx cannot load) come and go through the
//! agent's desired state, deleted in several orders. After every apply the agent's
//! `cert_dir`, `htpasswd_dir` and `acme/certs` hold exactly what the applied state references
//! (and the operator's own files), keys are 0600, htpasswd files 0640 in the group nginx's
//! workers run as, and those workers check passwords with them. A rollback removes nothing
//! the configuration it restored still uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use infrapilot_agent_lib::nginx::acme::{AcmeManager, Http01Webroot};
use infrapilot_agent_lib::nginx::{HostState, NginxController, NginxRunner, ProxyCommands};
use infrapilot_agent_lib::testing::http;
use infrapilot_core::desired::{ApplyReport, CertificateFiles, DesiredState};
use infrapilot_core::ids::{CertificateId, ProxyHostId};
use infrapilot_core::nginx::{
    AccessList, BasicAuthUser, Layout, PasswordHash, ProxyHost, Satisfy, Site, SslMode, Tls,
    Username,
};

mod common;

use common::*;

/// `secret`, as nginx's `{SHA}` scheme stores it.
const SECRET_SHA: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
/// The uploaded certificates the scenarios draw from (ids 101..=110).
const UPLOADED: u128 = 10;
/// The Let's Encrypt certificates (ids 201..=203).
const LETS_ENCRYPT: u128 = 3;
/// The certificate nginx cannot load.
const BROKEN: u128 = 99;
/// The hosts (ids 1..=16).
const HOSTS: u128 = 16;

/// Which certificate a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cert {
    None,
    Uploaded(u128),
    LetsEncrypt(u128),
    /// The garbage certificate, carried by the state: nginx refuses it, the host is
    /// quarantined and the certificate stays (the state still carries it).
    Broken,
    /// The garbage certificate's id without the state carrying it: the host is quarantined
    /// and nothing of the certificate may stay.
    BrokenUncarried,
}

/// One host of a round: its certificate and whether it has basic-auth users.
#[derive(Debug, Clone, Copy)]
struct Spec {
    cert: Cert,
    users: bool,
}

/// A deterministic pseudo-random sequence (the scenarios must be the same on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u128) -> u128 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        u128::from(self.0 >> 33) % below
    }

    fn spec(&mut self) -> Spec {
        let cert = match self.next(6) {
            0 | 1 => Cert::None,
            2 | 3 => Cert::Uploaded(101 + self.next(UPLOADED)),
            4 => Cert::LetsEncrypt(201 + self.next(LETS_ENCRYPT)),
            _ => Cert::Uploaded(101 + self.next(UPLOADED)),
        };
        Spec {
            cert,
            users: self.next(3) != 0,
        }
    }
}

/// How the last hosts are deleted.
#[derive(Debug, Clone, Copy)]
enum Order {
    Ascending,
    Descending,
    Shuffled,
}

/// The rounds of one scenario: grow to every host, churn (certificates swapped, users
/// toggled, hosts removed and re-added, the broken certificate carried and then not), then
/// delete four hosts a round in `order` until none is left.
fn scenario(order: Order, seed: u64) -> Vec<BTreeMap<u128, Spec>> {
    let mut rng = Lcg(seed);
    let mut rounds = Vec::new();
    let mut hosts: BTreeMap<u128, Spec> = BTreeMap::new();
    for chunk in 0..4 {
        for n in chunk * 4 + 1..=chunk * 4 + 4 {
            hosts.insert(n, rng.spec());
        }
        if chunk == 2 {
            hosts.insert(
                7,
                Spec {
                    cert: Cert::Broken,
                    users: true,
                },
            );
        }
        rounds.push(hosts.clone());
    }
    for round in 0..4 {
        let present: Vec<u128> = hosts.keys().copied().collect();
        for _ in 0..5 {
            let n = present[usize::try_from(rng.next(present.len() as u128)).unwrap()];
            if n != 7 {
                hosts.insert(n, rng.spec());
            }
        }
        for _ in 0..2 {
            let present: Vec<u128> = hosts.keys().copied().filter(|n| *n != 7).collect();
            let n = present[usize::try_from(rng.next(present.len() as u128)).unwrap()];
            hosts.remove(&n);
        }
        let missing: Vec<u128> = (1..=HOSTS).filter(|n| !hosts.contains_key(n)).collect();
        if let Some(&n) = missing.first() {
            hosts.insert(n, rng.spec());
        }
        if round == 2 {
            hosts.insert(
                7,
                Spec {
                    cert: Cert::BrokenUncarried,
                    users: true,
                },
            );
        }
        rounds.push(hosts.clone());
    }
    let mut doomed: Vec<u128> = hosts.keys().copied().collect();
    match order {
        Order::Ascending => {}
        Order::Descending => doomed.reverse(),
        Order::Shuffled => {
            for i in (1..doomed.len()).rev() {
                let j = usize::try_from(rng.next(i as u128 + 1)).unwrap();
                doomed.swap(i, j);
            }
        }
    }
    for chunk in doomed.chunks(4) {
        for n in chunk {
            hosts.remove(n);
        }
        rounds.push(hosts.clone());
    }
    rounds
}

fn host_id(n: u128) -> ProxyHostId {
    ProxyHostId::from_uuid(uuid::Uuid::from_u128(n))
}

fn cert_id(n: u128) -> CertificateId {
    CertificateId::from_uuid(uuid::Uuid::from_u128(n))
}

fn domain(n: u128) -> String {
    format!("h{n}.secrets.test")
}

/// A self-signed certificate and its key, PEM.
fn self_signed(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn tls(n: u128) -> Tls {
    Tls {
        certificate: cert_id(n),
        force_https: false,
        http2: false,
        hsts: None,
    }
}

/// The agent, its nginx, and the certificates the scenarios use.
struct World {
    root: tempfile::TempDir,
    layout: Layout,
    proxy: ProxyCommands,
    upstream: u16,
    uploaded: BTreeMap<u128, (String, String)>,
    revision: u64,
}

impl World {
    async fn new(runner: NginxRunner) -> Self {
        assert!(
            Path::new(NGINX).exists(),
            "this test needs nginx at {NGINX} (Debian's nginx-light; cargo xtask provision installs it)"
        );
        let root = tempfile::tempdir().unwrap();
        let layout = layout(&root.path().join("nginx"));
        let state = root.path().join("state");
        let acme = AcmeManager::new(
            state.join("acme"),
            Box::new(Http01Webroot::new(layout.acme_webroot.as_str())),
            None,
        );
        let proxy = ProxyCommands::new(
            NginxController::new(layout.clone(), runner),
            state.join("desired-state.json"),
        )
        .with_acme(acme);
        let uploaded = (101..=100 + UPLOADED)
            .map(|n| (n, self_signed(&format!("uploaded-{n}.secrets.test"))))
            .collect();
        Self {
            root,
            layout,
            proxy,
            upstream: upstream("app").await,
            uploaded,
            revision: 0,
        }
    }

    fn acme_certs(&self) -> PathBuf {
        self.root.path().join("state/acme/certs")
    }

    fn host(&self, n: u128, spec: Spec) -> ProxyHost {
        let ssl = match spec.cert {
            Cert::None => SslMode::None,
            Cert::Uploaded(c) => SslMode::Custom(tls(c)),
            Cert::Broken | Cert::BrokenUncarried => SslMode::Custom(tls(BROKEN)),
            Cert::LetsEncrypt(c) => SslMode::LetsEncrypt(tls(c)),
        };
        let mut host = host(n, &domain(n), self.upstream, ssl);
        if spec.users {
            host.access_list = Some(AccessList {
                rules: Vec::new(),
                users: vec![BasicAuthUser {
                    username: Username::parse(&format!("user{n}")).unwrap(),
                    password_hash: PasswordHash::parse(SECRET_SHA).unwrap(),
                }],
                satisfy: Satisfy::All,
            });
        }
        host
    }

    /// The state for `hosts`, carrying the uploaded certificates they use as the server does;
    /// every Let's Encrypt certificate they want is stored first, as if it had been issued.
    async fn state(&mut self, hosts: &BTreeMap<u128, Spec>) -> DesiredState {
        let mut certificates = BTreeMap::new();
        for spec in hosts.values() {
            match spec.cert {
                Cert::Uploaded(c) => {
                    let (fullchain, privkey) = self.uploaded[&c].clone();
                    certificates.insert(
                        c,
                        CertificateFiles {
                            id: cert_id(c),
                            fullchain,
                            privkey,
                        },
                    );
                }
                Cert::Broken => {
                    certificates.insert(
                        BROKEN,
                        CertificateFiles {
                            id: cert_id(BROKEN),
                            fullchain: "not a certificate\n".to_owned(),
                            privkey: "not a key\n".to_owned(),
                        },
                    );
                }
                Cert::LetsEncrypt(c) => {
                    let acme = self.proxy.acme().unwrap();
                    let stored = acme.record(cert_id(c)).await;
                    if stored.is_none() {
                        let (fullchain, privkey) = self_signed(&format!("le-{c}.secrets.test"));
                        acme.store(cert_id(c), vec![domain(c)], &fullchain, &privkey)
                            .await
                            .unwrap();
                    }
                }
                Cert::None | Cert::BrokenUncarried => {}
            }
        }
        self.revision += 1;
        DesiredState {
            revision: self.revision,
            proxy: Site {
                proxy_hosts: hosts.iter().map(|(n, s)| self.host(*n, *s)).collect(),
                ..Site::default()
            },
            certificates: certificates.into_values().collect(),
            acme: None,
        }
    }

    /// The group nginx's workers run as, asked of `ps` (not the way the agent finds it); a
    /// worker just forked, still in root's group, does not count.
    async fn workers_group(&self) -> u32 {
        let master = std::fs::read_to_string(self.layout.pid_file.as_str()).unwrap();
        let mut out = String::new();
        for _ in 0..40 {
            let ps = std::process::Command::new("ps")
                .args(["-o", "gid=", "--ppid", master.trim()])
                .output()
                .unwrap();
            out = String::from_utf8(ps.stdout).unwrap();
            let groups: BTreeSet<u32> = out
                .split_whitespace()
                .map(|g| g.parse().unwrap())
                .filter(|g| *g != 0)
                .collect();
            if !groups.is_empty() {
                assert_eq!(groups.len(), 1, "nginx's workers run as one group: {out}");
                return groups.into_iter().next().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no worker of nginx {} switched groups: {out}",
            master.trim()
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let controller = NginxController::new(self.layout.clone(), NginxRunner::host(NGINX));
        drop(Stop(&controller));
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("listing {}: {e}", dir.display()),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// What the applied state references, by the model: the certificates it carries or holds
/// (uploaded, Let's Encrypt) and those of the hosts nginx serves; the htpasswd files of the
/// served hosts with users; the Let's Encrypt certificates its hosts want.
struct Expected {
    certs: BTreeSet<String>,
    htpasswd: BTreeSet<String>,
    acme: BTreeSet<String>,
}

fn expected(hosts: &BTreeMap<u128, Spec>, state: &DesiredState, report: &ApplyReport) -> Expected {
    let applied = |n: u128| {
        report
            .hosts
            .iter()
            .any(|h| h.id == host_id(n) && h.state == HostState::Applied)
    };
    let mut certs: BTreeSet<String> = state
        .certificates
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    let mut acme = BTreeSet::new();
    let mut htpasswd = BTreeSet::new();
    for (&n, spec) in hosts {
        match spec.cert {
            Cert::LetsEncrypt(c) => {
                certs.insert(cert_id(c).to_string());
                acme.insert(cert_id(c).to_string());
            }
            Cert::Uploaded(c) if applied(n) => {
                certs.insert(cert_id(c).to_string());
            }
            _ => {}
        }
        if spec.users && applied(n) {
            htpasswd.insert(format!("proxy-{}.htpasswd", host_id(n)));
        }
    }
    Expected {
        certs,
        htpasswd,
        acme,
    }
}

/// The operator's own files in the agent's directories, which must outlive every apply, and a
/// symlink named like a certificate id that points outside (removed, its target kept).
struct Foreign {
    certs: BTreeSet<String>,
    htpasswd: BTreeSet<String>,
    acme: BTreeSet<String>,
    outside_key: PathBuf,
}

fn plant_foreign(world: &World) -> Foreign {
    let cert_dir = PathBuf::from(world.layout.cert_dir.as_str());
    let htpasswd_dir = PathBuf::from(world.layout.htpasswd_dir.as_str());
    let acme_certs = world.acme_certs();
    for dir in [&cert_dir, &htpasswd_dir, &acme_certs] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(cert_dir.join("operator-notes.txt"), "mine\n").unwrap();
    std::fs::create_dir_all(cert_dir.join("operator-cert")).unwrap();
    std::fs::write(cert_dir.join("operator-cert/privkey.pem"), "mine\n").unwrap();
    std::fs::write(htpasswd_dir.join("operator.htpasswd"), "op:x\n").unwrap();
    std::fs::write(acme_certs.join("README"), "mine\n").unwrap();
    let outside = world.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let outside_key = outside.join("privkey.pem");
    std::fs::write(&outside_key, "not the agent's\n").unwrap();
    std::os::unix::fs::symlink(&outside, cert_dir.join(cert_id(777).to_string())).unwrap();
    std::os::unix::fs::symlink(&outside, acme_certs.join(cert_id(778).to_string())).unwrap();
    // What an interrupted write leaves behind.
    std::fs::write(
        htpasswd_dir.join(format!("proxy-{}.infrapilot-tmp", host_id(55))),
        "user:hash\n",
    )
    .unwrap();
    std::fs::write(acme_certs.parent().unwrap().join("account.json"), "{}").unwrap();
    Foreign {
        certs: ["operator-notes.txt", "operator-cert"]
            .map(str::to_owned)
            .into(),
        htpasswd: ["operator.htpasswd".to_owned()].into(),
        acme: ["README".to_owned()].into(),
        outside_key,
    }
}

/// Polls `host` until it answers `code` (a reload lets old workers finish what they serve).
async fn answers(port: u16, host: &str, credentials: Option<(&str, &str)>, code: u16) {
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = http::get_as(port, host, credentials).await.unwrap();
        if last.0 == code {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{host} with {credentials:?}: wanted {code}, got {last:?}");
}

/// Checks the agent's directories after an apply; returns how many checks were made.
async fn check(
    world: &World,
    hosts: &BTreeMap<u128, Spec>,
    state: &DesiredState,
    report: &ApplyReport,
    foreign: &Foreign,
    context: &str,
) -> usize {
    assert_eq!(report.error, None, "{context}: {report:?}");
    // The model is not vacuous: every host nginx can load is served.
    for (&n, spec) in hosts {
        let status = report.hosts.iter().find(|h| h.id == host_id(n)).unwrap();
        let broken = matches!(spec.cert, Cert::Broken | Cert::BrokenUncarried);
        let want = if broken {
            HostState::Quarantined
        } else {
            HostState::Applied
        };
        assert_eq!(
            status.state, want,
            "{context}: host {n} {spec:?}: {status:?}"
        );
    }
    let want = expected(hosts, state, report);
    let cert_dir = PathBuf::from(world.layout.cert_dir.as_str());
    let htpasswd_dir = PathBuf::from(world.layout.htpasswd_dir.as_str());
    let union = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> BTreeSet<String> {
        a.union(b).cloned().collect()
    };
    assert_eq!(
        names(&cert_dir),
        union(&want.certs, &foreign.certs),
        "{context}: cert_dir"
    );
    assert_eq!(
        names(&htpasswd_dir),
        union(&want.htpasswd, &foreign.htpasswd),
        "{context}: htpasswd_dir"
    );
    assert_eq!(
        names(&world.acme_certs()),
        union(&want.acme, &foreign.acme),
        "{context}: acme/certs"
    );
    assert!(
        world
            .acme_certs()
            .parent()
            .unwrap()
            .join("account.json")
            .exists(),
        "{context}: the ACME account stays"
    );
    assert!(
        foreign.outside_key.exists(),
        "{context}: a symlink's target stays"
    );
    assert!(
        !Path::new(&format!("{}.staging", world.layout.conf_dir.as_str())).exists(),
        "{context}: no staging copy is left"
    );
    let mut checks = 6;
    for id in &want.certs {
        let key = cert_dir.join(id).join("privkey.pem");
        assert_eq!(mode(&key), 0o600, "{context}: {}", key.display());
        checks += 1;
    }
    let group = if want.htpasswd.is_empty() {
        None
    } else {
        Some(world.workers_group().await)
    };
    for name in &want.htpasswd {
        let file = htpasswd_dir.join(name);
        assert_eq!(mode(&file), 0o640, "{context}: {}", file.display());
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!(Some(meta.gid()), group, "{context}: {}", file.display());
        assert_eq!(meta.uid(), own_uid(), "{context}: the agent owns {name}");
        checks += 3;
    }
    // nginx's workers read the files: a password is asked for and checked.
    let port = world.layout.http_port;
    for (&n, spec) in hosts.iter().filter(|(_, s)| s.users) {
        if matches!(spec.cert, Cert::Broken | Cert::BrokenUncarried) {
            continue;
        }
        let user = format!("user{n}");
        answers(port, &domain(n), None, 401).await;
        answers(port, &domain(n), Some((&user, "wrong")), 401).await;
        answers(port, &domain(n), Some((&user, "secret")), 200).await;
        checks += 3;
    }
    checks
}

/// This process's user id: the agent's, which owns what it writes.
fn own_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_directories_hold_exactly_what_the_applied_state_references() {
    let mut world = World::new(NginxRunner::host(NGINX)).await;
    let foreign = plant_foreign(&world);
    let mut applies = 0;
    let mut checks = 0;
    for (order, seed) in [
        (Order::Ascending, 7),
        (Order::Descending, 1_234),
        (Order::Shuffled, 99_991),
    ] {
        let rounds = scenario(order, seed);
        for (i, hosts) in rounds.iter().enumerate() {
            let state = world.state(hosts).await;
            let report = world.proxy.apply(&state).await.unwrap();
            applies += 1;
            let context = format!("{order:?} round {i}");
            checks += check(&world, hosts, &state, &report, &foreign, &context).await;

            // Files whose modes an earlier agent (or an operator) widened are fixed by the
            // next apply, even one that changes nothing else.
            if i == 3 {
                let htpasswd_dir = PathBuf::from(world.layout.htpasswd_dir.as_str());
                let cert_dir = PathBuf::from(world.layout.cert_dir.as_str());
                let want = expected(hosts, &state, &report);
                let widened: Vec<PathBuf> = want
                    .htpasswd
                    .iter()
                    .map(|n| htpasswd_dir.join(n))
                    .chain(
                        want.certs
                            .iter()
                            .map(|c| cert_dir.join(c).join("privkey.pem")),
                    )
                    .collect();
                assert!(!widened.is_empty(), "{context}: something to widen");
                for file in &widened {
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
                    std::os::unix::fs::chown(file, None, Some(0)).unwrap();
                }
                let state = world.state(hosts).await;
                let report = world.proxy.apply(&state).await.unwrap();
                applies += 1;
                assert!(!report.reloaded, "{context}: nothing else changed");
                let context = format!("{context}, modes widened");
                checks += check(&world, hosts, &state, &report, &foreign, &context).await;
            }
        }
        assert!(
            rounds.iter().any(|r| r.len() == HOSTS as usize),
            "{order:?}: the scenario grows to every host"
        );
        assert!(
            rounds.last().unwrap().is_empty(),
            "{order:?}: the scenario ends with no host"
        );
    }
    eprintln!("{applies} applies, {checks} checks");
}

/// A wrapper around nginx whose reload fails while `marker` exists: the one failure a real
/// nginx cannot be made to produce on demand (the test passes, the reload does not).
fn failing_reload(dir: &Path, marker: &Path) -> PathBuf {
    let script = dir.join("nginx-failing-reload");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do\n\
               if [ \"$a\" = reload ] && [ -e '{}' ]; then\n\
                 echo 'nginx: [emerg] the test refuses this reload' >&2; exit 1\n\
               fi\n\
             done\n\
             exec {NGINX} \"$@\"\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_apply_removes_nothing_the_restored_configuration_uses() {
    let scripts = tempfile::tempdir().unwrap();
    let marker = scripts.path().join("fail-reloads");
    let runner = NginxRunner::host(failing_reload(scripts.path(), &marker));
    let mut world = World::new(runner).await;
    let foreign = plant_foreign(&world);
    let port = world.layout.http_port;

    // Live: an uploaded certificate, a Let's Encrypt one, three hosts with users.
    let live: BTreeMap<u128, Spec> = [
        (1, Cert::Uploaded(101)),
        (2, Cert::LetsEncrypt(201)),
        (3, Cert::None),
    ]
    .into_iter()
    .map(|(n, cert)| (n, Spec { cert, users: true }))
    .collect();
    let state = world.state(&live).await;
    let report = world.proxy.apply(&state).await.unwrap();
    check(&world, &live, &state, &report, &foreign, "live").await;
    let cert_dir = PathBuf::from(world.layout.cert_dir.as_str());
    let htpasswd_dir = PathBuf::from(world.layout.htpasswd_dir.as_str());
    let before: Vec<(PathBuf, String)> = [
        cert_dir.join(cert_id(101).to_string()).join("privkey.pem"),
        cert_dir
            .join(cert_id(101).to_string())
            .join("fullchain.pem"),
        cert_dir.join(cert_id(201).to_string()).join("privkey.pem"),
        world
            .acme_certs()
            .join(cert_id(201).to_string())
            .join("privkey.pem"),
        htpasswd_dir.join(format!("proxy-{}.htpasswd", host_id(1))),
        htpasswd_dir.join(format!("proxy-{}.htpasswd", host_id(2))),
        htpasswd_dir.join(format!("proxy-{}.htpasswd", host_id(3))),
    ]
    .into_iter()
    .map(|path| {
        let contents = std::fs::read_to_string(&path).unwrap();
        (path, contents)
    })
    .collect();

    // Every live host replaced by one the reload never takes: the apply rolls back.
    std::fs::write(&marker, "").unwrap();
    let replacement: BTreeMap<u128, Spec> = [(
        4,
        Spec {
            cert: Cert::Uploaded(102),
            users: true,
        },
    )]
    .into();
    let failed_state = world.state(&replacement).await;
    let report = world.proxy.apply(&failed_state).await.unwrap();
    let error = report.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("the test refuses this reload"),
        "the apply failed with nginx's words: {report:?}"
    );
    for (path, contents) in &before {
        assert_eq!(
            std::fs::read_to_string(path).ok().as_ref(),
            Some(contents),
            "{} is kept for the restored configuration",
            path.display()
        );
    }
    for n in 1..=3 {
        let user = format!("user{n}");
        answers(port, &domain(n), Some((&user, "secret")), 200).await;
        answers(port, &domain(n), None, 401).await;
    }

    // The same state once reloads work again: now the old hosts' files go.
    std::fs::remove_file(&marker).unwrap();
    let state = DesiredState {
        revision: failed_state.revision,
        ..failed_state.clone()
    };
    let report = world.proxy.apply(&state).await.unwrap();
    check(
        &world,
        &replacement,
        &state,
        &report,
        &foreign,
        "after the rollback",
    )
    .await;
    for (path, _) in &before {
        assert!(!path.exists(), "{} is removed", path.display());
    }
}
