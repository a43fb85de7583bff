//! Plain HTTP over loopback for tests of the proxy: an upstream that names itself, and a
//! `GET` with a chosen `Host` header (and basic-auth credentials) through nginx.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Starts an HTTP upstream on a free loopback port that answers every request with the body
/// `upstream <name>`; returns the port. It runs for as long as the test's runtime.
pub async fn upstream(name: &'static str) -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = format!("upstream {name}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(port)
}

/// `GET /` on `127.0.0.1:port` with `Host: host`: the status code (0 when the answer has no
/// status line) and the body. Times out after 10 s.
pub async fn get(port: u16, host: &str) -> io::Result<(u16, String)> {
    get_as(port, host, None).await
}

/// [`get`] with `Authorization: Basic` for `(user, password)` when given.
pub async fn get_as(
    port: u16,
    host: &str,
    credentials: Option<(&str, &str)>,
) -> io::Result<(u16, String)> {
    use base64::Engine as _;

    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let authorization = credentials
        .map(|(user, password)| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    let request =
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 10 s"))??;
    Ok(split_response(&response))
}

/// An HTTP/1.1 response's status code and body.
pub fn split_response(response: &str) -> (u16, String) {
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Polls [`get`] until `accept` holds for five answers in a row (a reload starts new workers
/// before the old ones stop accepting, so one answer from a new worker does not mean the old
/// ones are gone), at most 100 times 50 ms apart; returns the last answer.
pub async fn until(
    port: u16,
    host: &str,
    accept: impl Fn(&(u16, String)) -> bool,
) -> io::Result<(u16, String)> {
    poll_until(|| get(port, host), accept).await
}

/// [`until`] over HTTPS: polls [`get_tls`] of `/`, trusting only `ca_pem`.
pub async fn until_tls(
    port: u16,
    host: &str,
    ca_pem: &str,
    accept: impl Fn(&(u16, String)) -> bool,
) -> io::Result<(u16, String)> {
    poll_until(|| get_tls(port, host, "/", ca_pem), accept).await
}

async fn poll_until<F, Fut>(
    fetch: F,
    accept: impl Fn(&(u16, String)) -> bool,
) -> io::Result<(u16, String)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<(u16, String)>>,
{
    let mut last = (0, String::new());
    let mut streak = 0;
    for _ in 0..100 {
        last = fetch().await?;
        streak = if accept(&last) { streak + 1 } else { 0 };
        if streak == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(last)
}

/// `GET path` over HTTPS on `127.0.0.1:port` with SNI and `Host: host`, trusting only the
/// PEM certificate `ca_pem`: the status code and body, or `(0, "handshake refused: …")` when the
/// server refuses the handshake (nginx's default server does, for names no host serves).
pub async fn get_tls(port: u16, host: &str, path: &str, ca_pem: &str) -> io::Result<(u16, String)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};

    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| invalid(&e))?)
        .map_err(|e| invalid(&e))?;
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(&e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| invalid(&e))?;
    let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake within 10 s"))?;
    let mut tls = match handshake {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return Ok((0, format!("handshake refused: {e}")));
        }
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    Ok(split_response(&String::from_utf8_lossy(&response)))
}
