//! TLS certificates per organization.

use infrapilot_core::ids::CertificateId;
use sqlx::any::AnyRow;

use super::org::{OrgTx, cursor_or_start};
use super::{StoreError, col, conflict_as, json, parsed, to_json};

/// A certificate as stored.
#[derive(Clone, PartialEq)]
pub struct CertificateRecord {
    /// Its id.
    pub id: CertificateId,
    /// A name for people.
    pub name: String,
    /// `custom` (uploaded).
    pub source: String,
    /// The DNS names the leaf certifies (its subject alternative names).
    pub domains: Vec<String>,
    /// The leaf's issuer.
    pub issuer: String,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// The certificate and its chain, PEM.
    pub fullchain: String,
    /// The private key, sealed.
    pub key_sealed: String,
    /// Who added it (audit name).
    pub created_by: Option<String>,
    /// When, unix microseconds.
    pub created_at: i64,
}

impl std::fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("domains", &self.domains)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, name, source, domains, issuer, not_before, not_after, fullchain, \
    key_sealed, created_by, created_at";

fn from_row(row: &AnyRow) -> Result<CertificateRecord, StoreError> {
    Ok(CertificateRecord {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        source: col(row, "source")?,
        domains: json(row, "domains")?,
        issuer: col(row, "issuer")?,
        not_before: col(row, "not_before")?,
        not_after: col(row, "not_after")?,
        fullchain: col(row, "fullchain")?,
        key_sealed: col(row, "key_sealed")?,
        created_by: col(row, "created_by")?,
        created_at: col(row, "created_at")?,
    })
}

impl OrgTx {
    /// Stores a certificate; a name already used in the organization conflicts.
    pub async fn insert_certificate(&mut self, c: &CertificateRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO certificates (org_id, {COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(self.org().to_string())
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(&c.source)
        .bind(to_json(&c.domains)?)
        .bind(&c.issuer)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(&c.fullchain)
        .bind(&c.key_sealed)
        .bind(c.created_by.as_deref())
        .bind(c.created_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("a certificate with this name"))?;
        Ok(())
    }

    /// One certificate.
    pub async fn certificate(
        &mut self,
        id: CertificateId,
    ) -> Result<CertificateRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM certificates WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound {
            what: "certificate",
        })?;
        from_row(&row)
    }

    /// Certificates, oldest first, after a cursor.
    pub async fn list_certificates(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM certificates WHERE org_id = $1 AND (created_at, id) > ($2, $3) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(self.org().to_string())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes a certificate.
    pub async fn delete_certificate(&mut self, id: CertificateId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM certificates WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "certificate",
            });
        }
        Ok(())
    }

    /// The hosts (ids) whose document names the certificate.
    pub async fn hosts_using_certificate(
        &mut self,
        id: CertificateId,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM proxy_hosts WHERE org_id = $1 AND document LIKE $2 ORDER BY id",
        )
        .bind(self.org().to_string())
        .bind(format!("%\"certificate\":\"{id}\"%"))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| col(r, "id")).collect()
    }
}
