//! The server's keys, all derived from one master secret that never enters the database.
//!
//! The master secret is 32 random bytes, from `INFRAPILOT_SECRET_KEY` (base64) or a key file
//! (created 0600 on first start). Replicas sharing a database must share it. From it, with
//! domain-separated SHA-256, come: the JWT signing key, the Ed25519 key that signs audit
//! checkpoints, the key that seals secrets at rest (XChaCha20-Poly1305), and the first-run
//! setup code.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::SecretSource;

/// The keys derived from the master secret.
pub struct Keys {
    jwt: [u8; 32],
    audit: SigningKey,
    seal: XChaCha20Poly1305,
    setup_code: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

/// A key problem the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The secret is not base64 of 32 bytes.
    #[error("{source_name}: the secret key must be base64 of exactly 32 random bytes")]
    Malformed {
        /// Where it came from.
        source_name: String,
    },
    /// The key file could not be read or created.
    #[error("secret key file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// A sealed value could not be opened (wrong key, or tampered).
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened: the secret key changed or the value was altered")]
pub struct UnsealError;

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"infrapilot/");
    hasher.update(label.as_bytes());
    hasher.update([0u8]);
    hasher.update(master);
    hasher.finalize().into()
}

impl Keys {
    /// Loads the master secret (creating the key file on first start) and derives the keys.
    pub fn load(source: &SecretSource) -> Result<Keys, KeyError> {
        let master = match source {
            SecretSource::Inline(text) => decode_master(text, "INFRAPILOT_SECRET_KEY")?,
            SecretSource::File(path) => load_or_create(path)?,
        };
        Ok(Keys::from_master(&master))
    }

    /// Derives the keys from a master secret.
    pub fn from_master(master: &[u8; 32]) -> Keys {
        let code = derive(master, "setup-code");
        let code = URL_SAFE_NO_PAD.encode(code).replace(['-', '_'], "x");
        Keys {
            jwt: derive(master, "jwt-hs256"),
            audit: SigningKey::from_bytes(&derive(master, "audit-checkpoint-ed25519")),
            seal: XChaCha20Poly1305::new(&derive(master, "seal-xchacha20poly1305").into()),
            setup_code: code.chars().take(16).collect(),
        }
    }

    /// The HS256 key for access tokens.
    pub fn jwt(&self) -> &[u8; 32] {
        &self.jwt
    }

    /// The key that signs audit checkpoints.
    pub fn audit_signing(&self) -> &SigningKey {
        &self.audit
    }

    /// The one-time code first-run setup requires. It is derived, never stored, so every
    /// replica logs the same code and it stops mattering once setup has happened.
    pub fn setup_code(&self) -> &str {
        &self.setup_code
    }

    /// Encrypts a secret for storage: `v1.<base64url(nonce ‖ ciphertext)>`.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ciphertext = self
            .seal
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("v1.{}", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Decrypts a value made by [`Keys::seal`].
    pub fn unseal(&self, sealed: &str) -> Result<Vec<u8>, UnsealError> {
        let blob = sealed
            .strip_prefix("v1.")
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > 24)
            .ok_or(UnsealError)?;
        let (nonce, ciphertext) = blob.split_at(24);
        self.seal
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| UnsealError)
    }
}

fn decode_master(text: &str, source_name: &str) -> Result<[u8; 32], KeyError> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| KeyError::Malformed {
            source_name: source_name.to_owned(),
        })
}

fn load_or_create(path: &Path) -> Result<[u8; 32], KeyError> {
    let file_error = |reason: String| KeyError::File {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => decode_master(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| file_error(format!("cannot create its folder: {e}")))?;
            }
            let mut master = [0u8; 32];
            rand::rng().fill_bytes(&mut master);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file = options
                .open(path)
                .map_err(|e| file_error(format!("cannot create it: {e}")))?;
            file.write_all(STANDARD.encode(master).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| file_error(format!("cannot write it: {e}")))?;
            tracing::info!(path = %path.display(), "created a new secret key; back it up with the database");
            Ok(master)
        }
        Err(e) => Err(file_error(format!("cannot read it: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let keys = Keys::from_master(&[7; 32]);
        let sealed = keys.seal(b"smtp-password");
        assert_eq!(keys.unseal(&sealed).unwrap(), b"smtp-password");
        assert_ne!(keys.seal(b"smtp-password"), sealed, "fresh nonce each time");
        let other = Keys::from_master(&[8; 32]);
        assert!(other.unseal(&sealed).is_err());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.unseal(&String::from_utf8(bytes).unwrap()).is_err());
    }

    #[test]
    fn derived_keys_differ_and_are_stable() {
        let a = Keys::from_master(&[1; 32]);
        let b = Keys::from_master(&[1; 32]);
        assert_eq!(a.setup_code(), b.setup_code());
        assert_eq!(a.setup_code().len(), 16);
        assert_ne!(a.jwt(), &a.audit_signing().to_bytes());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("ip-keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("secret.key");
        let a = Keys::load(&SecretSource::File(path.clone())).unwrap();
        let b = Keys::load(&SecretSource::File(path.clone())).unwrap();
        assert_eq!(a.setup_code(), b.setup_code());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(matches!(
            Keys::load(&SecretSource::Inline("short".into())),
            Err(KeyError::Malformed { .. })
        ));
    }
}
