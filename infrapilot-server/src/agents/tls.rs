//! The agent endpoint's listener: TLS 1.3 only, the server's chain signed by the instance CA,
//! client certificates verified against the CA but optional at the TLS layer (enrollment
//! comes before an agent has one; every other call checks for it).
//!
//! Connections are bounded (`Config::agent_connections`): at most `max_connections` are open
//! at once (past it the endpoint stops accepting until one closes), and a connection that
//! sends nothing for `idle_timeout` — during its TLS handshake or after — is closed
//! ([`Idle`]). The server pings every connection over HTTP/2 at a third of that time, so a
//! live agent always has something to answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use infrapilot_proto::v1::agent_service_server::AgentServiceServer;
use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::AgentEndpoint;
use crate::AppState;

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
                let tcp = Idle::new(tcp, limits.idle_timeout, permit);
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "agent TLS handshake refused"),
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

/// A TCP connection that fails once it has received nothing for its idle timeout, and holds
/// its slot of the endpoint's connection cap until it is dropped.
pub struct Idle {
    inner: TcpStream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Idle {
    fn new(inner: TcpStream, timeout: Duration, permit: OwnedSemaphorePermit) -> Self {
        Idle {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            _permit: permit,
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.timeout;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the agent connection was silent for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Idle {
    type ConnectInfo = <TcpStream as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
