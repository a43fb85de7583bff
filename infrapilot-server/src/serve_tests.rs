//! Connections are bounded (SECURITY.md, class 6), tried over real sockets: every way a
//! client can hold an API connection without finishing a request (silent, a slowloris head,
//! idle keep-alive) is closed; past the cap the server stops accepting until a slot frees;
//! every error produced before a handler runs is a problem document; the agent endpoint closes
//! silent connections and holds its cap too, and closes a connection without a client
//! certificate once its enrolment window has passed, however busy.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::AppState;
use crate::api::http_tests_support::call;
use crate::config::Edition;
use crate::testing::{self, Kind};

/// Longer than any bound under test: a test that waits this long has found a connection the
/// server kept open.
const NEVER: Duration = Duration::from_secs(30);

/// A server's state with these settings, and a listener on a free port.
async fn state_and_listener(
    vars: &[(&str, &str)],
) -> (AppState, TcpListener, std::net::SocketAddr) {
    let state = testing::app_state_with(
        &testing::database(Kind::Sqlite).await,
        Edition::Community,
        vars,
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (state, listener, address)
}

async fn server(vars: &[(&str, &str)]) -> (AppState, std::net::SocketAddr) {
    let (state, listener, address) = state_and_listener(vars).await;
    let limits = state.config().connections;
    let app = crate::app(state.clone());
    tokio::spawn(crate::serve::serve_api(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    (state, address)
}

/// Reads until the server closes the connection; returns what it sent. Fails the test when
/// the connection is still open after [`NEVER`].
async fn until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(NEVER, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open"),
        }
    }
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn connections_that_never_finish_a_request_are_closed() {
    let (_, address) = server(&[("INFRAPILOT_HEADER_TIMEOUT_SECS", "1")]).await;
    // Silent: connects and sends nothing.
    let mut silent = TcpStream::connect(address).await.unwrap();
    // Slowloris: a head sent a byte at a time, never finished, each byte well within the
    // timeout.
    let (mut slow, mut half) = TcpStream::connect(address).await.unwrap().into_split();
    let slow_writer = {
        tokio::spawn(async move {
            let _ = half.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if half.write_all(b"a").await.is_err() {
                    return;
                }
            }
        })
    };
    // Idle keep-alive: one whole request, then nothing.
    let mut idle = TcpStream::connect(address).await.unwrap();
    idle.write_all(HEALTH).await.unwrap();
    let answered = until_closed(&mut idle).await;
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    assert!(until_closed(&mut silent).await.is_empty());
    let sent = until_closed(&mut slow).await;
    assert!(
        !sent.starts_with(b"HTTP/1.1 200"),
        "the slow head was answered"
    );
    slow_writer.abort();
}

/// Past the cap the server accepts no more connections until one closes; then the waiting
/// one is served.
#[tokio::test]
async fn past_the_cap_a_connection_waits_for_a_free_slot() {
    let (_, address) = server(&[
        ("INFRAPILOT_MAX_CONNECTIONS", "2"),
        ("INFRAPILOT_HEADER_TIMEOUT_SECS", "120"),
    ])
    .await;
    let first = TcpStream::connect(address).await.unwrap();
    let mut second = TcpStream::connect(address).await.unwrap();
    second.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 512];
    let n = second.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Two connections are open: the third is queued by the kernel, not served.
    let mut third = TcpStream::connect(address).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(1500), third.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "a third connection was served past the cap of two"
    );
    drop(first);
    let n = tokio::time::timeout(NEVER, third.read(&mut buf))
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

/// Errors made before a handler runs — a target too long, header fields too large, a body
/// too large — are problem documents with their own status, like every other error.
#[tokio::test]
async fn oversized_requests_get_problem_documents() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let long = format!("/api/v1/agents?q={}", "a".repeat(9000));
    let r = call(&state, "GET", &long, None, None, None).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG, "{r:?}");
    assert!(r.content_type.starts_with("application/problem+json"));
    assert!(r.body["type"].as_str().unwrap().ends_with("uri-too-long"));

    let request = axum::http::Request::builder()
        .uri("/healthz")
        .header("x-big", "b".repeat(40 * 1024))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(crate::app(state.clone()), request)
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert!(
        response.headers()[axum::http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );

    let big = json!({"email": "a@example.com", "password": "p".repeat(2 * 1024 * 1024)});
    let r = call(&state, "POST", "/api/v1/auth/login", None, None, Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    assert!(r.content_type.starts_with("application/problem+json"));
    assert!(r.body["type"].as_str().unwrap().ends_with("body-too-large"));
}

/// An agent endpoint with these settings, serving on a free port.
async fn agent_endpoint(vars: &[(&str, &str)]) -> (AppState, std::net::SocketAddr) {
    let (state, listener, address) = state_and_listener(vars).await;
    tokio::spawn(crate::agents::serve(
        state.clone(),
        listener,
        std::future::pending(),
    ));
    (state, address)
}

/// The agent endpoint closes a connection that stays silent (no TLS handshake), and holds
/// its cap: past it, a connection is not even answered until a slot frees.
#[tokio::test]
async fn the_agent_endpoint_closes_silent_connections_and_holds_its_cap() {
    let (_, address) = agent_endpoint(&[
        ("INFRAPILOT_AGENT_IDLE_SECS", "1"),
        ("INFRAPILOT_AGENT_MAX_CONNECTIONS", "1"),
    ])
    .await;
    let mut silent = TcpStream::connect(address).await.unwrap();
    // The one slot is taken: a TLS ClientHello from a second connection gets no answer while
    // the first is open.
    let mut second = TcpStream::connect(address).await.unwrap();
    second.write_all(&client_hello()).await.unwrap();
    let mut buf = [0u8; 16];
    let waited = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(waited.is_err(), "answered past the cap of one");
    // The silent one is closed by the idle timeout; then the second is answered.
    assert!(until_closed(&mut silent).await.is_empty());
    let n = tokio::time::timeout(NEVER, second.read(&mut buf))
        .await
        .expect("answered once the slot freed")
        .unwrap();
    assert!(n > 0 && buf[0] == 0x16, "a TLS handshake record");
}

/// A minimal TLS 1.3 ClientHello (one cipher suite, supported_versions and key_share for
/// X25519), enough for the server to answer with its ServerHello.
fn client_hello() -> Vec<u8> {
    let mut ext = Vec::new();
    // supported_versions: TLS 1.3.
    ext.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
    // supported_groups: x25519.
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, ed25519.
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x08, 0x07,
    ]);
    // key_share: x25519 with a 32-byte key.
    ext.extend_from_slice(&[0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    ext.extend_from_slice(&[9u8; 32]);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// A TLS client without a certificate (all an enrolment needs) that keeps its connection busy
/// with HTTP/2 pings, which the idle timeout alone would never close, is closed once the
/// enrolment window has passed.
#[tokio::test]
async fn the_agent_endpoint_closes_a_certificateless_connection_however_busy() {
    let (state, address) = agent_endpoint(&[
        ("INFRAPILOT_AGENT_IDLE_SECS", "600"),
        ("INFRAPILOT_AGENT_ENROLL_SECS", "1"),
    ])
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            state.ca().cert_der().to_vec(),
        ))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the handshake succeeds without a client certificate");
    // The HTTP/2 preface and an empty SETTINGS frame, then a PING every 100 ms.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    let mut answered = 0usize;
    let closed_after = loop {
        assert!(
            started.elapsed() < NEVER,
            "a busy connection without a certificate was kept open"
        );
        if tls
            .write_all(b"\0\0\x08\x06\0\0\0\0\0pingpong")
            .await
            .is_err()
        {
            break started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(100), tls.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => answered += n,
            Err(_) => {}
        }
    };
    // Closed by the window (1 s from the handshake), not before it: the pings kept it busy.
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the enrolment window ended"
    );
    assert!(
        answered > 0,
        "the server answered while the window was open"
    );
}
