//! Enrollment: trading an enrollment token for a client certificate.
//!
//! The agent checks the server against the CA fingerprint pinned in the token before it sends
//! anything ([`crate::tls::PinnedCaVerifier`]), generates its ECDSA P-256 key on the host,
//! sends a CSR with the token, and stores the key, the certificate, the CA and its record in
//! the state directory. The key never leaves the host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use infrapilot_core::enrollment::{CaFingerprint, EnrollmentToken};
use infrapilot_proto::PROTOCOL_VERSION;
use infrapilot_proto::v1::EnrollRequest;
use infrapilot_proto::v1::agent_service_client::AgentServiceClient;
use rustls_pki_types::CertificateDer;

use crate::command::AgentInfo;
use crate::endpoint::AgentEndpoint;
use crate::state::{AgentRecord, StateDir, StateError};
use crate::tls::{self, CA_MISMATCH_MESSAGE, PinOutcome, PinnedCaVerifier, error_chain};

/// How long the enrollment call may take once connected.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server assigned at enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollOutcome {
    /// The agent's id.
    pub agent_id: String,
    /// The organization the agent joined.
    pub organization_id: String,
    /// When the client certificate expires (unix seconds).
    pub not_after_unix: i64,
    /// Seconds between heartbeats the server expects.
    pub heartbeat_interval_secs: u32,
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The state directory already holds an enrollment.
    #[error(
        "this agent is already enrolled ({path} exists); remove the state directory to enroll again"
    )]
    AlreadyEnrolled {
        /// The existing record.
        path: std::path::PathBuf,
    },
    /// No certificate the server presented has the token's CA fingerprint. The token was not
    /// sent.
    #[error(
        "{CA_MISMATCH_MESSAGE} (endpoint {endpoint}; the token expects CA fingerprint {expected}, \
         the server presented {})",
        fingerprints(presented)
    )]
    CaMismatch {
        /// The endpoint dialled.
        endpoint: String,
        /// The fingerprint in the token.
        expected: CaFingerprint,
        /// The fingerprints of the certificates the server presented, leaf first.
        presented: Vec<CaFingerprint>,
    },
    /// The server presented the pinned CA, but its own certificate does not verify against it
    /// (not signed by it, expired, or issued for another name). The token was not sent.
    #[error("the server's certificate at {endpoint} is not valid under the pinned CA: {reason}")]
    ServerCertificate {
        /// The endpoint dialled.
        endpoint: String,
        /// rustls' reason.
        reason: String,
    },
    /// The server refused the enrollment; its message is passed through verbatim.
    #[error("the server refused the enrollment ({code:?}): {message}")]
    Rejected {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message, verbatim.
        message: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach {endpoint}: {message}")]
    Transport {
        /// The endpoint dialled.
        endpoint: String,
        /// The transport's message, with its causes.
        message: String,
    },
    /// The server's answer is unusable.
    #[error("the server's enrollment answer is invalid: {reason}")]
    InvalidResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The key or the CSR could not be generated.
    #[error("cannot generate the agent key or CSR: {reason}")]
    Key {
        /// rcgen's message.
        reason: String,
    },
    /// The state directory could not be written.
    #[error(transparent)]
    Io(#[from] StateError),
}

fn fingerprints(list: &[CaFingerprint]) -> String {
    if list.is_empty() {
        return "no certificate".to_owned();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Enrolls the agent at `endpoint` with `token`, adding `labels`, and stores the result in
/// `state`. The token is sent only after the server proved it holds a certificate issued by
/// the CA the token pins.
pub async fn enroll(
    endpoint: &AgentEndpoint,
    token: &EnrollmentToken,
    labels: &BTreeMap<String, String>,
    state: &StateDir,
) -> Result<EnrollOutcome, EnrollError> {
    if state.is_enrolled() {
        return Err(EnrollError::AlreadyEnrolled {
            path: state.file("agent.json"),
        });
    }
    let info = AgentInfo::of_this_host();
    let key = rcgen::KeyPair::generate().map_err(key_error)?;
    let csr_der = csr_der(&key, &info.hostname)?;

    let verifier = Arc::new(PinnedCaVerifier::new(token.ca_fingerprint));
    let config =
        tls::enroll_client_config(verifier.clone()).map_err(|e| EnrollError::Transport {
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?;
    let failed = |message: String| match verifier.outcome() {
        Some(PinOutcome::Mismatch { presented }) => EnrollError::CaMismatch {
            endpoint: endpoint.to_string(),
            expected: token.ca_fingerprint,
            presented,
        },
        Some(PinOutcome::LeafRejected { reason }) => EnrollError::ServerCertificate {
            endpoint: endpoint.to_string(),
            reason,
        },
        _ => EnrollError::Transport {
            endpoint: endpoint.to_string(),
            message,
        },
    };
    let channel = tls::channel(endpoint, Arc::new(config))
        .await
        .map_err(|e| failed(error_chain(&e)))?;
    // Belt and braces: the handshake is complete here, so the verifier must have approved.
    let ca_der = match verifier.outcome() {
        Some(PinOutcome::Verified { ca_der }) => ca_der,
        _ => {
            return Err(failed(
                "the TLS handshake did not verify the server".to_owned(),
            ));
        }
    };

    let request = EnrollRequest {
        token: token.to_string(),
        csr_der,
        hostname: info.hostname.clone(),
        labels: labels.clone().into_iter().collect(),
        agent_version: info.agent_version.clone(),
        protocol_version: PROTOCOL_VERSION,
    };
    let mut client = AgentServiceClient::new(channel);
    let response = tokio::time::timeout(ENROLL_TIMEOUT, client.enroll(request))
        .await
        .map_err(|_| EnrollError::Transport {
            endpoint: endpoint.to_string(),
            message: format!("no answer within {ENROLL_TIMEOUT:?}"),
        })?
        .map_err(|status| EnrollError::Rejected {
            code: status.code(),
            message: status.message().to_owned(),
        })?
        .into_inner();

    if response.certificate_der.is_empty() {
        return Err(EnrollError::InvalidResponse {
            reason: "it carries no certificate".to_owned(),
        });
    }
    if response.agent_id.is_empty() {
        return Err(EnrollError::InvalidResponse {
            reason: "it carries no agent id".to_owned(),
        });
    }
    let chain = client_chain(response.certificate_der, response.chain_der, &ca_der);
    let record = AgentRecord {
        agent_id: response.agent_id,
        organization_id: response.organization_id,
        endpoint: endpoint.to_string(),
        not_after_unix: response.not_after_unix,
        heartbeat_interval_secs: response.heartbeat_interval_secs,
    };
    // The record is written last: its presence is what "enrolled" means.
    state.write_key_pem(&key.serialize_pem())?;
    state.write_cert_chain(&chain)?;
    state.write_ca(&ca_der)?;
    state.write_record(&record)?;
    Ok(EnrollOutcome {
        agent_id: record.agent_id,
        organization_id: record.organization_id,
        not_after_unix: record.not_after_unix,
        heartbeat_interval_secs: record.heartbeat_interval_secs,
    })
}

/// A PKCS#10 request (DER) for `key` with CN = `hostname`. The server ignores the names and
/// sets its own; the CSR proves possession of the key.
pub(crate) fn csr_der(key: &rcgen::KeyPair, hostname: &str) -> Result<Vec<u8>, EnrollError> {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let csr = params.serialize_request(key).map_err(key_error)?;
    Ok(csr.der().to_vec())
}

/// The chain the agent presents: its certificate, then the chain without the CA itself.
pub(crate) fn client_chain(
    certificate_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    ca_der: &CertificateDer<'_>,
) -> Vec<CertificateDer<'static>> {
    std::iter::once(certificate_der)
        .chain(
            chain_der
                .into_iter()
                .filter(|c| c.as_slice() != ca_der.as_ref()),
        )
        .map(CertificateDer::from)
        .collect()
}

fn key_error(e: rcgen::Error) -> EnrollError {
    EnrollError::Key {
        reason: e.to_string(),
    }
}
