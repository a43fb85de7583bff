//! Agent enrollment tokens, stored per organization. The secret is kept only as its SHA-256
//! hash; the record's other fields are the core [`TokenRecord`]'s parts.

use std::num::NonZeroU32;

use infrapilot_core::enrollment::{SecretHash, TokenPublicId, TokenRecord, TokenRecordParts};
use infrapilot_core::ids::UserId;
use infrapilot_core::values::Labels;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::global::GlobalTx;
use super::org::{OrgTx, cursor_or_start};
use super::{StoreError, col, conflict_as, json, parsed, to_json};

/// An enrollment token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnrollmentToken {
    /// A name to recognise it by.
    pub name: String,
    /// The token's record (public id, secret hash, labels, limits, uses).
    pub record: TokenRecord,
    /// Who created it.
    pub created_by: Option<UserId>,
}

/// The JSON kept in the `record` column.
#[derive(Debug, Serialize, Deserialize)]
struct RecordColumn {
    secret_hash: String,
    labels: Labels,
    expires_at: Option<i64>,
    max_uses: Option<NonZeroU32>,
    uses: u32,
    revoked: bool,
}

fn encode(record: &TokenRecord) -> Result<String, StoreError> {
    to_json(&RecordColumn {
        secret_hash: hex::encode(record.secret_hash().as_bytes()),
        labels: record.labels().clone(),
        expires_at: record.expires_at(),
        max_uses: record.max_uses(),
        uses: record.uses(),
        revoked: record.is_revoked(),
    })
}

fn from_row(
    row: &AnyRow,
    org: infrapilot_core::ids::OrgId,
) -> Result<StoredEnrollmentToken, StoreError> {
    let column: RecordColumn = json(row, "record")?;
    let hash: [u8; 32] = hex::decode(&column.secret_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::corrupt("secret_hash", "not 32 hex bytes"))?;
    let created_by: Option<String> = col(row, "created_by")?;
    let record = TokenRecord::from_parts(TokenRecordParts {
        org,
        public_id: parsed::<TokenPublicId>(row, "id")?,
        secret_hash: SecretHash::from_bytes(hash),
        labels: column.labels,
        expires_at: column.expires_at,
        max_uses: column.max_uses,
        uses: column.uses,
        revoked: column.revoked,
        created_at: col(row, "created_at")?,
    })
    .map_err(|e| StoreError::corrupt("enrollment token", e))?;
    Ok(StoredEnrollmentToken {
        name: col(row, "name")?,
        record,
        created_by: created_by
            .map(|s| s.parse().map_err(|e| StoreError::corrupt("created_by", e)))
            .transpose()?,
    })
}

impl OrgTx {
    /// Stores a new enrollment token.
    pub async fn insert_enrollment_token(
        &mut self,
        token: &StoredEnrollmentToken,
    ) -> Result<(), StoreError> {
        let id = token.record.public_id().to_string();
        self.index_token("enrollment_token", &id).await?;
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, org_id, name, record, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(self.org().to_string())
        .bind(&token.name)
        .bind(encode(&token.record)?)
        .bind(token.created_by.map(|u| u.to_string()))
        .bind(token.record.created_at())
        .execute(self.conn())
        .await
        .map_err(conflict_as("enrollment token"))?;
        Ok(())
    }

    /// One enrollment token.
    pub async fn enrollment_token(
        &mut self,
        id: TokenPublicId,
    ) -> Result<StoredEnrollmentToken, StoreError> {
        let org = self.org();
        let row = sqlx::query(
            "SELECT id, name, record, created_by, created_at FROM enrollment_tokens \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound {
            what: "enrollment token",
        })?;
        from_row(&row, org)
    }

    /// One enrollment token, locked for the rest of the transaction (PostgreSQL `FOR UPDATE`;
    /// SQLite's write transaction already excludes other writers), so concurrent redemptions
    /// of one token run one after another.
    pub async fn lock_enrollment_token(
        &mut self,
        id: TokenPublicId,
    ) -> Result<StoredEnrollmentToken, StoreError> {
        let org = self.org();
        let lock = match self.backend() {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT id, name, record, created_by, created_at FROM enrollment_tokens \
             WHERE org_id = $1 AND id = $2{lock}"
        ))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound {
            what: "enrollment token",
        })?;
        from_row(&row, org)
    }

    /// Enrollment tokens, oldest first.
    pub async fn list_enrollment_tokens(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<StoredEnrollmentToken>, StoreError> {
        let org = self.org();
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(
            "SELECT id, name, record, created_by, created_at FROM enrollment_tokens \
             WHERE org_id = $1 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4",
        )
        .bind(org.to_string())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| from_row(r, org)).collect()
    }

    /// Writes back a token's record (revocation, a redemption's new use count).
    pub async fn update_enrollment_token(
        &mut self,
        record: &TokenRecord,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE enrollment_tokens SET record = $3 WHERE org_id = $1 AND id = $2")
                .bind(self.org().to_string())
                .bind(record.public_id().to_string())
                .bind(encode(record)?)
                .execute(self.conn())
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "enrollment token",
            });
        }
        Ok(())
    }

    /// Deletes a token.
    pub async fn delete_enrollment_token(&mut self, id: TokenPublicId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM enrollment_tokens WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "enrollment token",
            });
        }
        self.unindex_token(&id.to_string()).await
    }
}

impl GlobalTx {
    /// The instance CA: its certificate (PEM) and sealed private key, if created.
    pub async fn instance_ca(&mut self) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT cert_pem, key_sealed FROM instance_ca WHERE id = 1")
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref()
            .map(|r| Ok((col(r, "cert_pem")?, col(r, "key_sealed")?)))
            .transpose()
    }

    /// Stores the instance CA unless a replica stored one first.
    pub async fn put_instance_ca(
        &mut self,
        cert_pem: &str,
        key_sealed: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instance_ca (id, cert_pem, key_sealed, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(cert_pem)
        .bind(key_sealed)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
