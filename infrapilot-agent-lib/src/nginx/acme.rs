//! Let's Encrypt certificates obtained by the agent itself (ACME, RFC 8555, with instant-acme).
//!
//! The agent holds the account and the certificates in its state directory, so a renewal
//! that falls due while the control plane is away still happens: `<state>/acme/account.json`
//! (the account key, 0600, for one directory URL) and `<state>/acme/certs/<id>/` with
//! `fullchain.pem`, `privkey.pem` (0600) and `record.json` (what the core's
//! [`infrapilot_core::acme`] rules decide from: expiry, failures, next attempt, last error).
//!
//! A certificate no host of the applied state wants any more is removed with its key and
//! record ([`AcmeManager::remove_unwanted`], after the apply succeeded); the account stays.
//!
//! Challenges are answered by a [`ChallengeSolver`]: [`Http01Webroot`] writes HTTP-01 tokens
//! into nginx's ACME webroot, which every host and the default server serve on port 80. A
//! DNS-01 solver is another implementation of the same trait.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use infrapilot_core::acme::{AcmeSettings, CertificateRecord, ManagedCertificate};
use infrapilot_core::desired::CertificateFiles;
use infrapilot_core::ids::CertificateId;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use super::{NginxError, write_atomic, write_atomic_mode};

/// What a challenge asks to be published.
#[derive(Debug, Clone)]
pub struct ChallengeResponse {
    /// The name being validated.
    pub identifier: String,
    /// The challenge's token (HTTP-01: the file name).
    pub token: String,
    /// The key authorization (HTTP-01: the file's contents).
    pub key_authorization: String,
    /// The DNS-01 TXT record value (base64url of the key authorization's SHA-256).
    pub dns_value: String,
}

/// A boxed future, as the solver trait returns them (object safe).
pub type SolverFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Publishes challenge responses where the ACME server looks for them: the seam for HTTP-01
/// (a webroot) and DNS-01 (a DNS provider's API).
pub trait ChallengeSolver: Send + Sync + std::fmt::Debug {
    /// The ACME challenge type this solver answers (`http-01`, `dns-01`).
    fn kind(&self) -> SolverKind;
    /// Makes `response` visible to the ACME server.
    fn present<'a>(
        &'a self,
        response: &'a ChallengeResponse,
    ) -> SolverFuture<'a, Result<(), String>>;
    /// Removes what [`present`](Self::present) published.
    fn cleanup<'a>(&'a self, response: &'a ChallengeResponse) -> SolverFuture<'a, ()>;
}

/// The challenge types a solver can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverKind {
    /// A file served over plain HTTP on port 80.
    Http01,
    /// A TXT record at `_acme-challenge.<name>`.
    Dns01,
}

/// HTTP-01 through nginx's ACME webroot: the token is written to
/// `<webroot>/.well-known/acme-challenge/<token>`.
#[derive(Debug, Clone)]
pub struct Http01Webroot {
    webroot: PathBuf,
}

impl Http01Webroot {
    /// Answers into `webroot` (the layout's `acme_webroot`).
    pub fn new(webroot: impl Into<PathBuf>) -> Self {
        Self {
            webroot: webroot.into(),
        }
    }

    /// The file a token is served from; `None` for a token that is not base64url (a server
    /// cannot make the agent write outside the webroot).
    fn path(&self, token: &str) -> Option<PathBuf> {
        let valid = !token.is_empty()
            && token.len() <= 256
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| self.webroot.join(".well-known/acme-challenge").join(token))
    }
}

impl ChallengeSolver for Http01Webroot {
    fn kind(&self) -> SolverKind {
        SolverKind::Http01
    }

    fn present<'a>(
        &'a self,
        response: &'a ChallengeResponse,
    ) -> SolverFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let path = self.path(&response.token).ok_or_else(|| {
                format!(
                    "the ACME server sent a token that is not base64url: {:?}",
                    response.token
                )
            })?;
            write_atomic(&path, response.key_authorization.as_bytes())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn cleanup<'a>(&'a self, response: &'a ChallengeResponse) -> SolverFuture<'a, ()> {
        Box::pin(async move {
            if let Some(path) = self.path(&response.token) {
                let _ = tokio::fs::remove_file(path).await;
            }
        })
    }
}

/// The agent's ACME client and certificate store.
#[derive(Debug)]
pub struct AcmeManager {
    dir: PathBuf,
    ca_root: Option<PathBuf>,
    solver: Box<dyn ChallengeSolver>,
    /// How long one order may take to become ready and then be issued.
    order_timeout: Duration,
}

/// The persisted account: its credentials for one directory URL.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

impl AcmeManager {
    /// A manager keeping its files in `dir` (the state directory's `acme/`), answering
    /// challenges with `solver`, trusting the ACME server's TLS certificate by the system's
    /// roots, or by the PEM file `ca_root` alone (a private ACME server, Pebble in tests).
    pub fn new(
        dir: impl Into<PathBuf>,
        solver: Box<dyn ChallengeSolver>,
        ca_root: Option<PathBuf>,
    ) -> Self {
        Self {
            dir: dir.into(),
            ca_root,
            solver,
            order_timeout: Duration::from_secs(90),
        }
    }

    fn cert_dir(&self, id: CertificateId) -> PathBuf {
        self.dir.join("certs").join(id.to_string())
    }

    /// Removes every certificate (key, chain and record) under `certs/` that `wanted` does
    /// not name: the hosts that wanted it are gone or use another certificate. The account
    /// stays, and so does anything in `certs/` not named by a certificate id. Problems are
    /// logged; the next apply tries again.
    pub async fn remove_unwanted(&self, wanted: &BTreeSet<CertificateId>) {
        let certs = self.dir.join("certs");
        let wanted = wanted.clone();
        let tidied = tokio::task::spawn_blocking(move || {
            super::secrets::remove_certificate_dirs(&certs, &wanted)
        })
        .await;
        match tidied {
            Ok(tidied) => {
                if !tidied.removed.is_empty() {
                    tracing::info!(removed = ?tidied.removed, "removed the Let's Encrypt certificates no host wants");
                }
                for problem in &tidied.problems {
                    tracing::warn!(error = %problem, "removing Let's Encrypt certificates no host wants");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "removing Let's Encrypt certificates no host wants")
            }
        }
    }

    /// What the agent knows of a certificate; `None` before any attempt.
    pub async fn record(&self, id: CertificateId) -> Option<CertificateRecord> {
        let bytes = tokio::fs::read(self.cert_dir(id).join("record.json"))
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn save_record(
        &self,
        id: CertificateId,
        record: &CertificateRecord,
    ) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
        write_atomic(&self.cert_dir(id).join("record.json"), &json)
            .await
            .map_err(|e| e.to_string())
    }

    /// The stored certificate's files, if `record` (its [`record`](Self::record)) says one
    /// is stored and not expired at `now`.
    pub async fn files(
        &self,
        id: CertificateId,
        record: &CertificateRecord,
        now: i64,
    ) -> Option<CertificateFiles> {
        if !record.has_certificate(now) {
            return None;
        }
        let dir = self.cert_dir(id);
        let fullchain = tokio::fs::read_to_string(dir.join("fullchain.pem"))
            .await
            .ok()?;
        let privkey = tokio::fs::read_to_string(dir.join("privkey.pem"))
            .await
            .ok()?;
        Some(CertificateFiles {
            id,
            fullchain,
            privkey,
        })
    }

    /// Stores a certificate obtained elsewhere (an imported one, or a test's) as if issued.
    pub async fn store(
        &self,
        id: CertificateId,
        domains: Vec<String>,
        fullchain: &str,
        privkey: &str,
    ) -> Result<CertificateRecord, String> {
        let (not_after, issuer) = leaf_facts(fullchain)?;
        let dir = self.cert_dir(id);
        write_atomic_mode(&dir.join("privkey.pem"), privkey.as_bytes(), 0o600)
            .await
            .map_err(|e| e.to_string())?;
        write_atomic(&dir.join("fullchain.pem"), fullchain.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let record = CertificateRecord::issued(domains, not_after, issuer);
        self.save_record(id, &record).await?;
        Ok(record)
    }

    /// Orders a certificate for `wanted` now. The outcome is recorded either way: the new
    /// certificate and its facts, or the failure (verbatim) with the next attempt backed off;
    /// the record is returned, and a certificate stored before keeps being served on failure.
    pub async fn obtain(
        &self,
        settings: &AcmeSettings,
        wanted: &ManagedCertificate,
        now: i64,
    ) -> CertificateRecord {
        let previous = self.record(wanted.id).await.unwrap_or_default();
        match self.order(settings, &wanted.domains).await {
            Ok((fullchain, privkey)) => {
                match self
                    .store(wanted.id, wanted.domains.clone(), &fullchain, &privkey)
                    .await
                {
                    Ok(record) => {
                        tracing::info!(certificate = %wanted.id, domains = ?wanted.domains, not_after = record.not_after, "certificate issued");
                        record
                    }
                    Err(e) => self.fail(wanted.id, previous, now, e).await,
                }
            }
            Err(e) => self.fail(wanted.id, previous, now, e).await,
        }
    }

    async fn fail(
        &self,
        id: CertificateId,
        previous: CertificateRecord,
        now: i64,
        error: String,
    ) -> CertificateRecord {
        tracing::warn!(certificate = %id, %error, "obtaining a certificate failed");
        let record = previous.failed(now, error);
        if let Err(e) = self.save_record(id, &record).await {
            tracing::warn!(certificate = %id, error = %e, "recording the failure failed");
        }
        record
    }

    /// The account for the directory, created (and persisted) the first time.
    async fn account(&self, settings: &AcmeSettings) -> Result<Account, String> {
        let file = self.dir.join("account.json");
        let builder = || match &self.ca_root {
            Some(root) => Account::builder_with_root(root)
                .map_err(|e| format!("the ACME CA root {}: {e}", root.display())),
            None => Account::builder().map_err(|e| e.to_string()),
        };
        if let Ok(bytes) = tokio::fs::read(&file).await
            && let Ok(stored) = serde_json::from_slice::<StoredAccount>(&bytes)
            && stored.directory_url == settings.directory_url
        {
            return builder()?
                .from_credentials(stored.credentials)
                .await
                .map_err(|e| format!("restoring the ACME account: {e}"));
        }
        let contact = settings
            .contact_email
            .as_ref()
            .map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory_url.clone(),
                None,
            )
            .await
            .map_err(|e| {
                format!(
                    "creating the ACME account at {}: {e}",
                    settings.directory_url
                )
            })?;
        let stored = StoredAccount {
            directory_url: settings.directory_url.clone(),
            credentials,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        write_atomic_mode(&file, &json, 0o600)
            .await
            .map_err(|e: NginxError| e.to_string())?;
        Ok(account)
    }

    /// One order: authorizations answered by the solver, a CSR for a fresh P-256 key, the
    /// chain downloaded. Returns (fullchain PEM, private key PEM).
    async fn order(
        &self,
        settings: &AcmeSettings,
        domains: &[String],
    ) -> Result<(String, String), String> {
        let account = self.account(settings).await?;
        let identifiers: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let challenge_type = match self.solver.kind() {
            SolverKind::Http01 => ChallengeType::Http01,
            SolverKind::Dns01 => ChallengeType::Dns01,
        };
        let mut published = Vec::new();
        let outcome = async {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(format!("authorization is {other:?}")),
                }
                let name = authz.identifier().to_string();
                let mut challenge = authz.challenge(challenge_type.clone()).ok_or_else(|| {
                    format!("the ACME server offers no {challenge_type:?} challenge for {name}")
                })?;
                let key_authorization = challenge.key_authorization();
                let response = ChallengeResponse {
                    identifier: name.clone(),
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                    dns_value: key_authorization.dns_value(),
                };
                self.solver.present(&response).await?;
                published.push(response);
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
            }
            let retries = RetryPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .timeout(self.order_timeout);
            let status = order
                .poll_ready(&retries)
                .await
                .map_err(|e| format!("waiting for validation: {e}"))?;
            if status != OrderStatus::Ready {
                return Err(self.why_invalid(&mut order).await);
            }
            Ok::<_, String>(())
        }
        .await;
        for response in &published {
            self.solver.cleanup(response).await;
        }
        outcome?;

        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(domains.to_vec()).map_err(|e| e.to_string())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("finalizing the order: {e}"))?;
        let retries = RetryPolicy::new().timeout(self.order_timeout);
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("downloading the certificate: {e}"))?;
        Ok((chain, key.serialize_pem()))
    }

    /// The ACME server's own words for each failed challenge of an invalid order.
    async fn why_invalid(&self, order: &mut instant_acme::Order) -> String {
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            let name = authz.identifier().to_string();
            for challenge in &authz.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(format!("{name}: {problem}"));
                }
            }
        }
        if reasons.is_empty() {
            "the order became invalid".to_owned()
        } else {
            format!("validation failed: {}", reasons.join("; "))
        }
    }
}

/// The leaf's expiry (Unix seconds) and issuer, read from a PEM chain.
fn leaf_facts(fullchain: &str) -> Result<(i64, String), String> {
    let pem = x509_parser::pem::parse_x509_pem(fullchain.as_bytes())
        .map_err(|e| format!("the certificate chain is not PEM: {e}"))?
        .1;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    Ok((
        cert.validity().not_after.timestamp(),
        cert.issuer().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_tokens_cannot_leave_the_webroot() {
        let solver = Http01Webroot::new("/srv/acme");
        assert_eq!(
            solver.path("abc-DEF_123"),
            Some(PathBuf::from(
                "/srv/acme/.well-known/acme-challenge/abc-DEF_123"
            ))
        );
        for bad in ["", "../etc/passwd", "a/b", "a.b", "a b", &"x".repeat(257)] {
            assert_eq!(solver.path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn leaf_facts_read_the_first_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example.com".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test Issuer");
        let cert = params.self_signed(&key).unwrap();
        let (not_after, issuer) = leaf_facts(&cert.pem()).unwrap();
        assert_eq!(not_after, 1_925_078_400);
        assert!(issuer.contains("Test Issuer"), "{issuer}");
        assert!(leaf_facts("not pem").is_err());
    }
}
