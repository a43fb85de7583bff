//! TLS certificates: upload (validated: the key matches, the chain parses, the leaf is valid
//! now), list with TLS health (days until expiry, issuer, a score), delete. The private key is
//! sealed at rest and never returned; proxy hosts refer to a certificate by id, and the
//! server sends its files to the agents whose hosts use it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::ids::CertificateId;
use infrapilot_core::rbac::{Action, Resource};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Page, PageQuery, audit, display_name};
use crate::AppState;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::CertificateRecord;
use crate::util::{new_id, now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_certificates, upload_certificate))
        .routes(routes!(get_certificate, delete_certificate))
}

/// An uploaded certificate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// A name for people (1–100 characters, unique in the organization).
    pub name: String,
    /// The certificate followed by its chain, PEM.
    pub certificate: String,
    /// The private key, PEM (PKCS#8: `BEGIN PRIVATE KEY`).
    pub private_key: String,
}

/// A certificate with its TLS health; the key is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// Its id (proxy hosts refer to it).
    pub id: CertificateId,
    /// Its name.
    pub name: String,
    /// `custom` (uploaded).
    pub source: String,
    /// The DNS names it certifies.
    pub domains: Vec<String>,
    /// Its issuer.
    pub issuer: String,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// Whole days until it expires (negative once expired).
    pub days_until_expiry: i64,
    /// `ok` (more than 30 days left), `expiring` (30 or fewer), `expired`.
    pub health: String,
    /// 0–100: 100 with 60 or more days left, falling to 0 at expiry.
    pub score: u8,
    /// Always `set`: the key is stored sealed and never returned.
    pub private_key: String,
    /// The hosts that use it.
    pub used_by: Vec<String>,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// TLS health of a certificate expiring at `not_after` (Unix seconds): whole days left,
/// `ok` / `expiring` (30 days or fewer) / `expired`, and a score from 100 (60 days or more)
/// down to 0 at expiry.
pub(crate) fn tls_health(not_after: i64, now_secs: i64) -> (i64, &'static str, u8) {
    let days = (not_after - now_secs).div_euclid(86_400);
    let health = if not_after <= now_secs {
        "expired"
    } else if days <= 30 {
        "expiring"
    } else {
        "ok"
    };
    let score = u8::try_from((days.clamp(0, 60) * 100) / 60).unwrap_or(0);
    (days, health, score)
}

fn view(c: CertificateRecord, used_by: Vec<String>, now_secs: i64) -> CertificateView {
    let (days, health, score) = tls_health(c.not_after, now_secs);
    CertificateView {
        id: c.id,
        name: c.name,
        source: c.source,
        domains: c.domains,
        issuer: c.issuer,
        not_before: rfc3339(c.not_before * 1_000_000),
        not_after: rfc3339(c.not_after * 1_000_000),
        days_until_expiry: days,
        health: health.to_owned(),
        score,
        private_key: "set".to_owned(),
        used_by,
        created_at: rfc3339(c.created_at),
    }
}

/// What was read from a valid upload.
struct Parsed {
    domains: Vec<String>,
    issuer: String,
    not_before: i64,
    not_after: i64,
    fullchain: String,
}

/// Checks an upload: every PEM block of the chain is a certificate, the leaf is valid at
/// `now_secs` and names at least one DNS name, and the key is the leaf's. Errors name the
/// field.
fn parse_upload(certificate: &str, key: &str, now_secs: i64) -> Result<Parsed, AppError> {
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(certificate.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| AppError::field("certificate", format!("is not PEM: {e}")))?;
    if blocks.is_empty() {
        return Err(AppError::field(
            "certificate",
            "holds no PEM block (-----BEGIN CERTIFICATE-----)",
        ));
    }
    let mut fullchain = String::new();
    let mut leaf = None;
    for (i, block) in blocks.iter().enumerate() {
        if block.label != "CERTIFICATE" {
            return Err(AppError::field(
                "certificate",
                format!(
                    "block {} is a {:?}, not a CERTIFICATE (put the key in private_key)",
                    i + 1,
                    block.label
                ),
            ));
        }
        let (_, cert) = X509Certificate::from_der(&block.contents).map_err(|e| {
            AppError::field(
                "certificate",
                format!("block {} is not a certificate: {e}", i + 1),
            )
        })?;
        if i == 0 {
            leaf = Some(cert);
        }
        fullchain.push_str(&pem_block("CERTIFICATE", &block.contents));
    }
    let Some(leaf) = leaf else {
        return Err(AppError::field("certificate", "holds no certificate"));
    };
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    if not_after <= now_secs {
        return Err(AppError::field(
            "certificate",
            format!("expired on {}", leaf.validity().not_after),
        ));
    }
    if not_before > now_secs {
        return Err(AppError::field(
            "certificate",
            format!("is not valid before {}", leaf.validity().not_before),
        ));
    }
    let mut domains = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                domains.push(dns.to_ascii_lowercase());
            }
        }
    }
    if domains.is_empty() {
        return Err(AppError::field(
            "certificate",
            "names no DNS name (subject alternative names)",
        ));
    }
    let key_pair = rcgen::KeyPair::from_pem(key.trim()).map_err(|e| {
        AppError::field(
            "private_key",
            format!(
                "is not a PKCS#8 private key ({e}); convert one with `openssl pkcs8 -topk8 -nocrypt`"
            ),
        )
    })?;
    if key_pair.public_key_der() != leaf.public_key().raw {
        return Err(AppError::field(
            "private_key",
            "does not belong to the certificate (their public keys differ)",
        ));
    }
    Ok(Parsed {
        domains,
        issuer: leaf.issuer().to_string(),
        not_before,
        not_after,
        fullchain,
    })
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Whether a certificate for `names` (its DNS names, `*.` wildcards allowed) covers `domain`.
pub fn covers(names: &[String], domain: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    names.iter().any(|n| {
        if let Some(suffix) = n.strip_prefix("*.") {
            domain
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
        } else {
            *n == domain
        }
    })
}

/// Uploads a certificate and its key.
#[utoipa::path(post, path = "/api/v1/certificates", tag = "proxy", security(("bearer" = [])),
    request_body = CertificateUpload, responses(
    (status = 201, body = CertificateView),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json", description = "Not PEM, expired, or the key is not the certificate's"),
))]
pub async fn upload_certificate(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<CertificateUpload>,
) -> Result<(StatusCode, axum::Json<CertificateView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::Certificate)?;
    let name = display_name("name", &input.name)?;
    let now = now_micros();
    let parsed = parse_upload(&input.certificate, &input.private_key, now / 1_000_000)?;
    let record = CertificateRecord {
        id: CertificateId::from_uuid(new_id()),
        name,
        source: "custom".to_owned(),
        domains: parsed.domains,
        issuer: parsed.issuer,
        not_before: parsed.not_before,
        not_after: parsed.not_after,
        fullchain: parsed.fullchain,
        key_sealed: state.keys().seal(input.private_key.trim().as_bytes()),
        created_by: Some(scope.actor().audit_name()),
        created_at: now,
    };
    let mut tx = state.store().org(scope).await?;
    tx.insert_certificate(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "certificate.create",
        "certificate",
        record.id,
        json!({"name": record.name, "domains": record.domains, "not_after": record.not_after}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(view(record, Vec::new(), now / 1_000_000)),
    ))
}

/// Lists the organization's certificates with their TLS health.
#[utoipa::path(get, path = "/api/v1/certificates", tag = "proxy", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<CertificateView>),
))]
pub async fn list_certificates(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<CertificateView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Certificate)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_certificates(page.after()?, limit).await?;
    let mut with_use = Vec::with_capacity(rows.len());
    for r in rows {
        let used = tx.hosts_using_certificate(r.id).await?;
        with_use.push((r, used));
    }
    tx.commit().await?;
    let now = now_micros() / 1_000_000;
    Ok(axum::Json(Page::from_rows(
        with_use,
        limit,
        |(r, _)| (r.created_at, r.id.to_string()),
        |(r, used)| view(r, used, now),
    )))
}

/// One certificate with its TLS health.
#[utoipa::path(get, path = "/api/v1/certificates/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = CertificateId, Path, description = "The certificate's id")), responses(
    (status = 200, body = CertificateView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_certificate(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<CertificateId>,
) -> Result<axum::Json<CertificateView>, AppError> {
    let scope = scoped.require(Action::View, Resource::Certificate)?;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.certificate(id).await?;
    let used = tx.hosts_using_certificate(id).await?;
    tx.commit().await?;
    Ok(axum::Json(view(record, used, now_micros() / 1_000_000)))
}

/// Deletes a certificate no host uses.
#[utoipa::path(delete, path = "/api/v1/certificates/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = CertificateId, Path, description = "The certificate's id")), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "Hosts use it"),
))]
pub async fn delete_certificate(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<CertificateId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Certificate)?;
    let mut tx = state.store().org(scope).await?;
    let record = tx.certificate(id).await?;
    let used = tx.hosts_using_certificate(id).await?;
    if !used.is_empty() {
        return Err(AppError::Conflict(format!(
            "the certificate is used by {} host(s) ({}); change them first",
            used.len(),
            used.join(", ")
        )));
    }
    tx.delete_certificate(id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "certificate.delete",
        "certificate",
        id,
        json!({"name": record.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["*.example.com".to_owned(), "example.org".to_owned()];
        assert!(covers(&names, "a.example.com"));
        assert!(covers(&names, "EXAMPLE.org"));
        assert!(!covers(&names, "example.com"));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "www.example.org"));
    }

    #[test]
    fn uploads_are_checked() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["secure.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let now = now_micros() / 1_000_000;
        let ok = parse_upload(&cert.pem(), &key.serialize_pem(), now).unwrap();
        assert_eq!(ok.domains, ["secure.test"]);
        let field = |r: Result<Parsed, AppError>| match r {
            Err(AppError::Invalid(f)) => (f[0].field.clone(), f[0].reason.clone()),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
        let other = rcgen::KeyPair::generate().unwrap();
        let (f, why) = field(parse_upload(&cert.pem(), &other.serialize_pem(), now));
        assert_eq!(f, "private_key");
        assert!(why.contains("does not belong"), "{why}");
        assert_eq!(
            field(parse_upload("junk", &key.serialize_pem(), now)).0,
            "certificate"
        );
        let mut old = rcgen::CertificateParams::new(vec!["old.test".to_owned()]).unwrap();
        old.not_before = rcgen::date_time_ymd(2000, 1, 1);
        old.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let old = old.self_signed(&key).unwrap();
        let (f, why) = field(parse_upload(&old.pem(), &key.serialize_pem(), now));
        assert_eq!(f, "certificate");
        assert!(why.contains("expired"), "{why}");
        let (f, _) = field(parse_upload(
            &key.serialize_pem(),
            &key.serialize_pem(),
            now,
        ));
        assert_eq!(f, "certificate");
    }
}
