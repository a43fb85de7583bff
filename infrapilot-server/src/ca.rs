//! The instance certificate authority.
//!
//! Created once, on the first start of the first replica, and kept in the database with its
//! private key sealed by the server's secret key. It will sign agents' client certificates and
//! the agent endpoint's server certificate (issue 4); its SHA-256 fingerprint goes into every
//! enrollment token so an agent can check the server before it sends the token's secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use infrapilot_core::enrollment::CaFingerprint;
use infrapilot_core::ids::{AgentId, OrgId};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType,
};
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

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
    /// The CA's key could not be unsealed (the secret key changed).
    #[error("the instance CA's key cannot be unsealed: the server's secret key changed")]
    Key,
    /// The agent's certificate signing request is invalid.
    #[error("the certificate signing request is invalid: {0}")]
    Csr(String),
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

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA as an issuer: its key (unsealed) and a certificate object with its name.
    fn issuer(&self, keys: &Keys) -> Result<(Certificate, KeyPair), CaError> {
        let pem = keys.unseal(&self.key_sealed).map_err(|_| CaError::Key)?;
        let key = KeyPair::from_pem(std::str::from_utf8(&pem).map_err(|_| CaError::Key)?)?;
        let params = CertificateParams::from_ca_cert_pem(&self.cert_pem)?;
        // Re-signing the same name and key gives an issuer equivalent to the stored one.
        let cert = params.self_signed(&key)?;
        Ok((cert, key))
    }

    /// Signs an agent's client certificate from its CSR. The CSR's own names are ignored: the
    /// certificate names the agent (CN and `urn:infrapilot:agent:<id>`) and its organization
    /// (`urn:infrapilot:org:<id>`), for `lifetime` from now.
    pub fn sign_agent(
        &self,
        keys: &Keys,
        csr_der: &[u8],
        agent: AgentId,
        org: OrgId,
        lifetime: std::time::Duration,
    ) -> Result<SignedAgent, CaError> {
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(|e| CaError::Csr(e.to_string()))?;
        let key_fingerprint = crate::util::sha256_hex(csr.public_key.der_bytes());
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, agent.to_string());
        params
            .distinguished_name
            .push(DnType::OrganizationName, org.to_string());
        params.subject_alt_names = vec![
            SanType::URI(format!("{AGENT_URN}{agent}").try_into()?),
            SanType::URI(format!("{ORG_URN}{org}").try_into()?),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        let not_after = now + time::Duration::try_from(lifetime).unwrap_or(time::Duration::days(7));
        params.not_after = not_after;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let (issuer, issuer_key) = self.issuer(keys)?;
        let cert = signed.signed_by(&issuer, &issuer_key)?;
        Ok(SignedAgent {
            cert_der: cert.der().to_vec(),
            chain_der: vec![self.cert_der.clone()],
            not_after_unix: not_after.unix_timestamp(),
            key_fingerprint,
        })
    }

    /// A fresh server certificate for the agent endpoint, for `hostnames` (DNS names or IP
    /// addresses), signed by the CA: the chain and the key, for rustls.
    pub fn server_identity(
        &self,
        keys: &Keys,
        hostnames: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hostnames.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "InfraPilot agent endpoint");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(365);
        let (issuer, issuer_key) = self.issuer(keys)?;
        let cert = params.signed_by(&key, &issuer, &issuer_key)?;
        Ok((
            vec![
                cert.der().clone(),
                CertificateDer::from(self.cert_der.clone()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }
}

/// The SAN URI prefix naming an agent in its certificate.
pub const AGENT_URN: &str = "urn:infrapilot:agent:";
/// The SAN URI prefix naming the agent's organization in its certificate.
pub const ORG_URN: &str = "urn:infrapilot:org:";

/// An agent certificate just signed.
#[derive(Debug, Clone)]
pub struct SignedAgent {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The chain above it (the CA), DER.
    pub chain_der: Vec<Vec<u8>>,
    /// Expiry, unix seconds.
    pub not_after_unix: i64,
    /// SHA-256 of the agent's public key, hex.
    pub key_fingerprint: String,
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
