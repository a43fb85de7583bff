//! Let's Encrypt (ACME) certificates as data: which certificates a site needs, when each is
//! due, and how long to wait after a failure.
//!
//! The agent obtains the certificates (it serves the HTTP-01 challenges and must renew while
//! the control plane is away); these rules decide *when*, from the agent's own records and a
//! clock passed in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::CertificateId;
use crate::nginx::{Site, SslMode};

/// Renew this long before a certificate expires (Let's Encrypt's own advice: 30 days).
pub const RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;

/// The first wait after a failed attempt; each further failure doubles it.
pub const FIRST_RETRY_SECS: i64 = 60;

/// The longest wait between attempts (Let's Encrypt allows five failed validations per
/// hostname per hour; this stays far below).
pub const MAX_RETRY_SECS: i64 = 6 * 3600;

/// Which ACME server the agent's certificates come from, and who it contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeSettings {
    /// The ACME directory URL (Let's Encrypt's production directory unless configured).
    pub directory_url: String,
    /// The account's contact address, if any (`mailto:` is added by the agent).
    pub contact_email: Option<String>,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A certificate the agent obtains for some of its hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedCertificate {
    /// The id the hosts name (`ssl.certificate`).
    pub id: CertificateId,
    /// Every name the hosts using it serve, sorted and without duplicates.
    pub domains: Vec<String>,
}

/// The Let's Encrypt certificates `site` needs: one per certificate id that a
/// `lets_encrypt` host names, covering every domain of every such host.
pub fn managed_certificates(site: &Site) -> Vec<ManagedCertificate> {
    let mut wanted: BTreeMap<CertificateId, Vec<String>> = BTreeMap::new();
    let proxies = site
        .proxy_hosts
        .iter()
        .map(|h| (&h.ssl, h.domains.as_slice()));
    let redirections = site
        .redirection_hosts
        .iter()
        .map(|h| (&h.ssl, h.domains.as_slice()));
    for (ssl, domains) in proxies.chain(redirections) {
        if let SslMode::LetsEncrypt(tls) = ssl {
            let names = wanted.entry(tls.certificate).or_default();
            names.extend(domains.iter().map(ToString::to_string));
        }
    }
    wanted
        .into_iter()
        .map(|(id, mut domains)| {
            domains.sort();
            domains.dedup();
            ManagedCertificate { id, domains }
        })
        .collect()
}

/// What the agent knows of one managed certificate (persisted beside its files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// The names the stored certificate covers (empty: none stored yet).
    pub domains: Vec<String>,
    /// When the stored certificate expires (Unix seconds; 0: none stored).
    pub not_after: i64,
    /// Who issued it (the issuer's distinguished name).
    pub issuer: String,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Not before this time (Unix seconds) is the next attempt made.
    pub next_attempt: i64,
    /// The last failure, verbatim from the ACME server or the agent.
    pub last_error: Option<String>,
}

/// What to do about one certificate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Order one: none is stored, or the stored one does not cover the names.
    Issue,
    /// Order a new one: the stored one expires within the renewal window.
    Renew,
    /// Nothing until this time (Unix seconds): renewal or the retry after a failure.
    Wait(i64),
}

/// Decides what to do about `wanted` given its record, at `now`.
///
/// A failure postpones any attempt until `next_attempt`; otherwise a missing or mismatched
/// certificate is issued, and one within [`RENEW_BEFORE_SECS`] of expiry renewed.
pub fn due(wanted: &ManagedCertificate, record: Option<&CertificateRecord>, now: i64) -> Due {
    let Some(record) = record else {
        return Due::Issue;
    };
    if record.failures > 0 && now < record.next_attempt {
        return Due::Wait(record.next_attempt);
    }
    if record.not_after == 0 || record.domains != wanted.domains {
        return Due::Issue;
    }
    let renew_at = record.not_after.saturating_sub(RENEW_BEFORE_SECS);
    if now >= renew_at {
        Due::Renew
    } else {
        Due::Wait(renew_at)
    }
}

/// The wait after the `failures`-th failure in a row: one minute, doubling, at most six hours.
pub fn retry_delay_secs(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST_RETRY_SECS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_SECS)
}

impl CertificateRecord {
    /// The record after a failed attempt at `now` with `error`.
    pub fn failed(mut self, now: i64, error: String) -> Self {
        self.failures = self.failures.saturating_add(1);
        self.next_attempt = now.saturating_add(retry_delay_secs(self.failures));
        self.last_error = Some(error);
        self
    }

    /// The record of a newly stored certificate.
    pub fn issued(domains: Vec<String>, not_after: i64, issuer: String) -> Self {
        Self {
            domains,
            not_after,
            issuer,
            failures: 0,
            next_attempt: 0,
            last_error: None,
        }
    }

    /// Whether a usable certificate is stored (it may still be within its renewal window).
    pub fn has_certificate(&self, now: i64) -> bool {
        self.not_after > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wanted(domains: &[&str]) -> ManagedCertificate {
        ManagedCertificate {
            id: CertificateId::from_uuid(uuid::Uuid::nil()),
            domains: domains.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_site_needs_one_certificate_per_id_with_every_name_of_its_hosts() {
        let site: Site = serde_json::from_value(serde_json::json!({
            "proxy_hosts": [
                {"id": "00000000-0000-0000-0000-000000000001", "domains": ["b.example.com", "a.example.com"],
                 "upstream": "http://127.0.0.1:8080",
                 "ssl": {"mode": "lets_encrypt", "certificate": "00000000-0000-0000-0000-0000000000c1",
                         "force_https": true, "http2": false, "hsts": null}},
                {"id": "00000000-0000-0000-0000-000000000002", "domains": ["a.example.com", "c.example.com"],
                 "upstream": "http://127.0.0.1:8080",
                 "ssl": {"mode": "lets_encrypt", "certificate": "00000000-0000-0000-0000-0000000000c1",
                         "force_https": false, "http2": false, "hsts": null}},
                {"id": "00000000-0000-0000-0000-000000000003", "domains": ["up.example.com"],
                 "upstream": "http://127.0.0.1:8080",
                 "ssl": {"mode": "custom", "certificate": "00000000-0000-0000-0000-0000000000c2",
                         "force_https": false, "http2": false, "hsts": null}}
            ]
        }))
        .unwrap();
        let managed = managed_certificates(&site);
        assert_eq!(managed.len(), 1);
        assert_eq!(
            managed[0].domains,
            ["a.example.com", "b.example.com", "c.example.com"]
        );
        assert_eq!(
            managed[0].id.to_string(),
            "00000000-0000-0000-0000-0000000000c1"
        );
    }

    #[test]
    fn none_stored_or_other_names_means_issue() {
        let w = wanted(&["a.example.com"]);
        assert_eq!(due(&w, None, 1000), Due::Issue);
        let other = CertificateRecord::issued(vec!["b.example.com".into()], 10_000_000, "x".into());
        assert_eq!(due(&w, Some(&other), 1000), Due::Issue);
    }

    #[test]
    fn renewal_falls_due_thirty_days_before_expiry() {
        let w = wanted(&["a.example.com"]);
        let not_after = 100 * 24 * 3600;
        let record = CertificateRecord::issued(w.domains.clone(), not_after, "x".into());
        let renew_at = not_after - RENEW_BEFORE_SECS;
        assert_eq!(due(&w, Some(&record), renew_at - 1), Due::Wait(renew_at));
        assert_eq!(due(&w, Some(&record), renew_at), Due::Renew);
        assert_eq!(due(&w, Some(&record), not_after + 5), Due::Renew);
    }

    #[test]
    fn a_failure_waits_then_retries() {
        let w = wanted(&["a.example.com"]);
        let record = CertificateRecord::default().failed(1000, "rate limited".into());
        assert_eq!(record.next_attempt, 1000 + FIRST_RETRY_SECS);
        assert_eq!(due(&w, Some(&record), 1001), Due::Wait(1060));
        assert_eq!(due(&w, Some(&record), 1060), Due::Issue);
        let again = record.failed(1060, "again".into());
        assert_eq!(again.next_attempt, 1060 + 2 * FIRST_RETRY_SECS);
        assert_eq!(again.last_error.as_deref(), Some("again"));
    }

    proptest! {
        #[test]
        fn retry_delays_grow_and_stay_capped(failures in 1u32..10_000) {
            let d = retry_delay_secs(failures);
            prop_assert!((FIRST_RETRY_SECS..=MAX_RETRY_SECS).contains(&d));
            prop_assert!(retry_delay_secs(failures + 1) >= d);
        }

        #[test]
        fn a_certificate_outside_the_window_is_never_renewed(
            not_after in 0i64..4_000_000_000, now in 0i64..4_000_000_000,
        ) {
            let w = wanted(&["a.example.com"]);
            let record = CertificateRecord::issued(w.domains.clone(), not_after.max(1), "x".into());
            match due(&w, Some(&record), now) {
                Due::Renew => prop_assert!(now >= not_after.max(1) - RENEW_BEFORE_SECS),
                Due::Wait(at) => {
                    prop_assert!(now < at);
                    prop_assert_eq!(at, not_after.max(1) - RENEW_BEFORE_SECS);
                }
                Due::Issue => prop_assert!(false, "a matching certificate is never re-issued"),
            }
        }
    }
}
