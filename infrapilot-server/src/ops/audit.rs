//! Audit entries written inside the transaction of the change they record, so a change and
//! its entry commit together or not at all.

use crate::app::AppState;
use crate::error::AppError;

/// Appends an audit entry for a successful action inside `tx`.
pub async fn audit(
    state: &AppState,
    tx: &mut crate::store::OrgTx,
    source_ip: Option<std::net::IpAddr>,
    action: &'static str,
    resource_kind: &'static str,
    resource_id: impl ToString,
    details: serde_json::Value,
) -> Result<(), AppError> {
    audit_outcome(
        state,
        tx,
        source_ip,
        action,
        (resource_kind, resource_id.to_string()),
        infrapilot_core::audit::Outcome::Success,
        details,
    )
    .await
}

/// Records an account-level event (sign-in, password, MFA) in every organization the account
/// belongs to, inside the global transaction `g`, which this commits.
pub async fn commit_with_account_audit(
    state: &AppState,
    mut g: crate::store::GlobalTx,
    user: infrapilot_core::ids::UserId,
    source_ip: Option<std::net::IpAddr>,
    action: &'static str,
    outcome: infrapilot_core::audit::Outcome,
    details: serde_json::Value,
) -> Result<(), AppError> {
    use infrapilot_core::rbac::Effective;

    use crate::store::{Actor, OrgScope};

    g.act_as_user(user).await?;
    let orgs = g.memberships_of(user).await?;
    let Some((first, role)) = orgs.first() else {
        return Ok(g.commit().await?);
    };
    let scope = |org: infrapilot_core::ids::OrgId, role| {
        OrgScope::new(org, Actor::User(user), Effective::Org(role))
    };
    let mut tx = g.into_org(&scope(first.id, *role)).await?;
    for (n, (org, role)) in orgs.iter().enumerate() {
        if n > 0 {
            tx = tx.switch_org(&scope(org.id, *role)).await?;
        }
        audit_outcome(
            state,
            &mut tx,
            source_ip,
            action,
            ("user", user.to_string()),
            outcome,
            details.clone(),
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

/// Appends an audit entry with an explicit outcome inside `tx`.
pub async fn audit_outcome(
    state: &AppState,
    tx: &mut crate::store::OrgTx,
    source_ip: Option<std::net::IpAddr>,
    action: &'static str,
    resource: (&'static str, String),
    outcome: infrapilot_core::audit::Outcome,
    details: serde_json::Value,
) -> Result<(), AppError> {
    tx.audit(
        state.keys().audit_signing(),
        crate::util::now_micros(),
        crate::store::AuditRecord {
            action,
            resource_kind: resource.0,
            resource_id: resource.1,
            outcome,
            source_ip,
            details,
        },
    )
    .await?;
    Ok(())
}
