//! The instance certificate authority.
//!
//! Created once, on the first start of the first replica, and kept in the database with its
//! private key sealed by the server's secret key. It will sign agents' client certificates and
//! the agent endpoint's server certificate (issue 4); its SHA-256 fingerprint goes into every
//! enrollment token so an agent can check the server before it sends the token's secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use infrapilot_core::enrollment::CaFingerprint;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::keys::Keys;
use crate::store::{Store, StoreError};
use crate::util::now_micros;

/// The instance CA's public part, plus its sealed key.
#[derive(Debug, Clone)]
pub struct InstanceCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_sealed: String,
}

/// The CA could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Generating the certificate failed.
    #[error("generating the instance CA failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The stored certificate is not PEM.
    #[error("the stored instance CA certificate is not valid PEM")]
    Pem,
}

impl InstanceCa {
    /// Reads the CA, creating it first if no replica has yet.
    pub async fn load_or_create(store: &Store, keys: &Keys) -> Result<InstanceCa, CaError> {
        let mut tx = store.global().await?;
        if tx.instance_ca().await?.is_none() {
            let (cert_pem, key_pem) = generate()?;
            tx.put_instance_ca(&cert_pem, &keys.seal(key_pem.as_bytes()), now_micros())
                .await?;
        }
        let (cert_pem, key_sealed) = tx.instance_ca().await?.ok_or(CaError::Pem)?;
        tx.commit().await?;
        let cert_der = pem_to_der(&cert_pem).ok_or(CaError::Pem)?;
        Ok(InstanceCa {
            cert_pem,
            cert_der,
            key_sealed,
        })
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The SHA-256 fingerprint of the certificate's DER, as pinned in enrollment tokens.
    pub fn fingerprint(&self) -> CaFingerprint {
        CaFingerprint::of_der(&self.cert_der)
    }

    /// The private key, sealed.
    pub fn key_sealed(&self) -> &str {
        &self.key_sealed
    }
}

fn generate() -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "InfraPilot instance CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "InfraPilot");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .collect();
    STANDARD.decode(body).ok().filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Kind};

    #[tokio::test]
    async fn created_once_and_stable() {
        let store = testing::store(Kind::Sqlite).await;
        let keys = Keys::from_master(&[3; 32]);
        let a = InstanceCa::load_or_create(&store, &keys).await.unwrap();
        let b = InstanceCa::load_or_create(&store, &keys).await.unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(a.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let key = keys.unseal(a.key_sealed()).unwrap();
        assert!(String::from_utf8(key).unwrap().contains("PRIVATE KEY"));
    }
}
