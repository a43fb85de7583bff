//! An agent's certificate over its life: renewal over the mTLS channel at two thirds of the
//! lifetime, and revocation on one replica closing the stream another replica holds.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use infrapilot_agent_lib::StopReason;
use infrapilot_agent_lib::renew::Validity;
use infrapilot_agent_lib::tls::{channel, mtls_client_config};
use infrapilot_proto::v1::RenewRequest;
use infrapilot_proto::v1::agent_service_client::AgentServiceClient;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use super::e2e_tests::{csr, endpoint_at, enrolled, env, env_on, run_agent, session_with};
use crate::AppState;
use crate::api::http_tests_support::call;
use crate::config::Edition;
use crate::testing::{self, Kind};
use crate::util::{now_secs, rfc3339};

/// A client certificate for `key` signed by the instance CA, naming `agent` (and `org`, when
/// given) and valid from `validity.0` to `validity.1` (unix seconds): what the CA would
/// issue, with a lifetime of the test's choosing.
pub(super) fn agent_certificate(
    state: &AppState,
    key: &rcgen::KeyPair,
    agent: &str,
    org: Option<&str>,
    validity: (i64, i64),
) -> CertificateDer<'static> {
    let pem = state.keys().unseal(state.ca().key_sealed()).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
    let ca = rcgen::CertificateParams::from_ca_cert_pem(state.ca().cert_pem())
        .unwrap()
        .self_signed(&ca_key)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut names = vec![format!("{}{agent}", crate::ca::AGENT_URN)];
    names.extend(org.map(|org| format!("{}{org}", crate::ca::ORG_URN)));
    params.subject_alt_names = names
        .into_iter()
        .map(|uri| rcgen::SanType::URI(uri.try_into().unwrap()))
        .collect();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = time::OffsetDateTime::from_unix_timestamp(validity.0).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(validity.1).unwrap();
    params.signed_by(key, &ca, &ca_key).unwrap().der().clone()
}

fn public_key(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.public_key().raw.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_renews_its_certificate_at_two_thirds_and_keeps_working_with_the_new_one() {
    let env = env(Kind::Sqlite).await;
    let token = env.token(json!({"name": "renewal"})).await;
    let (dir, id) = enrolled(&env, &token, &[]).await;
    let org = dir.read_record().unwrap().organization_id;
    let key = rcgen::KeyPair::from_pem(&dir.read_key_pem().unwrap()).unwrap();
    let key_der = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // The agent's certificate is replaced by one half-way through a 16-second life: it is
    // due for renewal two seconds from now and expires eight seconds from now.
    let now = now_secs();
    let short = agent_certificate(&env.state, &key, &id, Some(&org), (now - 8, now + 8));
    let validity = Validity::of_der(&short).unwrap();
    dir.write_cert_chain(std::slice::from_ref(&short)).unwrap();

    let (cancel, _running) = run_agent(&dir);
    let mut renewed = None;
    for _ in 0..200 {
        let stored = dir.read_cert_chain().unwrap().remove(0);
        if stored != short {
            renewed = Some((stored, now_secs()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (renewed, renewed_at) = renewed.expect("the agent never renewed its certificate");
    assert!(
        renewed_at >= validity.renew_at(),
        "renewed at {renewed_at}, before two thirds of the lifetime ({})",
        validity.renew_at()
    );
    assert!(
        renewed_at <= validity.not_after,
        "renewed only after the old certificate expired"
    );
    assert_eq!(
        public_key(&renewed),
        public_key(&short),
        "the key stays on the host"
    );
    let new = Validity::of_der(&renewed).unwrap();
    assert!(
        new.not_after >= now + 6 * 86_400,
        "the server's lifetime (7 days) applies: {new:?}"
    );
    assert_eq!(dir.read_record().unwrap().not_after_unix, new.not_after);
    let expires = rfc3339(new.not_after * 1_000_000);
    assert_eq!(
        env.agent(&id).await["certificate_expires_at"],
        expires.as_str()
    );

    // Once the old certificate has expired it opens nothing...
    while now_secs() <= validity.not_after + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let old = session_with(&env.state, env.port, vec![short.clone()], key_der()).await;
    assert!(old.is_err(), "the expired certificate was accepted");
    // ...yet the agent, made to reconnect, comes back: it uses the renewed one.
    let agent_id = id.parse().unwrap();
    env.state
        .hub()
        .disconnect(agent_id, "the test asks for a reconnect", false);
    let mut back = false;
    for _ in 0..100 {
        if env.state.hub().holds(agent_id) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "the agent did not reconnect with its renewed certificate"
    );
    let metrics = call(&env.state, "GET", "/metrics", None, None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("\ninfrapilot_agents_connected 1\n"), "{text}");
    let ping = env.ping(&id).await;
    assert_eq!(ping.status, StatusCode::OK, "{ping:?}");

    // Renewal must keep the enrolled key: a CSR for another key is refused, even over the
    // agent's own valid mTLS identity, and the stored expiry does not move.
    let ca = CertificateDer::from(env.state.ca().cert_der().to_vec());
    let config = mtls_client_config(ca, vec![renewed], key_der()).unwrap();
    let mut client = AgentServiceClient::new(
        channel(&endpoint_at(env.port), Arc::new(config))
            .await
            .unwrap(),
    );
    let other = rcgen::KeyPair::generate().unwrap();
    let status = client
        .renew_certificate(RenewRequest {
            csr_der: csr(&other),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("the key the agent enrolled with"),
        "{status:?}"
    );
    assert_eq!(
        env.agent(&id).await["certificate_expires_at"],
        expires.as_str()
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_agent_on_one_replica_closes_its_stream_on_another() {
    let database = testing::database(Kind::Postgres).await;
    let a = env_on(testing::app_state_on(&database, Edition::Community).await).await;
    let b_state = testing::app_state_on(&database, Edition::Community).await;
    let token = a.token(json!({"name": "revocation"})).await;
    let (dir, id) = enrolled(&a, &token, &[]).await;
    let (cancel, running) = run_agent(&dir);
    a.wait_status(&id, "online").await;
    let agent_id = id.parse().unwrap();
    assert!(!b_state.hub().holds(agent_id));

    let deleted = call(
        &b_state,
        "DELETE",
        &format!("/api/v1/agents/{id}"),
        Some(&a.admin),
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    // Replica A learns it at the agent's next heartbeat (every 500 ms here) and says a
    // permanent goodbye; the agent stops for good.
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the agent's stream on replica A was not closed")
        .unwrap();
    match stopped {
        Ok(StopReason::Goodbye { reason }) => {
            assert!(reason.contains("disabled or deleted"), "{reason}")
        }
        other => panic!("expected a permanent goodbye, got {other:?}"),
    }
    for _ in 0..50 {
        if !a.state.hub().holds(agent_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!a.state.hub().holds(agent_id), "replica A still holds it");
    cancel.cancel();
}
