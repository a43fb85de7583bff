//! TLS 1.3 for the agent: the CA-pinning verifier used at enrollment, the mTLS client
//! configuration used afterwards, and the connector that gives both to tonic.
//!
//! The server presents the chain `[server leaf, instance CA]`. Before the agent has a
//! certificate it trusts nothing but the CA fingerprint in its enrollment token:
//! [`PinnedCaVerifier`] looks for the presented certificate with that SHA-256 fingerprint and
//! verifies the leaf against it as the only root. Once enrolled, the agent trusts the CA it
//! stored (`ca.pem`) through rustls' ordinary WebPKI verifier.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use infrapilot_core::enrollment::CaFingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};

use crate::endpoint::AgentEndpoint;

/// The message of a CA mismatch; fixed with the server's documentation.
pub const CA_MISMATCH_MESSAGE: &str = "the server's CA does not match the fingerprint in the token: \
     wrong server or intercepted connection";

/// The ALPN protocol the agent offers: HTTP/2, which gRPC runs on.
const ALPN_H2: &[u8] = b"h2";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the configuration (for example a key that does not match the
    /// certificate, or a CA certificate it cannot parse).
    #[error("cannot build the TLS configuration ({what}): {source}")]
    Config {
        /// What was being configured.
        what: &'static str,
        /// rustls' own error.
        source: rustls::Error,
    },
    /// The CA certificate could not be used as a trust root.
    #[error("the CA certificate cannot be used as a trust root: {reason}")]
    InvalidCa {
        /// The verifier's own message.
        reason: String,
    },
}

/// What the [`PinnedCaVerifier`] saw in the last handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// No presented certificate had the pinned fingerprint.
    Mismatch {
        /// The fingerprints of every certificate the server presented, leaf first.
        presented: Vec<CaFingerprint>,
    },
    /// The pinned CA was presented but the leaf does not verify against it.
    LeafRejected {
        /// rustls' reason.
        reason: String,
    },
    /// The pinned CA was presented and the leaf verified against it.
    Verified {
        /// The pinned CA certificate as presented, DER.
        ca_der: CertificateDer<'static>,
    },
}

/// A rustls server-certificate verifier that trusts exactly one CA, identified by the
/// SHA-256 fingerprint of its DER encoding, and takes that CA from the server's own chain.
///
/// It promises: the handshake succeeds only if one of the presented certificates has the
/// pinned fingerprint and the leaf (including the server name and validity period) verifies
/// against it as the only root. Otherwise the handshake fails with a certificate error, so
/// the client sends no application data. What it saw is recorded for the caller to report
/// ([`PinnedCaVerifier::outcome`]).
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: CaFingerprint,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<Option<PinOutcome>>,
}

impl PinnedCaVerifier {
    /// A verifier pinned to `pin`, using the ring crypto provider.
    pub fn new(pin: CaFingerprint) -> Self {
        Self {
            pin,
            provider: provider(),
            outcome: Mutex::new(None),
        }
    }

    /// What the most recent handshake saw; `None` before any handshake reached the
    /// certificate check.
    pub fn outcome(&self) -> Option<PinOutcome> {
        self.outcome.lock().ok().and_then(|o| o.clone())
    }

    fn record(&self, outcome: PinOutcome) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(outcome);
        }
    }
}

/// The error a [`PinnedCaVerifier`] fails the handshake with when the CA does not match.
#[derive(Debug, thiserror::Error)]
#[error("{CA_MISMATCH_MESSAGE} (expected CA fingerprint {expected})")]
struct CaMismatch {
    expected: CaFingerprint,
}

/// The signature checks of a [`ServerCertVerifier`] whose `self.provider` is an
/// `Arc<CryptoProvider>`: the provider's own algorithms (for verifiers that decide trust
/// themselves and leave signatures to rustls).
macro_rules! provider_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use provider_signature_checks;

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: Vec<&CertificateDer<'_>> =
            std::iter::once(end_entity).chain(intermediates).collect();
        let Some(ca) = presented
            .iter()
            .find(|cert| CaFingerprint::of_der(cert) == self.pin)
        else {
            self.record(PinOutcome::Mismatch {
                presented: presented.iter().map(|c| CaFingerprint::of_der(c)).collect(),
            });
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(CaMismatch { expected: self.pin })),
            )));
        };
        let ca = (*ca).clone().into_owned();
        let result = verify_against(
            &self.provider,
            &ca,
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match &result {
            Ok(_) => self.record(PinOutcome::Verified { ca_der: ca }),
            Err(e) => self.record(PinOutcome::LeafRejected {
                reason: e.to_string(),
            }),
        }
        result
    }

    provider_signature_checks!();
}

/// Verifies `end_entity` against `ca` as the only root, with rustls' WebPKI verifier.
fn verify_against(
    provider: &Arc<CryptoProvider>,
    ca: &CertificateDer<'static>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    ocsp_response: &[u8],
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    // The root itself is not an intermediate; webpki would only skip it anyway.
    let others: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .filter(|c| c.as_ref() != ca.as_ref())
        .cloned()
        .collect();
    verifier.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
}

/// The crypto provider the agent uses: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS 1.3 client configuration for enrollment: no client certificate, the server
/// checked by `verifier`, ALPN `h2`.
pub fn enroll_client_config(verifier: Arc<PinnedCaVerifier>) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Config {
            what: "TLS 1.3 for enrollment",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// The TLS 1.3 mutual-TLS client configuration for an enrolled agent: the server verified
/// against `ca` alone, the agent authenticated by `chain` (its certificate first) and `key`.
pub fn mtls_client_config(
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| TlsError::InvalidCa {
        reason: e.to_string(),
    })?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::InvalidCa {
            reason: e.to_string(),
        })?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Config {
            what: "TLS 1.3 for the session",
            source,
        })?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|source| TlsError::Config {
            what: "the agent's client certificate and key",
            source,
        })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Opens a TLS connection to `endpoint` with `config` (TCP, then the TLS 1.3 handshake).
pub async fn connect_tls(
    endpoint: &AgentEndpoint,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(endpoint.authority()).await?;
    tcp.set_nodelay(true)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(endpoint.server_name(), tcp)
        .await
}

/// A tonic channel to `endpoint` whose connections are made by [`connect_tls`] with `config`.
///
/// The channel dials lazily and again after a broken connection; HTTP/2 keep-alives detect a
/// dead peer within about a minute.
pub async fn channel(
    endpoint: &AgentEndpoint,
    config: Arc<ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    // The URI is only used for the HTTP/2 authority: TLS is done by the connector, so the
    // scheme is http to keep tonic from looking for TLS of its own.
    let uri = format!("http://{}", endpoint.authority());
    Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_secs(15))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .connect_with_connector(TlsConnector {
            endpoint: endpoint.clone(),
            config,
        })
        .await
}

/// A tower service that connects with [`connect_tls`], for tonic.
#[derive(Clone)]
struct TlsConnector {
    endpoint: AgentEndpoint,
    config: Arc<ClientConfig>,
}

impl tower::Service<tonic::codegen::http::Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: tonic::codegen::http::Uri) -> Self::Future {
        let endpoint = self.endpoint.clone();
        let config = self.config.clone();
        Box::pin(async move { connect_tls(&endpoint, config).await.map(TokioIo::new) })
    }
}

/// The error and all its sources, joined by `: `, for messages an operator reads.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
