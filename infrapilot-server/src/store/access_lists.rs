//! Access lists shared by proxy hosts.

use infrapilot_core::ids::AccessListId;
use infrapilot_core::nginx::AccessList;
use sqlx::any::AnyRow;

use super::org::OrgTx;
use super::{StoreError, col, conflict_as, json, parsed, to_json};

/// A shared access list as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListRecord {
    /// Its id.
    pub id: AccessListId,
    /// A name to recognise it by, unique in the organization.
    pub name: String,
    /// The rules and users (password hashes only).
    pub list: AccessList,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, document, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<AccessListRecord, StoreError> {
    Ok(AccessListRecord {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        list: json(row, "document")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

impl OrgTx {
    /// Stores a new access list; a name already used conflicts.
    pub async fn insert_access_list(&mut self, r: &AccessListRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_lists (id, org_id, name, document, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.id.to_string())
        .bind(self.org().to_string())
        .bind(r.name.clone())
        .bind(to_json(&r.list)?)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("an access list with this name"))?;
        Ok(())
    }

    /// Writes back a changed access list.
    pub async fn update_access_list(&mut self, r: &AccessListRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE access_lists SET name = $3, document = $4, updated_at = $5 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(r.id.to_string())
        .bind(r.name.clone())
        .bind(to_json(&r.list)?)
        .bind(r.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("an access list with this name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "access list",
            });
        }
        Ok(())
    }

    /// One access list.
    pub async fn access_list(&mut self, id: AccessListId) -> Result<AccessListRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_lists WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound {
            what: "access list",
        })?;
        from_row(&row)
    }

    /// Every access list, by name.
    pub async fn list_access_lists(&mut self) -> Result<Vec<AccessListRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_lists WHERE org_id = $1 ORDER BY name"
        ))
        .bind(self.org().to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes an access list.
    pub async fn delete_access_list(&mut self, id: AccessListId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM access_lists WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "access list",
            });
        }
        Ok(())
    }

    /// The hosts that use an access list: `(host id, agent id)`.
    pub async fn hosts_using_access_list(
        &mut self,
        id: AccessListId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, agent_id FROM proxy_hosts WHERE org_id = $1 AND document LIKE $2 \
             ORDER BY id",
        )
        .bind(self.org().to_string())
        .bind(format!("%\"access_list_id\":\"{id}\"%"))
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((col(r, "id")?, col(r, "agent_id")?)))
            .collect()
    }
}
