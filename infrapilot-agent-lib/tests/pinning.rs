//! The CA-pinning verifier against a real TLS 1.3 server (rustls), with certificates made by
//! rcgen: the token is sent only to a server whose chain holds the pinned CA and whose leaf
//! that CA signed for the dialled name.

// Test helpers fail the test by panicking, like the assertions in the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use infrapilot_agent_lib::{AgentEndpoint, EnrollError, StateDir, enroll};
use infrapilot_core::enrollment::{CaFingerprint, EnrollmentToken, TokenPublicId, TokenSecret};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn make_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// A server leaf for `name`, signed by `issuer`.
fn leaf(name: &str, issuer: &Ca) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer.cert, &issuer.key)
        .unwrap();
    (
        cert.der().clone(),
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
}

fn token(pin: &CertificateDer<'_>) -> EnrollmentToken {
    EnrollmentToken {
        ca_fingerprint: CaFingerprint::of_der(pin),
        public_id: TokenPublicId::from_bytes([1; 8]),
        secret: TokenSecret::from_bytes([42; 32]),
    }
}

/// What the test server saw on its one connection.
#[derive(Debug)]
struct Seen {
    handshake: Result<(), String>,
    /// Every application byte read after the handshake.
    bytes: Vec<u8>,
}

/// A TLS 1.3 server presenting `chain` that accepts one connection and reads what the
/// client sends until it is idle for half a second.
async fn tls_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> (u16, oneshot::Receiver<Seen>) {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let seen = match acceptor.accept(tcp).await {
            Err(e) => Seen {
                handshake: Err(e.to_string()),
                bytes: Vec::new(),
            },
            Ok(mut tls) => {
                let mut bytes = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(500), tls.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                }
                Seen {
                    handshake: Ok(()),
                    bytes,
                }
            }
        };
        let _ = tx.send(seen);
    });
    (port, rx)
}

async fn enroll_against(
    port: u16,
    token: &EnrollmentToken,
) -> (
    Result<infrapilot_agent_lib::EnrollOutcome, EnrollError>,
    StateDir,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let endpoint = AgentEndpoint::parse(&format!("https://localhost:{port}")).unwrap();
    let result = enroll(&endpoint, token, &BTreeMap::new(), &state).await;
    (result, state, dir)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_right_pin_lets_the_token_through() {
    let ca = make_ca("instance CA");
    let (leaf, key) = leaf("localhost", &ca);
    let (port, seen) = tls_server(vec![leaf, ca.cert.der().clone()], key).await;
    let token = token(ca.cert.der());

    // The test server does not speak gRPC, so enrollment itself fails after the token was
    // sent; what matters is that the handshake passed and the token went out.
    let (result, _state, _dir) = enroll_against(port, &token).await;
    assert!(
        matches!(
            result,
            Err(EnrollError::Rejected { .. } | EnrollError::Transport { .. })
        ),
        "{result:?}"
    );
    let seen = seen.await.unwrap();
    assert_eq!(seen.handshake, Ok(()));
    assert!(
        contains(&seen.bytes, token.to_string().as_bytes()),
        "the server should have received the token ({} bytes seen)",
        seen.bytes.len()
    );
}

#[tokio::test]
async fn a_wrong_pin_is_refused_before_any_application_data() {
    let ca = make_ca("instance CA");
    let impostor = make_ca("another CA");
    let (leaf, key) = leaf("localhost", &ca);
    let presented_leaf = CaFingerprint::of_der(&leaf);
    let (port, seen) = tls_server(vec![leaf, ca.cert.der().clone()], key).await;

    let (result, state, _dir) = enroll_against(port, &token(impostor.cert.der())).await;
    let error = result.unwrap_err();
    let EnrollError::CaMismatch {
        expected,
        presented,
        ..
    } = &error
    else {
        panic!("expected CaMismatch, got {error:?}");
    };
    assert_eq!(*expected, CaFingerprint::of_der(impostor.cert.der()));
    assert_eq!(
        *presented,
        vec![presented_leaf, CaFingerprint::of_der(ca.cert.der())]
    );
    assert!(
        error
            .to_string()
            .contains("the server's CA does not match the fingerprint in the token"),
        "{error}"
    );

    let seen = seen.await.unwrap();
    assert!(seen.handshake.is_err(), "the handshake must fail");
    assert_eq!(
        seen.bytes.len(),
        0,
        "no application byte may reach the server"
    );
    assert!(!state.file("key.pem").exists(), "nothing is stored");
}

#[tokio::test]
async fn a_leaf_not_signed_by_the_pinned_ca_is_refused() {
    let pinned = make_ca("instance CA");
    let other = make_ca("another CA");
    // The pinned CA is presented, but the leaf was signed by another CA.
    let (leaf, key) = leaf("localhost", &other);
    let (port, seen) = tls_server(vec![leaf, pinned.cert.der().clone()], key).await;

    let (result, _state, _dir) = enroll_against(port, &token(pinned.cert.der())).await;
    assert!(
        matches!(result, Err(EnrollError::ServerCertificate { .. })),
        "{result:?}"
    );
    let seen = seen.await.unwrap();
    assert!(seen.handshake.is_err());
    assert_eq!(seen.bytes.len(), 0);
}

#[tokio::test]
async fn a_leaf_for_another_name_is_refused() {
    let ca = make_ca("instance CA");
    let (leaf, key) = leaf("elsewhere.example", &ca);
    let (port, seen) = tls_server(vec![leaf, ca.cert.der().clone()], key).await;

    let (result, _state, _dir) = enroll_against(port, &token(ca.cert.der())).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, EnrollError::ServerCertificate { .. }),
        "{error:?}"
    );
    assert_eq!(seen.await.unwrap().bytes.len(), 0);
}
