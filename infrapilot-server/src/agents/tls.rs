//! The agent endpoint's listener: TLS 1.3 only, the server's chain signed by the instance CA,
//! client certificates verified against the CA but optional at the TLS layer (enrollment
//! comes before an agent has one; every other call checks for it).
//!
//! Connections are bounded (`Config::agent_connections`): at most `max_connections` are open
//! at once (past it the endpoint stops accepting until one closes), a TLS handshake must finish
//! within 15 s, and a connection that sends nothing for `idle_timeout` is closed
//! ([`crate::serve::Bounded`]). The server pings every connection over HTTP/2 at a third of
//! that time, so a live agent always has something to answer. A connection without a client
//! certificate can only enrol, so it is closed `enroll_window` after its handshake however
//! busy it keeps itself.

use std::sync::Arc;
use std::time::Duration;

use infrapilot_proto::v1::agent_service_server::AgentServiceServer;
use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::AgentEndpoint;
use crate::AppState;
use crate::serve::Bounded;

/// Why the agent endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Building the TLS configuration failed.
    #[error("agent endpoint TLS: {0}")]
    Tls(String),
    /// The CA could not issue the server certificate.
    #[error(transparent)]
    Ca(#[from] crate::ca::CaError),
    /// Serving failed.
    #[error("agent endpoint: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The rustls server configuration for the agent endpoint.
pub fn server_config(state: &AppState) -> Result<rustls::ServerConfig, EndpointError> {
    let provider = Arc::new(ring::default_provider());
    let (chain, key) = state
        .ca()
        .server_identity(state.keys(), &state.config().agent_hostnames)?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(state.ca().cert_der().to_vec()))
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| EndpointError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The longest a TLS handshake may take, however steadily the peer trickles it.
const HANDSHAKE: Duration = Duration::from_secs(15);

/// Serves the agent endpoint on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), EndpointError> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&state)?));
    let limits = state.config().agent_connections;
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let accept = tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close rather
                    // than spin on the error.
                    tracing::warn!(error = %e, "accepting an agent connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // A failed handshake (wrong CA, expired certificate, not TLS 1.3) ends here:
                // the peer gets a TLS alert and the service never sees it. A silent peer is
                // cut by the idle timeout.
                let tcp = Bounded::new(tcp, permit).idle(limits.idle_timeout);
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(mut stream)) => {
                        if stream.get_ref().1.peer_certificates().is_none() {
                            // Without a client certificate a connection can only enrol, one
                            // call: answering the server's pings must not keep it open.
                            stream.get_mut().0.end_within(limits.enroll_window);
                        }
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "agent TLS handshake refused"),
                    Err(_) => tracing::debug!(%peer, "agent TLS handshake took too long"),
                }
            });
        }
    });
    let hub_state = state.clone();
    let shutdown = async move {
        shutdown.await;
        hub_state
            .hub()
            .close_all("the server is shutting down; reconnect shortly");
    };
    let ping = (limits.idle_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(20));
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(ping))
        .http2_keepalive_timeout(Some(ping.min(Duration::from_secs(10))))
        .add_service(AgentServiceServer::new(AgentEndpoint::new(state)))
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await;
    accept.abort();
    Ok(result?)
}
