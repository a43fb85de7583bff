//! The agent's state directory: its key, certificates and enrollment record.
//!
//! Layout (directory mode 0711: traversable, not listable):
//!
//! | file | content |
//! |---|---|
//! | `key.pem` | the agent's private key, PKCS#8 PEM, mode 0600; it never leaves the host |
//! | `cert.pem` | the agent's client certificate, then any intermediates, PEM |
//! | `ca.pem` | the instance CA the server's certificate is checked against, PEM |
//! | `agent.json` | [`AgentRecord`]: agent id, organization, endpoint, expiry, heartbeat |
//! | `agent.toml` | optional operator settings, read by [`crate::config`] |
//! | `desired-state.json` | the last applied desired state (written by later issues) |
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, and is
//! renamed over the target, so a crash leaves either the old or the new file, never a mix.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/infrapilot-agent";

/// The mode of the state directory: only the agent's user may list or change it; others may
/// only pass through (0711), so nginx's unprivileged workers reach the files the agent keeps
/// for them under `nginx/` (the ACME webroot, htpasswd files, error pages). The secrets in it
/// are files of mode 0600.
const DIR_MODE: u32 = 0o711;
/// The mode of the private key.
const KEY_MODE: u32 = 0o600;
/// The mode of every other file.
const FILE_MODE: u32 = 0o644;

/// What the agent keeps about its enrollment, in `agent.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's id, assigned by the server.
    pub agent_id: String,
    /// The organization the agent belongs to.
    pub organization_id: String,
    /// The endpoint the agent enrolled with, `https://host:port`.
    pub endpoint: String,
    /// When the current client certificate expires (unix seconds).
    pub not_after_unix: i64,
    /// Seconds between heartbeats the server asked for.
    pub heartbeat_interval_secs: u32,
}

/// Why the state directory could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The directory could not be created or its mode set.
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The agent has not enrolled: its record is missing.
    #[error(
        "the agent is not enrolled: {path} does not exist; run `infrapilot-agentd enroll` first"
    )]
    NotEnrolled {
        /// The missing file.
        path: PathBuf,
    },
    /// A file exists but its content is not what the agent wrote.
    #[error("{path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The agent's state directory. Creating the value touches nothing on disk; the first
/// write creates the directory (mode 0711).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The path of `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory if it is missing and sets its mode to 0711 (see `DIR_MODE`).
    pub fn ensure(&self) -> Result<(), StateError> {
        let err = |source| StateError::CreateDir {
            path: self.root.clone(),
            source,
        };
        fs::create_dir_all(&self.root).map_err(err)?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(DIR_MODE)).map_err(err)
    }

    /// Whether the agent has enrolled (its record exists).
    pub fn is_enrolled(&self) -> bool {
        self.file("agent.json").exists()
    }

    /// Writes the private key (PEM) with mode 0600.
    pub fn write_key_pem(&self, pem: &str) -> Result<(), StateError> {
        self.write_atomic("key.pem", pem.as_bytes(), KEY_MODE)
    }

    /// Reads the private key's PEM text.
    pub fn read_key_pem(&self) -> Result<String, StateError> {
        self.read_string("key.pem")
    }

    /// Reads the private key for rustls.
    pub fn read_key(&self) -> Result<PrivateKeyDer<'static>, StateError> {
        let path = self.file("key.pem");
        let pem = self.read_bytes("key.pem")?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| StateError::Invalid {
            path,
            reason: format!("no private key in PEM form: {e}"),
        })
    }

    /// Writes the client certificate chain (the agent's certificate first).
    pub fn write_cert_chain(&self, chain: &[CertificateDer<'_>]) -> Result<(), StateError> {
        self.write_atomic("cert.pem", pem_certs(chain).as_bytes(), FILE_MODE)
    }

    /// Reads the client certificate chain, the agent's certificate first.
    pub fn read_cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, StateError> {
        self.read_certs("cert.pem")
    }

    /// Writes the instance CA certificate.
    pub fn write_ca(&self, ca: &CertificateDer<'_>) -> Result<(), StateError> {
        self.write_atomic(
            "ca.pem",
            pem_certs(std::slice::from_ref(ca)).as_bytes(),
            FILE_MODE,
        )
    }

    /// Reads the instance CA certificate.
    pub fn read_ca(&self) -> Result<CertificateDer<'static>, StateError> {
        let path = self.file("ca.pem");
        self.read_certs("ca.pem")?
            .into_iter()
            .next()
            .ok_or(StateError::Invalid {
                path,
                reason: "no certificate in it".to_owned(),
            })
    }

    /// Writes the enrollment record.
    pub fn write_record(&self, record: &AgentRecord) -> Result<(), StateError> {
        let path = self.file("agent.json");
        let json = serde_json::to_vec_pretty(record).map_err(|e| StateError::Invalid {
            path,
            reason: e.to_string(),
        })?;
        self.write_atomic("agent.json", &json, FILE_MODE)
    }

    /// Reads the enrollment record; [`StateError::NotEnrolled`] when it is missing.
    pub fn read_record(&self) -> Result<AgentRecord, StateError> {
        let path = self.file("agent.json");
        if !path.exists() {
            return Err(StateError::NotEnrolled { path });
        }
        let bytes = self.read_bytes("agent.json")?;
        serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// The revision of desired state last applied, from `desired-state.json` (its
    /// `revision` field); 0 when nothing was applied yet.
    pub fn applied_revision(&self) -> Result<u64, StateError> {
        #[derive(Deserialize)]
        struct Applied {
            revision: u64,
        }
        let path = self.file("desired-state.json");
        if !path.exists() {
            return Ok(0);
        }
        let bytes = self.read_bytes("desired-state.json")?;
        serde_json::from_slice::<Applied>(&bytes)
            .map(|a| a.revision)
            .map_err(|e| StateError::Invalid {
                path,
                reason: e.to_string(),
            })
    }

    /// Writes `bytes` to `name` atomically with `mode`: a temporary file in the directory,
    /// flushed, renamed over the target, then the directory flushed. Creates the directory
    /// (0711) first if needed.
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
        self.ensure()?;
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp-{}", std::process::id()));
        let err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
            .and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(err(e));
        }
        // Make the rename itself durable.
        fs::File::open(&self.root)
            .and_then(|dir| dir.sync_all())
            .map_err(err)
    }

    fn read_bytes(&self, name: &str) -> Result<Vec<u8>, StateError> {
        let path = self.file(name);
        fs::read(&path).map_err(|source| StateError::Read { path, source })
    }

    fn read_string(&self, name: &str) -> Result<String, StateError> {
        let path = self.file(name);
        fs::read_to_string(&path).map_err(|source| StateError::Read { path, source })
    }

    fn read_certs(&self, name: &str) -> Result<Vec<CertificateDer<'static>>, StateError> {
        let path = self.file(name);
        let pem = self.read_bytes(name)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StateError::Invalid {
                path: path.clone(),
                reason: format!("not PEM certificates: {e}"),
            })?;
        if certs.is_empty() {
            return Err(StateError::Invalid {
                path,
                reason: "no certificate in it".to_owned(),
            });
        }
        Ok(certs)
    }
}

/// PEM text for `certs`, one `CERTIFICATE` block each.
pub fn pem_certs(certs: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for cert in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn record() -> AgentRecord {
        AgentRecord {
            agent_id: "0b6c9a1e-4d0f-4a57-9a39-1d6f5c1b2a11".into(),
            organization_id: "3f1c2b7a-8e55-4bb0-9d0a-5f4e3c2b1a00".into(),
            endpoint: "https://cp.example.com:8443".into(),
            not_after_unix: 1_800_000_000,
            heartbeat_interval_secs: 30,
        }
    }

    #[test]
    fn files_round_trip_with_their_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("nested/state"));
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();

        dir.write_key_pem(&key.serialize_pem()).unwrap();
        dir.write_ca(ca.der()).unwrap();
        dir.write_cert_chain(&[ca.der().clone(), ca.der().clone()])
            .unwrap();
        dir.write_record(&record()).unwrap();

        assert_eq!(dir.read_record().unwrap(), record());
        assert_eq!(dir.read_ca().unwrap(), *ca.der());
        assert_eq!(dir.read_cert_chain().unwrap().len(), 2);
        assert_eq!(dir.read_key_pem().unwrap(), key.serialize_pem());
        assert!(dir.read_key().is_ok());

        let mode = |p: PathBuf| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(dir.file("key.pem")), 0o600);
        assert_eq!(mode(dir.path().to_path_buf()), 0o711);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn a_rewrite_replaces_the_file_by_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        dir.write_atomic("x", b"old", FILE_MODE).unwrap();
        let before = fs::metadata(dir.file("x")).unwrap().ino();
        dir.write_atomic("x", b"new", FILE_MODE).unwrap();
        // A new inode proves the content was not rewritten in place, where a crash could
        // have left a torn file.
        assert_ne!(fs::metadata(dir.file("x")).unwrap().ino(), before);
        assert_eq!(fs::read(dir.file("x")).unwrap(), b"new");
    }

    #[test]
    fn missing_and_broken_files_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        let missing = dir.read_record().unwrap_err();
        assert!(matches!(missing, StateError::NotEnrolled { .. }));
        assert!(missing.to_string().contains("agent.json"));
        dir.write_atomic("agent.json", b"{", FILE_MODE).unwrap();
        assert!(matches!(dir.read_record(), Err(StateError::Invalid { .. })));
        assert_eq!(dir.applied_revision().unwrap(), 0);
        dir.write_atomic("desired-state.json", br#"{"revision": 7}"#, FILE_MODE)
            .unwrap();
        assert_eq!(dir.applied_revision().unwrap(), 7);
    }
}
