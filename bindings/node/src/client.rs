//! `Client`: the SDK's async client, each method returning a Promise.

use std::collections::BTreeMap;

use infrapilot_sdk::client::{self as api, AuditQuery, ListQuery};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use crate::{json, to_napi};

/// Paging for list calls.
#[napi(object)]
pub struct PageOptions {
    /// How many items (1–200).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn page(options: Option<PageOptions>) -> ListQuery {
    options
        .map(|o| ListQuery {
            limit: o.limit,
            cursor: o.cursor,
        })
        .unwrap_or_default()
}

/// A client for one InfraPilot server.
#[napi]
pub struct Client {
    inner: api::Client,
}

#[napi]
impl Client {
    /// A client for `baseUrl`, with an API or access token and an organization id when given.
    #[napi(constructor)]
    pub fn new(
        base_url: String,
        token: Option<String>,
        organization: Option<String>,
    ) -> Result<Self> {
        let inner = api::Client::new(&base_url).map_err(to_napi)?;
        inner.set_token(token);
        inner.set_organization(organization);
        Ok(Self { inner })
    }

    /// Replaces the bearer token (`null` forgets it).
    #[napi]
    pub fn set_token(&self, token: Option<String>) {
        self.inner.set_token(token);
    }

    /// Acts in another organization (`X-Org-Id`), or the token's own with `null`.
    #[napi]
    pub fn set_organization(&self, organization: Option<String>) {
        self.inner.set_organization(organization);
    }

    /// The server's base URL.
    #[napi(getter)]
    pub fn base_url(&self) -> String {
        self.inner.base_url().to_owned()
    }

    /// Whether setup is still needed.
    #[napi]
    pub async fn setup_status(&self) -> Result<Value> {
        json(&self.inner.setup_status().await.map_err(to_napi)?)
    }

    /// Completes first-start setup: `{setup_code, email, name, password, organization_name,
    /// organization_slug?}`.
    #[napi]
    pub async fn setup(&self, request: Value) -> Result<Value> {
        let request: api::SetupRequest = serde_json::from_value(crate::input(request)?)
            .map_err(|e| to_napi(invalid("request", e)))?;
        json(&self.inner.setup(&request).await.map_err(to_napi)?)
    }

    /// Signs in; without MFA the access token is kept for later calls.
    #[napi]
    pub async fn login(
        &self,
        email: String,
        password: String,
        organization_id: Option<String>,
    ) -> Result<Value> {
        let answer = self
            .inner
            .login(&email, &password, organization_id.as_deref())
            .await
            .map_err(to_napi)?;
        json(&answer)
    }

    /// Completes a sign-in with a TOTP or backup code.
    #[napi]
    pub async fn login_mfa(
        &self,
        mfa_token: String,
        code: String,
        organization_id: Option<String>,
    ) -> Result<Value> {
        let answer = self
            .inner
            .login_mfa(&mfa_token, &code, organization_id.as_deref())
            .await
            .map_err(to_napi)?;
        json(&answer)
    }

    /// The signed-in account and its organizations.
    #[napi]
    pub async fn me(&self) -> Result<Value> {
        json(&self.inner.me().await.map_err(to_napi)?)
    }

    /// The organizations the caller may see.
    #[napi]
    pub async fn list_organizations(&self, options: Option<PageOptions>) -> Result<Value> {
        let q = page(options);
        json(&self.inner.list_organizations(&q).await.map_err(to_napi)?)
    }

    /// Creates an organization (SaaS edition).
    #[napi]
    pub async fn create_organization(&self, name: String, slug: Option<String>) -> Result<Value> {
        let request = api::CreateOrg { name, slug };
        json(
            &self
                .inner
                .create_organization(&request)
                .await
                .map_err(to_napi)?,
        )
    }

    /// The organization the client acts in.
    #[napi]
    pub async fn organization(&self) -> Result<Value> {
        json(&self.inner.organization().await.map_err(to_napi)?)
    }

    /// The members of the current organization.
    #[napi]
    pub async fn list_members(&self, options: Option<PageOptions>) -> Result<Value> {
        let q = page(options);
        json(&self.inner.list_members(&q).await.map_err(to_napi)?)
    }

    /// Invites an e-mail address with a role; the answer holds the invitation and its token,
    /// shown once.
    #[napi]
    pub async fn invite_member(&self, email: String, role: String) -> Result<Value> {
        json(
            &self
                .inner
                .invite_member(&email, &role)
                .await
                .map_err(to_napi)?,
        )
    }

    /// Changes a member's role.
    #[napi]
    pub async fn update_member(&self, user_id: String, role: String) -> Result<Value> {
        json(
            &self
                .inner
                .update_member(&user_id, &role)
                .await
                .map_err(to_napi)?,
        )
    }

    /// Removes a member.
    #[napi]
    pub async fn remove_member(&self, user_id: String) -> Result<()> {
        self.inner.remove_member(&user_id).await.map_err(to_napi)
    }

    /// The organization's agents with status and host metrics.
    #[napi]
    pub async fn list_agents(&self, options: Option<PageOptions>) -> Result<Value> {
        let q = page(options);
        self.inner.list_agents(&q).await.map_err(to_napi)
    }

    /// The containers of an agent's Docker engine.
    #[napi]
    pub async fn list_containers(&self, agent_id: String) -> Result<Value> {
        self.inner.list_containers(&agent_id).await.map_err(to_napi)
    }

    /// Starts, stops or restarts a container, after the organization's policies.
    #[napi]
    pub async fn container_action(
        &self,
        agent_id: String,
        container: String,
        action: String,
    ) -> Result<Value> {
        self.inner
            .container_action(&agent_id, &container, &action)
            .await
            .map_err(to_napi)
    }

    /// Proxy and redirection hosts with their apply status.
    #[napi]
    pub async fn list_proxy_hosts(&self, options: Option<PageOptions>) -> Result<Value> {
        let q = page(options);
        self.inner.list_proxy_hosts(&q).await.map_err(to_napi)
    }

    /// Creates a proxy host on an agent from a host document.
    #[napi]
    pub async fn create_proxy_host(&self, agent_id: String, host: Value) -> Result<Value> {
        self.inner
            .create_proxy_host(&agent_id, &host)
            .await
            .map_err(to_napi)
    }

    /// Deletes a proxy host.
    #[napi]
    pub async fn delete_proxy_host(&self, id: String) -> Result<()> {
        self.inner.delete_proxy_host(&id).await.map_err(to_napi)
    }

    /// The organization's policies.
    #[napi]
    pub async fn list_policies(&self, options: Option<PageOptions>) -> Result<Value> {
        let q = page(options);
        self.inner.list_policies(&q).await.map_err(to_napi)
    }

    /// Deletes a policy.
    #[napi]
    pub async fn delete_policy(&self, id: String) -> Result<()> {
        self.inner.delete_policy(&id).await.map_err(to_napi)
    }

    /// Recorded policy violations; `filters` is an object of query parameters.
    #[napi]
    pub async fn list_violations(&self, filters: Option<Value>) -> Result<Value> {
        let filters = filters.unwrap_or(Value::Null);
        self.inner.list_violations(&filters).await.map_err(to_napi)
    }

    /// Central log lines; `filters` is an object of query parameters.
    #[napi]
    pub async fn query_logs(&self, filters: Option<Value>) -> Result<Value> {
        let filters = filters.unwrap_or(Value::Null);
        self.inner.query_logs(&filters).await.map_err(to_napi)
    }

    /// The event inventory; `filters` is an object of query parameters.
    #[napi]
    pub async fn list_events(&self, filters: Option<Value>) -> Result<Value> {
        let filters = filters.unwrap_or(Value::Null);
        self.inner.list_events(&filters).await.map_err(to_napi)
    }

    /// The alert history with each delivery's status.
    #[napi]
    pub async fn list_alerts(&self, filters: Option<Value>) -> Result<Value> {
        let filters = filters.unwrap_or(Value::Null);
        self.inner.list_alerts(&filters).await.map_err(to_napi)
    }

    /// The alert channels.
    #[napi]
    pub async fn list_alert_channels(&self) -> Result<Value> {
        self.inner.list_alert_channels().await.map_err(to_napi)
    }

    /// Creates an alert channel.
    #[napi]
    pub async fn create_alert_channel(&self, name: String, config: Value) -> Result<Value> {
        self.inner
            .create_alert_channel(&name, &config)
            .await
            .map_err(to_napi)
    }

    /// Sends a test notification through a channel.
    #[napi]
    pub async fn test_alert_channel(&self, id: String) -> Result<Value> {
        self.inner.test_alert_channel(&id).await.map_err(to_napi)
    }

    /// Deletes an alert channel.
    #[napi]
    pub async fn delete_alert_channel(&self, id: String) -> Result<()> {
        self.inner.delete_alert_channel(&id).await.map_err(to_napi)
    }

    /// The alert rules.
    #[napi]
    pub async fn list_alert_rules(&self) -> Result<Value> {
        self.inner.list_alert_rules().await.map_err(to_napi)
    }

    /// Creates an alert rule notifying `channels`.
    #[napi]
    pub async fn create_alert_rule(
        &self,
        rule: Value,
        channels: Option<Vec<String>>,
    ) -> Result<Value> {
        self.inner
            .create_alert_rule(&rule, &channels.unwrap_or_default())
            .await
            .map_err(to_napi)
    }

    /// Deletes an alert rule.
    #[napi]
    pub async fn delete_alert_rule(&self, id: String) -> Result<()> {
        self.inner.delete_alert_rule(&id).await.map_err(to_napi)
    }

    /// Creates a policy from a template reference.
    #[napi]
    pub async fn create_policy_from_template(&self, template: Value) -> Result<Value> {
        self.inner
            .create_policy_from_template(&template)
            .await
            .map_err(to_napi)
    }

    /// The caller's API tokens (`all`: every member's, for admins).
    #[napi]
    pub async fn list_api_tokens(
        &self,
        options: Option<PageOptions>,
        all: Option<bool>,
    ) -> Result<Value> {
        let q = page(options);
        let answer = self
            .inner
            .list_api_tokens(&q, all.unwrap_or(false))
            .await
            .map_err(to_napi)?;
        json(&answer)
    }

    /// Creates an API token: `{api_token, token}`; the secret is not shown again.
    #[napi]
    pub async fn create_api_token(
        &self,
        name: String,
        role: Option<String>,
        expires_in_days: Option<i64>,
    ) -> Result<Value> {
        let request = api::CreateApiToken {
            name,
            role,
            expires_in_days,
        };
        json(
            &self
                .inner
                .create_api_token(&request)
                .await
                .map_err(to_napi)?,
        )
    }

    /// Revokes an API token.
    #[napi]
    pub async fn revoke_api_token(&self, id: String) -> Result<()> {
        self.inner.revoke_api_token(&id).await.map_err(to_napi)
    }

    /// The enrollment tokens.
    #[napi]
    pub async fn list_enrollment_tokens(&self, options: Option<PageOptions>) -> Result<Value> {
        let q = page(options);
        json(
            &self
                .inner
                .list_enrollment_tokens(&q)
                .await
                .map_err(to_napi)?,
        )
    }

    /// Creates an enrollment token: `{enrollment_token, token, install_command}`.
    #[napi]
    pub async fn create_enrollment_token(
        &self,
        name: String,
        labels: Option<BTreeMap<String, String>>,
        expires_in_secs: Option<i64>,
        max_uses: Option<u32>,
    ) -> Result<Value> {
        let request = api::CreateEnrollmentToken {
            name,
            labels: labels.unwrap_or_default(),
            expires_in_secs,
            max_uses,
        };
        let answer = self
            .inner
            .create_enrollment_token(&request)
            .await
            .map_err(to_napi)?;
        json(&answer)
    }

    /// One enrollment token by public id.
    #[napi]
    pub async fn get_enrollment_token(&self, id: String) -> Result<Value> {
        json(
            &self
                .inner
                .get_enrollment_token(&id)
                .await
                .map_err(to_napi)?,
        )
    }

    /// Revokes an enrollment token.
    #[napi]
    pub async fn revoke_enrollment_token(&self, id: String) -> Result<Value> {
        json(
            &self
                .inner
                .revoke_enrollment_token(&id)
                .await
                .map_err(to_napi)?,
        )
    }

    /// Deletes an enrollment token.
    #[napi]
    pub async fn delete_enrollment_token(&self, id: String) -> Result<()> {
        self.inner
            .delete_enrollment_token(&id)
            .await
            .map_err(to_napi)
    }

    /// A page of the audit log, newest first: `{action, actor, resource_kind, outcome, from,
    /// to, limit, cursor}`, every key optional.
    #[napi]
    pub async fn list_audit(&self, query: Option<Value>) -> Result<Value> {
        let q: AuditQuery = match query {
            None | Some(Value::Null) => AuditQuery::default(),
            Some(v) => serde_json::from_value(crate::input(v)?)
                .map_err(|e| to_napi(invalid("query", e)))?,
        };
        json(&self.inner.list_audit(&q).await.map_err(to_napi)?)
    }

    /// The server's verification report of the organization's chain.
    #[napi]
    pub async fn verify_audit(&self) -> Result<Value> {
        self.inner.verify_audit().await.map_err(to_napi)
    }

    /// The whole chain with checkpoints and public key, for offline verification.
    #[napi]
    pub async fn export_audit(&self) -> Result<Value> {
        self.inner.export_audit().await.map_err(to_napi)
    }

    /// Exports the chain and verifies it locally with `publicKey` (hex; the export's own key
    /// when absent).
    #[napi]
    pub async fn verify_audit_offline(&self, public_key: Option<String>) -> Result<Value> {
        let answer = self
            .inner
            .verify_audit_offline(public_key.as_deref())
            .await
            .map_err(to_napi)?;
        json(&answer)
    }
}

fn invalid(field: &str, e: serde_json::Error) -> infrapilot_sdk::SdkError {
    infrapilot_sdk::SdkError::InvalidInput {
        field: field.to_owned(),
        message: e.to_string(),
    }
}
