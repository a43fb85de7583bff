//! Checking a host through the agent's own nginx: one `GET` with the host's name, over HTTPS
//! when asked, recording the status, the latency, a redirect's target and the certificate
//! nginx presents (whatever it is: the check reports it, it does not judge trust).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infrapilot_core::desired::{HostCheck, HostCheckResult, ServedCertificate};
use infrapilot_core::nginx::Layout;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a check may take in all.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of an answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

/// Sends `check` to nginx on loopback at the layout's HTTP or HTTPS port. A check that cannot
/// be written as a request line is refused in `error` without connecting.
pub async fn check_host(layout: &Layout, check: &HostCheck) -> HostCheckResult {
    let started = Instant::now();
    let mut result = HostCheckResult {
        status: None,
        latency_ms: 0,
        location: None,
        certificate: None,
        error: None,
    };
    if let Some((field, reason)) = check.invalid() {
        result.error = Some(format!("{field} {reason}"));
        return result;
    }
    let seen = Arc::new(Mutex::new(None));
    let answer = tokio::time::timeout(CHECK_TIMEOUT, exchange(layout, check, seen.clone())).await;
    result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result.certificate = seen.lock().ok().and_then(|s| s.clone());
    match answer {
        Err(_) => result.error = Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        Ok(Err(e)) => result.error = Some(e),
        Ok(Ok(text)) => {
            result.status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            let head = text.split("\r\n\r\n").next().unwrap_or_default();
            result.location = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("location"))
                .map(|(_, value)| value.trim().to_owned());
            if result.status.is_none() {
                result.error = Some("nginx's answer has no HTTP status line".to_owned());
            }
        }
    }
    result
}

async fn exchange(
    layout: &Layout,
    check: &HostCheck,
    seen: Arc<Mutex<Option<ServedCertificate>>>,
) -> Result<String, String> {
    let port = if check.https {
        layout.https_port
    } else {
        layout.http_port
    };
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connecting to nginx on port {port}: {e}"))?;
    if !check.https {
        return request(tcp, check).await;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Recording {
        seen,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from(check.domain.clone()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    request(tls, check).await
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    check: &HostCheck,
) -> Result<String, String> {
    let line = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: infrapilot-check\r\nConnection: close\r\n\r\n",
        check.path, check.domain
    );
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut answer = Vec::new();
    let mut limited = (&mut stream).take(MAX_ANSWER as u64);
    limited
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Accepts any certificate and records the leaf, so the check can say what nginx serves.
#[derive(Debug)]
struct Recording {
    seen: Arc<Mutex<Option<ServedCertificate>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) {
            let names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => {
                                Some((*d).to_owned())
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(mut seen) = self.seen.lock() {
                *seen = Some(ServedCertificate {
                    names,
                    issuer: cert.issuer().to_string(),
                    not_after: cert.validity().not_after.timestamp(),
                });
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    crate::tls::provider_signature_checks!();
}
