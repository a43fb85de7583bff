//! The nginx controller: applies a [`Site`] to an nginx instance with per-host isolation and
//! rollback.
//!
//! [`NginxController::apply`] renders the site through the core, tests it with `nginx -t` in a
//! staging copy of the configuration directory, and only then swaps it in and reloads:
//!
//! 1. A host whose required files (certificate, key) are missing is **quarantined** before
//!    nginx sees it.
//! 2. The rest is written to `<conf_dir>.staging` (rendered for that directory, htpasswd
//!    files included at 0600, so nothing live changes) and tested. When the test fails, the
//!    host the error points at (`in <file>:<line>`) is quarantined with nginx's own message
//!    and the test runs again; an error that names no host file (a certificate nginx cannot
//!    load) is found by testing each host alone beside the shared files. An error in the
//!    shared files themselves fails the apply with nginx's message and changes nothing.
//! 3. The good hosts are rendered for the live directory. When the files are exactly those on
//!    disk and nginx is running, nothing is written and nothing reloads (a reconnect replays
//!    the same state for free). Otherwise the live directory moves to
//!    `<conf_dir>.previous`, the new one takes its place, `nginx -t` runs once more, and nginx
//!    is reloaded (or started). A failed test or reload puts the previous directory back and
//!    reloads it, and the apply reports nginx's message.
//! 4. Only then, with nginx serving the new configuration, what it no longer needs is removed
//!    (`secrets.rs` says what stays): the htpasswd files of hosts it does not serve, and (through
//!    [`NginxController::apply_with_certificates`], which the agent uses) every certificate
//!    directory the desired state no longer carries. The staging directory goes too, so
//!    secrets exist only where nginx reads them.
//!
//! Private keys are written 0600 (nginx's master reads them before dropping privileges);
//! htpasswd files 0640 with the group nginx's workers run as, learned from the running
//! workers ([`NginxRunner::worker_gid`]), so only the agent and the workers read them. A file
//! with other bits is fixed by the next apply. Before nginx first runs the group is not known:
//! the first apply's htpasswd files get it right after nginx starts. When it cannot be learned
//! at all (the engine hides the container's processes), the files stay unreadable to others
//! and the agent warns: a host asks for a password it cannot check rather than show the hashes
//! to every local user.
//!
//! One host that cannot load never takes the others down, and a failure is never silent: the
//! [`ApplyReport`] says which hosts are served and why the others are not.

pub mod acme;
mod check;
mod commands;
pub mod container;
mod files;
mod runner;
mod secrets;
pub mod upstreams;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
pub use infrapilot_core::desired::{ApplyReport, CertificateFiles, HostState, HostStatus};
use infrapilot_core::ids::ProxyHostId;
use infrapilot_core::nginx::{
    ConfPath, ConfigSet, HostFiles, Layout, Resolver, Resolvers, Site, render_site,
};
use tokio::sync::Mutex;

use files::{
    HTPASSWD_MODE, KEY_MODE, PUBLIC_MODE, SecretFiles, create_dir, io, on_disk_matches, remove_dir,
    rename, wanted_files, write_dir,
};
pub(crate) use files::{write_atomic, write_atomic_mode};

pub use check::check_host;
pub use commands::ProxyCommands;
pub use runner::{NginxRunner, RunOutput};
pub use upstreams::{Resolved, UpstreamNetworks};

/// Why an apply failed as a whole. Nothing live changed, or it was rolled back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NginxError {
    /// A file or directory could not be written, moved or removed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// nginx could not be run at all.
    #[error("running nginx ({command}): {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The shared configuration (not any one host) failed `nginx -t`; nginx's output verbatim.
    #[error("nginx -t failed: {output}")]
    Test {
        /// nginx's output.
        output: String,
    },
    /// The reload (or start) failed; the previous configuration was restored.
    #[error("nginx reload failed (the previous configuration was restored): {output}")]
    Reload {
        /// nginx's output.
        output: String,
    },
    /// The Docker engine refused a step of driving the nginx container; its message verbatim.
    #[error("Docker ({action}): {message}")]
    Docker {
        /// What was being done.
        action: String,
        /// The engine's message.
        message: String,
    },
    /// The layout's configuration directory cannot take the staging suffix.
    #[error("the layout's conf_dir cannot be staged: {0}")]
    Layout(String),
}

/// Applies sites to one nginx instance, one apply at a time.
#[derive(Debug)]
pub struct NginxController {
    layout: Layout,
    runner: NginxRunner,
    /// Finds and connects upstream containers (needs Docker).
    upstreams: Option<UpstreamNetworks>,
    /// Serializes applies (two at once would race on the directories) and holds the group
    /// nginx's workers were last seen running as (`None`: not seen yet).
    lock: Mutex<Option<u32>>,
}

impl NginxController {
    /// A controller for the nginx that `runner` drives, with its files where `layout` says.
    pub fn new(layout: Layout, runner: NginxRunner) -> Self {
        Self {
            layout,
            runner,
            upstreams: None,
            lock: Mutex::new(None),
        }
    }

    /// Reaches container upstreams through `upstreams` (without, they are reported as
    /// unreachable and answer 502).
    #[must_use]
    pub fn with_upstreams(mut self, upstreams: UpstreamNetworks) -> Self {
        self.upstreams = Some(upstreams);
        self
    }

    /// The runner.
    pub fn runner(&self) -> &NginxRunner {
        &self.runner
    }

    /// The Docker engine upstream containers are found with, if any.
    pub fn docker(&self) -> Option<&Docker> {
        self.upstreams.as_ref().map(UpstreamNetworks::docker)
    }

    /// The layout the controller renders for.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Applies `site` (see the module documentation for the steps and guarantees); the
    /// report's revision is 0 (the caller that knows the revision sets it). After a
    /// successful apply the htpasswd files of hosts nginx no longer serves are removed; the
    /// certificates in `cert_dir` are the caller's and stay.
    pub async fn apply(&self, site: &Site) -> Result<ApplyReport, NginxError> {
        let mut worker_group = self.lock.lock().await;
        self.learn_worker_group(&mut worker_group).await;
        let (report, mut keep) = self.apply_locked(site, false, *worker_group).await?;
        keep.certificates = None;
        self.tidy(&keep, &mut worker_group).await;
        Ok(report)
    }

    /// Applies `site` with `certificates` as every certificate the agent holds: writes them
    /// under `cert_dir` (reloading nginx when one changed, even if no config file did),
    /// applies, and once nginx serves the new configuration removes every certificate and
    /// htpasswd file it no longer needs (`secrets.rs` says which stay). A failed apply removes
    /// nothing, so the configuration it rolled back to finds its files.
    pub async fn apply_with_certificates(
        &self,
        site: &Site,
        certificates: &[CertificateFiles],
    ) -> Result<ApplyReport, NginxError> {
        let mut worker_group = self.lock.lock().await;
        self.learn_worker_group(&mut worker_group).await;
        let changed = self.write_certificates_locked(certificates).await?;
        let (report, mut keep) = self.apply_locked(site, changed, *worker_group).await?;
        if let Some(kept) = &mut keep.certificates {
            kept.extend(certificates.iter().map(|c| c.id));
        }
        self.tidy(&keep, &mut worker_group).await;
        Ok(report)
    }

    /// One apply (the caller holds the lock); returns the report and what nginx now reads
    /// (the certificates of the hosts it serves and their htpasswd files). The staging
    /// directory, with its copies of htpasswd files, is removed either way.
    async fn apply_locked(
        &self,
        site: &Site,
        files_changed: bool,
        worker_group: Option<u32>,
    ) -> Result<(ApplyReport, secrets::Keep), NginxError> {
        let applied = self.apply_staged(site, files_changed, worker_group).await;
        let staging = staged_dir(&self.layout);
        if let Err(e) = remove_dir(Path::new(&staging)).await {
            tracing::warn!(error = %e, "removing the staging directory");
        }
        applied
    }

    async fn apply_staged(
        &self,
        site: &Site,
        files_changed: bool,
        worker_group: Option<u32>,
    ) -> Result<(ApplyReport, secrets::Keep), NginxError> {
        let resolved = match &self.upstreams {
            Some(upstreams) => upstreams.resolve(site).await,
            None => Resolved::unresolved(
                site,
                "the agent has no Docker connection to find the container with",
            ),
        };
        let site = &resolved.site;
        // nginx needs these before it even tests a configuration.
        for dir in [
            &self.layout.log_dir,
            &self.layout.temp_dir,
            &self.layout.acme_webroot,
            &self.layout.cert_dir,
            &self.layout.htpasswd_dir,
        ] {
            create_dir(Path::new(dir.as_str())).await?;
        }
        let staging_layout = self.with_conf_dir(".staging")?;
        let staged = render_site(site, &staging_layout);
        let mut quarantined: BTreeMap<ProxyHostId, String> = BTreeMap::new();
        for host in &staged.hosts {
            if let Some(missing) = host.required_files.iter().find(|f| !Path::new(f).exists()) {
                quarantined.insert(host.id, format!("the file {missing} is missing"));
            }
        }
        self.isolate(&staged, &mut quarantined).await?;

        let live = render_site(site, &self.layout);
        let good: Vec<&HostFiles> = live
            .hosts
            .iter()
            .filter(|h| !quarantined.contains_key(&h.id))
            .collect();
        let reloaded = self
            .swap_in(&live, &good, files_changed, worker_group)
            .await?;
        let keep = self.needed_by(&good);
        let hosts = live
            .hosts
            .iter()
            .map(|h| HostStatus {
                id: h.id,
                kind: h.kind,
                state: if quarantined.contains_key(&h.id) {
                    HostState::Quarantined
                } else {
                    HostState::Applied
                },
                error: quarantined.get(&h.id).cloned(),
            })
            .collect();
        let networks = match &self.upstreams {
            Some(upstreams) => upstreams.attach(resolved).await,
            None => resolved.statuses,
        };
        let report = ApplyReport {
            revision: 0,
            hosts,
            reloaded,
            error: None,
            certificates: Vec::new(),
            networks,
            layout: Some(self.layout.clone()),
        };
        Ok((report, keep))
    }

    /// Tests the staged set and quarantines the hosts that make it fail, until the rest
    /// passes.
    async fn isolate(
        &self,
        staged: &ConfigSet,
        quarantined: &mut BTreeMap<ProxyHostId, String>,
    ) -> Result<(), NginxError> {
        let staging_dir = PathBuf::from(staged_dir(&self.layout));
        let main = PathBuf::from(&staged.main.path);
        // `nginx -t` does not open htpasswd files: the staged copies are the agent's alone.
        let staged_htpasswd = staging_dir.join("htpasswd");
        let secrets = SecretFiles {
            dir: &staged_htpasswd,
            mode: KEY_MODE,
            group: None,
        };
        // Each round either passes or quarantines at least one host.
        for _ in 0..=staged.hosts.len() {
            let candidates: Vec<&HostFiles> = staged
                .hosts
                .iter()
                .filter(|h| !quarantined.contains_key(&h.id))
                .collect();
            write_dir(&staging_dir, staged, &candidates, secrets).await?;
            let test = self.runner.test(&main).await?;
            if test.success {
                return Ok(());
            }
            if let Some(host) = host_named_in(&test.output, &candidates) {
                quarantined.insert(host, nginx_message(&test.output));
                continue;
            }
            // The error names no host file: find the hosts that fail alone.
            write_dir(&staging_dir, staged, &[], secrets).await?;
            let base = self.runner.test(&main).await?;
            if !base.success {
                return Err(NginxError::Test {
                    output: base.output,
                });
            }
            let mut found = false;
            for host in &candidates {
                write_dir(&staging_dir, staged, &[*host], secrets).await?;
                let alone = self.runner.test(&main).await?;
                if !alone.success {
                    quarantined.insert(host.id, nginx_message(&alone.output));
                    found = true;
                }
            }
            if !found {
                // Every host loads alone but not together (two hosts that clash).
                return Err(NginxError::Test {
                    output: test.output,
                });
            }
        }
        Err(NginxError::Test {
            output: "the configuration kept failing after every host was tested".to_owned(),
        })
    }

    /// Writes the good hosts' live files in place of the current ones, tests and reloads;
    /// rolls back on failure. Returns whether nginx was reloaded (false: nothing changed).
    async fn swap_in(
        &self,
        live: &ConfigSet,
        good: &[&HostFiles],
        files_changed: bool,
        worker_group: Option<u32>,
    ) -> Result<bool, NginxError> {
        let conf_dir = PathBuf::from(self.layout.conf_dir.as_str());
        let htpasswd_dir = PathBuf::from(self.layout.htpasswd_dir.as_str());
        let secrets = SecretFiles {
            dir: &htpasswd_dir,
            mode: HTPASSWD_MODE,
            group: worker_group,
        };
        let wanted = wanted_files(live, good);
        let running = self.runner.is_running(&self.layout).await;
        if running && !files_changed && on_disk_matches(&conf_dir, &wanted).await {
            return Ok(false);
        }
        let previous = PathBuf::from(format!("{}.previous", self.layout.conf_dir.as_str()));
        let had_previous = tokio::fs::try_exists(&conf_dir).await.unwrap_or(false);
        remove_dir(&previous).await?;
        if had_previous {
            rename(&conf_dir, &previous).await?;
        }
        let main = PathBuf::from(&live.main.path);
        let outcome = async {
            write_dir(&conf_dir, live, good, secrets).await?;
            let test = self.runner.test(&main).await?;
            if !test.success {
                return Err(NginxError::Test {
                    output: test.output,
                });
            }
            let reload = self.runner.reload_or_start(&main, &self.layout).await?;
            if !reload.success {
                return Err(NginxError::Reload {
                    output: reload.output,
                });
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(true),
            Err(e) => {
                // Put the last good configuration back and make nginx serve it again.
                remove_dir(&conf_dir).await?;
                if had_previous {
                    rename(&previous, &conf_dir).await?;
                    let _ = self.runner.reload_or_start(&main, &self.layout).await;
                }
                Err(e)
            }
        }
    }

    /// Writes each certificate's files under the layout's `cert_dir` (the key mode 0600);
    /// returns whether any file changed.
    pub async fn write_certificates(
        &self,
        certificates: &[CertificateFiles],
    ) -> Result<bool, NginxError> {
        let _guard = self.lock.lock().await;
        self.write_certificates_locked(certificates).await
    }

    async fn write_certificates_locked(
        &self,
        certificates: &[CertificateFiles],
    ) -> Result<bool, NginxError> {
        let mut changed = false;
        for cert in certificates {
            let paths = self.layout.certificate_paths(cert.id);
            for (path, contents, mode) in [
                (&paths.fullchain, &cert.fullchain, PUBLIC_MODE),
                (&paths.privkey, &cert.privkey, KEY_MODE),
            ] {
                let path = Path::new(path);
                if tokio::fs::read_to_string(path).await.ok().as_deref() == Some(contents) {
                    continue;
                }
                write_atomic_mode(path, contents.as_bytes(), mode).await?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// The layout with `suffix` appended to its configuration directory.
    fn with_conf_dir(&self, suffix: &str) -> Result<Layout, NginxError> {
        let mut layout = self.layout.clone();
        let dir = format!("{}{suffix}", self.layout.conf_dir.as_str());
        layout.conf_dir = ConfPath::parse(&dir).map_err(|e| NginxError::Layout(e.to_string()))?;
        // Staged htpasswd files live in the staging directory, so testing changes nothing live.
        if suffix == ".staging" {
            layout.htpasswd_dir = ConfPath::parse(&format!("{dir}/htpasswd"))
                .map_err(|e| NginxError::Layout(e.to_string()))?;
        }
        Ok(layout)
    }
}

/// Where the agent's nginx runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxPlacement {
    /// The host's nginx at `binary`, run directly.
    Host {
        /// The binary (Debian's is `/usr/sbin/nginx`).
        binary: PathBuf,
    },
    /// nginx in a container the agent creates or adopts ([`container`]).
    Container {
        /// The container's name ([`container::DEFAULT_CONTAINER_NAME`]).
        name: String,
        /// Its image ([`container::DEFAULT_IMAGE`]).
        image: String,
        /// The nginx root as the Docker host sees it, when the agent sees it elsewhere.
        host_root: Option<PathBuf>,
        /// Labels put on the container besides the agent's own.
        labels: BTreeMap<String, String>,
    },
}

impl std::fmt::Display for NginxPlacement {
    /// `the host's nginx at BINARY` or `nginx in the container NAME (image IMAGE)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NginxPlacement::Host { binary } => {
                write!(f, "the host's nginx at {}", binary.display())
            }
            NginxPlacement::Container { name, image, .. } => {
                write!(f, "nginx in the container {name} (image {image})")
            }
        }
    }
}

/// The size past which nginx's log files are rotated unless set otherwise: 64 MiB.
pub const DEFAULT_LOG_ROTATION: u64 = 64 << 20;

/// Everything an agent's proxy is made of; [`build`](Self::build) makes it.
#[derive(Debug, Clone)]
pub struct ProxySetup {
    /// Where nginx's files live: every directory of the layout ([`host_layout`]).
    pub nginx_root: PathBuf,
    /// Where nginx runs.
    pub placement: NginxPlacement,
    /// The ports nginx serves plain HTTP (and ACME HTTP-01) and HTTPS on.
    pub ports: (u16, u16),
    /// Where the desired state is persisted.
    pub state_file: PathBuf,
    /// Where Let's Encrypt accounts and certificates are kept.
    pub acme_dir: PathBuf,
    /// A PEM file trusted for the ACME server's TLS instead of the system's roots.
    pub acme_ca_root: Option<PathBuf>,
    /// The Docker engine: drives the nginx container and finds upstream containers (without
    /// it, container upstreams are reported unreachable).
    pub docker: Option<Docker>,
    /// The size past which nginx's log files are rotated; `None`: never.
    pub log_rotation: Option<u64>,
}

impl ProxySetup {
    /// The host's nginx at `binary` with its files under `nginx_root`, no Docker, no private
    /// ACME root, logs rotated at [`DEFAULT_LOG_ROTATION`].
    pub fn host(
        nginx_root: impl Into<PathBuf>,
        binary: impl Into<PathBuf>,
        ports: (u16, u16),
        state_file: impl Into<PathBuf>,
        acme_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            nginx_root: nginx_root.into(),
            placement: NginxPlacement::Host {
                binary: binary.into(),
            },
            ports,
            state_file: state_file.into(),
            acme_dir: acme_dir.into(),
            acme_ca_root: None,
            docker: None,
            log_rotation: Some(DEFAULT_LOG_ROTATION),
        }
    }

    /// The proxy: the controller for the placement (its layout under `nginx_root`; in a
    /// container, names resolve with Docker's DNS at `127.0.0.11`), the desired state
    /// persisted to `state_file`, Let's Encrypt over HTTP-01 through the layout's webroot.
    pub fn build(self) -> Result<ProxyCommands, NginxError> {
        let nginx_root = &self.nginx_root;
        std::fs::create_dir_all(nginx_root).map_err(|source| io("creating", nginx_root, source))?;
        let root = nginx_root
            .canonicalize()
            .map_err(|source| io("resolving", nginx_root, source))?;
        let mut layout = host_layout(&root, self.ports.0, self.ports.1)?;
        let networks_file = root.join("upstream-networks.json");
        let controller = match self.placement {
            NginxPlacement::Host { binary } => {
                if runs_as_root()
                    && let Some(closed) = untraversable_ancestor(&root)
                {
                    tracing::warn!(
                        nginx_root = %root.display(),
                        closed = %closed.display(),
                        "nginx's workers run as an unprivileged user and cannot pass through \
                         {}: Let's Encrypt challenges and the default server's pages will fail; \
                         let others pass (chmod o+x) or keep the state elsewhere",
                        closed.display()
                    );
                }
                let controller = NginxController::new(layout.clone(), NginxRunner::host(binary));
                match self.docker {
                    Some(docker) => {
                        controller.with_upstreams(UpstreamNetworks::host(docker, networks_file))
                    }
                    None => controller,
                }
            }
            NginxPlacement::Container {
                name,
                image,
                host_root,
                labels,
            } => {
                let docker = self.docker.ok_or_else(|| NginxError::Docker {
                    action: format!("setting up the nginx container {name}"),
                    message: "no Docker engine to run it with".to_owned(),
                })?;
                let docker_dns =
                    Resolver::parse("127.0.0.11").map_err(|e| NginxError::Layout(e.to_string()))?;
                layout.resolvers = Resolvers::new(vec![docker_dns])
                    .map_err(|e| NginxError::Layout(e.to_string()))?;
                // Docker gives containers IPv6 only on networks made for it.
                layout.ipv6 = false;
                let mut settings = container::ContainerSettings::new(
                    name.clone(),
                    image,
                    root.clone(),
                    vec![self.ports.0, self.ports.1],
                );
                if let Some(host_root) = host_root {
                    settings.host_root = host_root;
                }
                settings.labels = labels;
                let runner = NginxRunner::Container(Box::new(container::NginxContainer::new(
                    docker.clone(),
                    settings,
                )));
                NginxController::new(layout.clone(), runner)
                    .with_upstreams(UpstreamNetworks::container(docker, name, networks_file))
            }
        };
        let acme = acme::AcmeManager::new(
            self.acme_dir,
            Box::new(acme::Http01Webroot::new(layout.acme_webroot.as_str())),
            self.acme_ca_root,
        );
        Ok(ProxyCommands::new(controller, self.state_file)
            .with_acme(acme)
            .with_log_rotation(self.log_rotation))
    }
}

/// Whether this process runs as root (nginx started by it then runs its workers as an
/// unprivileged user).
fn runs_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The first directory above `path` that other users cannot pass through (no `o+x`), if any.
fn untraversable_ancestor(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    path.ancestors()
        .skip(1)
        .find(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_path_buf)
}

/// A layout with every directory under `root` (`conf`, `certs`, `htpasswd`, `logs`, `tmp`,
/// `acme`, `nginx.pid`), serving on `http_port` and `https_port`, resolving upstream names
/// with the host's resolvers (`/etc/resolv.conf`; `127.0.0.1` when it names none).
pub fn host_layout(root: &Path, http_port: u16, https_port: u16) -> Result<Layout, NginxError> {
    let path = |s: &str| {
        ConfPath::parse(&format!("{}/{s}", root.display()))
            .map_err(|e| NginxError::Layout(e.to_string()))
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolvers: Vec<Resolver> = resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| Resolver::parse(a.trim()).ok())
        .take(8)
        .collect();
    if resolvers.is_empty() {
        resolvers
            .push(Resolver::parse("127.0.0.1").map_err(|e| NginxError::Layout(e.to_string()))?);
    }
    Ok(Layout {
        conf_dir: path("conf")?,
        cert_dir: path("certs")?,
        htpasswd_dir: path("htpasswd")?,
        log_dir: path("logs")?,
        temp_dir: path("tmp")?,
        acme_webroot: path("acme")?,
        pid_file: path("nginx.pid")?,
        resolvers: Resolvers::new(resolvers).map_err(|e| NginxError::Layout(e.to_string()))?,
        ipv6: Path::new("/proc/net/if_inet6").exists(),
        http_port,
        https_port,
    })
}

fn staged_dir(layout: &Layout) -> String {
    format!("{}.staging", layout.conf_dir.as_str())
}

/// The host whose file nginx's error points at (`… in /dir/hosts/proxy-<id>.conf:12`), or
/// whose htpasswd file it names.
fn host_named_in(output: &str, candidates: &[&HostFiles]) -> Option<ProxyHostId> {
    candidates
        .iter()
        .find(|h| h.files.iter().any(|f| output.contains(f.path.as_str())))
        .map(|h| h.id)
}

/// nginx's error lines (`nginx: [emerg] …`), without the closing "test failed" line.
fn nginx_message(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("[emerg]") || l.contains("[crit]") || l.contains("[alert]"))
        .collect();
    if lines.is_empty() {
        output.trim().to_owned()
    } else {
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_message_keeps_the_error_lines() {
        let out = "nginx: [emerg] unknown directive \"x\" in /c/hosts/proxy-1.conf:3\n\
                   nginx: configuration file /c/nginx.conf test failed\n";
        assert_eq!(
            nginx_message(out),
            "nginx: [emerg] unknown directive \"x\" in /c/hosts/proxy-1.conf:3"
        );
        assert_eq!(nginx_message("  odd output \n"), "odd output");
    }

    #[test]
    fn a_directory_others_cannot_pass_through_is_found_above_the_root() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        let root = open.join("state/nginx");
        std::fs::create_dir_all(&root).unwrap();
        let set = |dir: &Path, mode| {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set(tmp.path(), 0o755);
        set(&open, 0o755);
        set(&open.join("state"), 0o711);
        // The temporary directory's own ancestors (/tmp) let everyone pass.
        assert_eq!(untraversable_ancestor(&root), None);
        set(&open, 0o700);
        assert_eq!(untraversable_ancestor(&root), Some(open.clone()));
        set(&open, 0o755);
    }
}
