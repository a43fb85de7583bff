//! No secrets left behind: after an apply succeeded, the agent removes the private keys,
//! certificates and htpasswd files the applied state no longer needs, and gives the ones it
//! keeps their modes.
//!
//! What is kept:
//!
//! - **`<cert_dir>/<id>/`**: the certificates the desired state carries (uploaded ones and the
//!   Let's Encrypt certificates the agent holds for it), quarantined hosts' included, so a
//!   host that failed to load is served as soon as it can be without the key travelling
//!   again; and any certificate a host nginx now serves reads (nginx must be able to reload
//!   what it runs). A certificate only a quarantined host names, and the desired state does
//!   not carry, is removed. `privkey.pem` is set to 0600 when it is not.
//! - **`<htpasswd_dir>/proxy-<id>.htpasswd`**: the files of the hosts nginx now serves, set to
//!   0640 with the group nginx's workers run as. A quarantined host's file is removed: nginx
//!   does not read it, and it may hold users the desired state no longer has; the apply that
//!   lets the host load writes it again.
//!
//! Only the names the agent itself gives are touched: a directory (or a symlink, which is
//! removed and never followed) named by a certificate id in its canonical form, an htpasswd
//! file named after a proxy host's id, and the temporary files of an interrupted write
//! (`*.infrapilot-tmp`). Anything else an operator puts into these directories stays. A
//! certificate's directory is the agent's own: it is removed whole, without following a
//! symlink inside it.
//!
//! - **`<state>/acme/certs/<id>/`** (through
//!   [`AcmeManager::remove_unwanted`](super::acme::AcmeManager::remove_unwanted)): the Let's
//!   Encrypt certificates some host of the applied state wants, quarantined or not (a host
//!   waiting for its certificate keeps its record and back-off). The account key stays.
//!
//! Nothing is removed when an apply fails (the rollback's configuration still uses them).
//! The group nginx's workers run as is read from the workers
//! ([`NginxRunner::worker_gid`](super::NginxRunner::worker_gid)) before each apply writes and
//! again after it reloaded; when it cannot be read, the files keep the agent's group and a
//! warning says basic auth may fail: they are never opened to other users instead.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use infrapilot_core::ids::{CertificateId, ProxyHostId};
use infrapilot_core::nginx::HostFiles;

use super::files::{HTPASSWD_MODE, KEY_MODE, TMP_EXTENSION, io, remove_dir_blocking};
use super::{NginxController, NginxError};

/// How long [`NginxController::tidy`] waits for nginx's workers to show their group: 40
/// steps of 50 ms.
const WORKER_WAIT_STEPS: usize = 40;
const WORKER_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(50);

/// What the applied state needs kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keep {
    /// The certificates to keep; `None` leaves `cert_dir` alone (the caller put certificates
    /// there itself and did not say which it still wants).
    pub certificates: Option<BTreeSet<CertificateId>>,
    /// The htpasswd files (names in `htpasswd_dir`) nginx now serves from.
    pub htpasswd: BTreeSet<String>,
}

/// What a tidy removed, and what it could not do.
#[derive(Debug, Default)]
pub(crate) struct Tidied {
    /// The files and directories removed.
    pub removed: Vec<PathBuf>,
    /// Each removal or mode change that failed.
    pub problems: Vec<NginxError>,
}

impl Tidied {
    fn record(&mut self, outcome: Result<(), NginxError>) {
        if let Err(e) = outcome {
            self.problems.push(e);
        }
    }

    /// Removes `path` (a directory whole, a file or symlink itself) and notes it.
    fn remove(&mut self, path: PathBuf) {
        match remove_entry(&path) {
            Ok(()) => self.removed.push(path),
            Err(e) => self.problems.push(e),
        }
    }
}

impl NginxController {
    /// What the hosts nginx serves read besides their configuration: their certificates and
    /// their htpasswd files.
    pub(super) fn needed_by(&self, good: &[&HostFiles]) -> Keep {
        let cert_dir = Path::new(self.layout.cert_dir.as_str());
        let htpasswd_dir = Path::new(self.layout.htpasswd_dir.as_str());
        let certificates: BTreeSet<CertificateId> = good
            .iter()
            .flat_map(|h| h.required_files.iter())
            .filter_map(|f| Path::new(f).strip_prefix(cert_dir).ok())
            .filter_map(|rest| rest.components().next())
            .filter_map(|id| id.as_os_str().to_str())
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .map(CertificateId::from_uuid)
            .collect();
        let htpasswd = good
            .iter()
            .flat_map(|h| h.files.iter())
            .map(|f| Path::new(&f.path))
            .filter(|p| p.parent() == Some(htpasswd_dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        Keep {
            certificates: Some(certificates),
            htpasswd,
        }
    }

    /// Asks the running workers for their group when it is not known yet (the agent
    /// restarted while nginx kept running), so the htpasswd files this apply writes get it at
    /// once.
    pub(super) async fn learn_worker_group(&self, worker_group: &mut Option<u32>) {
        if worker_group.is_none() {
            *worker_group = self.runner.worker_gid(&self.layout).await;
        }
    }

    /// After a successful apply: learns the group nginx's workers run as, then removes what
    /// `keep` does not name and fixes the modes of what it does. Problems are logged: the
    /// new configuration is served all the same, and the next apply tries again.
    pub(super) async fn tidy(&self, keep: &Keep, worker_group: &mut Option<u32>) {
        // Workers just started take a moment to appear and switch to their group; only
        // htpasswd files need it.
        let mut seen = self.runner.worker_gid(&self.layout).await;
        for _ in 0..WORKER_WAIT_STEPS {
            if seen.is_some() || keep.htpasswd.is_empty() {
                break;
            }
            tokio::time::sleep(WORKER_WAIT_STEP).await;
            seen = self.runner.worker_gid(&self.layout).await;
        }
        if let Some(gid) = seen {
            *worker_group = Some(gid);
        } else if !keep.htpasswd.is_empty() {
            tracing::warn!(
                "cannot tell which group nginx's workers run as: htpasswd files stay 0640 in \
                 the agent's group, and hosts with basic-auth users may answer 500 until the \
                 next apply learns it"
            );
        }
        let cert_dir = PathBuf::from(self.layout.cert_dir.as_str());
        let htpasswd_dir = PathBuf::from(self.layout.htpasswd_dir.as_str());
        let keep = keep.clone();
        let gid = *worker_group;
        let tidied =
            match tokio::task::spawn_blocking(move || tidy(&cert_dir, &htpasswd_dir, &keep, gid))
                .await
            {
                Ok(tidied) => tidied,
                Err(e) => {
                    tracing::warn!(error = %e, "tidying the agent's secrets");
                    return;
                }
            };
        if !tidied.removed.is_empty() {
            tracing::info!(removed = ?tidied.removed, "removed the certificates and htpasswd files the applied state no longer needs");
        }
        for problem in &tidied.problems {
            tracing::warn!(error = %problem, "tidying the agent's secrets");
        }
    }
}

/// Removes from `cert_dir` and `htpasswd_dir` what `keep` does not name (see the module
/// documentation), and gives what stays its mode: 0600 for keys, 0640 and `worker_group`
/// (when known) for htpasswd files.
pub(crate) fn tidy(
    cert_dir: &Path,
    htpasswd_dir: &Path,
    keep: &Keep,
    worker_group: Option<u32>,
) -> Tidied {
    let mut tidied = Tidied::default();
    for (name, path) in entries(htpasswd_dir, &mut tidied) {
        // The agent writes files here, never directories.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if htpasswd_host(&name, TMP_EXTENSION).is_some() {
            tidied.remove(path);
        } else if htpasswd_host(&name, "htpasswd").is_some() {
            if keep.htpasswd.contains(&name) {
                let fixed = restrict_file(&path, HTPASSWD_MODE, worker_group);
                tidied.record(fixed);
            } else {
                tidied.remove(path);
            }
        }
    }
    let Some(certificates) = &keep.certificates else {
        return tidied;
    };
    for (name, path) in entries(cert_dir, &mut tidied) {
        let Some(id) = certificate_id(&name) else {
            continue;
        };
        if certificates.contains(&id) {
            let key = path.join("privkey.pem");
            tidied.record(restrict_file(&key, KEY_MODE, None));
            for tmp in ["privkey", "fullchain"] {
                let tmp = path.join(format!("{tmp}.{TMP_EXTENSION}"));
                if std::fs::symlink_metadata(&tmp).is_ok() {
                    tidied.remove(tmp);
                }
            }
        } else {
            tidied.remove(path);
        }
    }
    tidied
}

/// Removes every directory (or symlink) in `dir` named by a certificate id that `keep` does
/// not hold: the Let's Encrypt store's `certs/`.
pub(crate) fn remove_certificate_dirs(dir: &Path, keep: &BTreeSet<CertificateId>) -> Tidied {
    let mut tidied = Tidied::default();
    for (name, path) in entries(dir, &mut tidied) {
        if certificate_id(&name).is_some_and(|id| !keep.contains(&id)) {
            tidied.remove(path);
        }
    }
    tidied
}

/// The entries of `dir` whose names are UTF-8 (the agent's names all are); a missing
/// directory has none.
fn entries(dir: &Path, tidied: &mut Tidied) -> Vec<(String, PathBuf)> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(source) => {
            tidied.problems.push(io("listing", dir, source));
            return Vec::new();
        }
    };
    read.flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some((name, entry.path()))
        })
        .collect()
}

/// The certificate id `name` is, when it is one in the form the agent writes it.
fn certificate_id(name: &str) -> Option<CertificateId> {
    let id = CertificateId::from_uuid(uuid::Uuid::parse_str(name).ok()?);
    (id.to_string() == name).then_some(id)
}

/// The proxy host `name` is the file of (`proxy-<id>.<extension>`), when it is one the agent
/// writes.
fn htpasswd_host(name: &str, extension: &str) -> Option<ProxyHostId> {
    let id = name
        .strip_prefix("proxy-")?
        .strip_suffix(extension)?
        .strip_suffix('.')?;
    let host = ProxyHostId::from_uuid(uuid::Uuid::parse_str(id).ok()?);
    (host.to_string() == id).then_some(host)
}

/// Removes a directory with what it holds, or a symlink itself (never where it points).
fn remove_entry(path: &Path) -> Result<(), NginxError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => remove_dir_blocking(path),
        Ok(_) => remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io("removing", path, source)),
    }
}

/// Unlinks a file (a symlink itself, never its target).
fn remove_file(path: &Path) -> Result<(), NginxError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io("removing", path, source)),
    }
}

/// Gives the regular file at `path` exactly `mode` and, when given, the group `group`; a
/// missing file or anything but a regular file (a symlink) is left alone.
fn restrict_file(path: &Path, mode: u32, group: Option<u32>) -> Result<(), NginxError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io("reading the mode of", path, source)),
    };
    if let Some(gid) = group
        && meta.gid() != gid
    {
        std::os::unix::fs::lchown(path, None, Some(gid))
            .map_err(|source| io("setting the group of", path, source))?;
    }
    // After chown, which may clear the set-id bits (there are none to keep).
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|source| io("setting the mode of", path, source))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_agent_gives_are_recognized() {
        let id = "0b0c0d0e-0000-4000-8000-000000000001";
        assert!(certificate_id(id).is_some());
        for foreign in [
            "0B0C0D0E-0000-4000-8000-000000000001",
            "0b0c0d0e00004000800000000000001",
            "{0b0c0d0e-0000-4000-8000-000000000001}",
            "letsencrypt",
            "",
        ] {
            assert_eq!(certificate_id(foreign), None, "{foreign:?}");
        }
        assert!(htpasswd_host(&format!("proxy-{id}.htpasswd"), "htpasswd").is_some());
        assert!(htpasswd_host(&format!("proxy-{id}.infrapilot-tmp"), TMP_EXTENSION).is_some());
        for foreign in [
            format!("redirect-{id}.htpasswd"),
            format!("proxy-{id}.htpasswd.bak"),
            format!("proxy-{id}htpasswd"),
            format!("proxy-{}.htpasswd", id.to_uppercase()),
            "proxy-.htpasswd".to_owned(),
            "operator.htpasswd".to_owned(),
        ] {
            assert_eq!(htpasswd_host(&foreign, "htpasswd"), None, "{foreign:?}");
        }
    }
}
