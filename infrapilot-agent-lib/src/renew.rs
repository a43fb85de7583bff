//! Certificate renewal: when two thirds of the client certificate's lifetime have passed,
//! the agent asks for a new one over its existing mTLS identity, with a CSR for the same key.

use infrapilot_proto::v1::RenewRequest;
use infrapilot_proto::v1::agent_service_client::AgentServiceClient;
use rustls_pki_types::CertificateDer;
use tonic::transport::Channel;

use crate::command::AgentInfo;
use crate::enroll::{client_chain, csr_der};
use crate::error::AgentError;
use crate::state::StateDir;

/// The validity period of a certificate, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first second it is valid.
    pub not_before: i64,
    /// The last second it is valid.
    pub not_after: i64,
}

impl Validity {
    /// Reads the validity period of a DER certificate.
    pub fn of_der(der: &[u8]) -> Result<Self, AgentError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| AgentError::Renewal {
                reason: format!("the stored certificate cannot be parsed: {e}"),
            })?;
        Ok(Self {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// When to renew: after two thirds of the lifetime.
    pub fn renew_at(&self) -> i64 {
        let lifetime = self.not_after.saturating_sub(self.not_before).max(0);
        self.not_before
            .saturating_add(lifetime / 3 * 2 + (lifetime % 3) * 2 / 3)
    }
}

/// Renews the agent certificate over `channel` and stores the new one (and the new expiry in
/// `agent.json`) atomically. Returns the new certificate's expiry (unix seconds).
pub async fn renew(channel: Channel, state: &StateDir) -> Result<i64, AgentError> {
    let key_pem = state.read_key_pem()?;
    let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| AgentError::Renewal {
        reason: format!("the stored key cannot be read: {e}"),
    })?;
    let csr_der =
        csr_der(&key, &AgentInfo::of_this_host().hostname).map_err(|e| AgentError::Renewal {
            reason: e.to_string(),
        })?;
    let response = AgentServiceClient::new(channel)
        .renew_certificate(RenewRequest { csr_der })
        .await
        .map_err(|status| AgentError::Refused {
            call: "RenewCertificate",
            code: status.code(),
            message: status.message().to_owned(),
        })?
        .into_inner();
    if response.certificate_der.is_empty() {
        return Err(AgentError::Renewal {
            reason: "the server's answer carries no certificate".to_owned(),
        });
    }
    let ca: CertificateDer<'static> = state.read_ca()?;
    let chain = client_chain(response.certificate_der, response.chain_der, &ca);
    let mut record = state.read_record()?;
    record.not_after_unix = response.not_after_unix;
    state.write_cert_chain(&chain)?;
    state.write_record(&record)?;
    Ok(response.not_after_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_after_two_thirds_of_the_lifetime() {
        let v = Validity {
            not_before: 1_000,
            not_after: 1_000 + 90 * 86_400,
        };
        assert_eq!(v.renew_at(), 1_000 + 60 * 86_400);
        let odd = Validity {
            not_before: 0,
            not_after: 10,
        };
        assert_eq!(odd.renew_at(), 6);
    }

    #[test]
    fn the_validity_is_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["agent".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 31);
        let cert = params.self_signed(&key).unwrap();
        let v = Validity::of_der(cert.der()).unwrap();
        assert_eq!(v.not_after - v.not_before, 30 * 86_400);
        assert_eq!(v.renew_at(), v.not_before + 20 * 86_400);
    }
}
