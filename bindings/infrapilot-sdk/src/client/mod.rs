//! A typed async client for the InfraPilot HTTP API.
//!
//! One method per operation of `openapi/openapi.json` that scripts need today: setup,
//! sign-in, organizations, members, API tokens, enrollment tokens and the audit log. Every
//! error the API answers (`application/problem+json`) becomes [`SdkError::Api`] with the
//! problem's detail and field errors.
//!
//! Adding an area when the server grows one (agents, containers, proxy hosts, logs, alerts,
//! policies) is a wire type in [`types`] plus a few lines per operation over the private
//! `Client::get`/`Client::send` helpers; nothing else changes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), infrapilot_sdk::SdkError> {
//! use infrapilot_sdk::client::{Client, ListQuery};
//! let client = Client::new("http://127.0.0.1:8080")?.with_token("ipat_…");
//! for member in client.list_members(&ListQuery::default()).await?.items {
//!     println!("{} {}", member.email, member.role);
//! }
//! # Ok(()) }
//! ```

pub mod types;

use std::sync::{Arc, RwLock};

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use self::types::*;
use crate::audit::{AuditReport, verify_audit_export};
use crate::error::{ApiProblem, SdkError};

/// The header naming the organization a request acts in.
const ORG_HEADER: &str = "x-org-id";

/// A client for one InfraPilot server. Cheap to clone; clones share the connection pool and
/// the credentials.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    // Interior mutability so that `login` can store the session's access token on a shared
    // client; the lock is never held across an await.
    token: RwLock<Option<String>>,
    organization: RwLock<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base_url` (`http://127.0.0.1:8080`), not signed in.
    pub fn new(base_url: &str) -> Result<Self, SdkError> {
        let mut base = Url::parse(base_url)
            .map_err(|e| SdkError::input("base_url", format!("{base_url:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SdkError::input(
                "base_url",
                "use an http:// or https:// URL",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("infrapilot-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SdkError::Transport {
                message: e.to_string(),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                token: RwLock::new(None),
                organization: RwLock::new(None),
            }),
        })
    }

    /// Uses `token` — an API token (`ipat_…`) or an access token — for every request.
    pub fn with_token(self, token: impl Into<String>) -> Self {
        self.set_token(Some(token.into()));
        self
    }

    /// Replaces the bearer token (`None` signs out locally).
    pub fn set_token(&self, token: Option<String>) {
        if let Ok(mut slot) = self.inner.token.write() {
            *slot = token;
        }
    }

    /// Acts in `organization` (its id) by sending `X-Org-Id`; `None` uses the token's own.
    pub fn set_organization(&self, organization: Option<String>) {
        if let Ok(mut slot) = self.inner.organization.write() {
            *slot = organization;
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// Whether setup is still needed.
    pub async fn setup_status(&self) -> Result<SetupStatus, SdkError> {
        self.get("api/v1/setup", &()).await
    }

    /// Completes first-start setup with the code from the server's log.
    pub async fn setup(&self, request: &SetupRequest) -> Result<SetupResponse, SdkError> {
        self.send(Method::POST, "api/v1/setup", Some(request)).await
    }

    /// Signs in. Without a second factor the session's access token is stored and used for
    /// every later request; with one, call [`Client::login_mfa`] with `mfa_token`.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        organization_id: Option<&str>,
    ) -> Result<LoginResponse, SdkError> {
        let body =
            json!({"email": email, "password": password, "organization_id": organization_id});
        let response: LoginResponse = self
            .send(Method::POST, "api/v1/auth/login", Some(&body))
            .await?;
        if let Some(session) = &response.session {
            self.set_token(Some(session.access_token.clone()));
        }
        Ok(response)
    }

    /// Completes a sign-in with a TOTP or backup code, storing the access token.
    pub async fn login_mfa(
        &self,
        mfa_token: &str,
        code: &str,
        organization_id: Option<&str>,
    ) -> Result<Session, SdkError> {
        let body =
            json!({"mfa_token": mfa_token, "code": code, "organization_id": organization_id});
        let session: Session = self
            .send(Method::POST, "api/v1/auth/login/mfa", Some(&body))
            .await?;
        self.set_token(Some(session.access_token.clone()));
        Ok(session)
    }

    /// The signed-in account and its organizations.
    pub async fn me(&self) -> Result<Me, SdkError> {
        self.get("api/v1/auth/me", &()).await
    }

    /// The organizations the caller may see.
    pub async fn list_organizations(
        &self,
        query: &ListQuery,
    ) -> Result<Page<Organization>, SdkError> {
        self.get("api/v1/orgs", query).await
    }

    /// Creates an organization (SaaS edition; the caller becomes its owner).
    pub async fn create_organization(&self, request: &CreateOrg) -> Result<Organization, SdkError> {
        self.send(Method::POST, "api/v1/orgs", Some(request)).await
    }

    /// The organization the client acts in.
    pub async fn organization(&self) -> Result<Organization, SdkError> {
        self.get("api/v1/organization", &()).await
    }

    /// The members of the current organization.
    pub async fn list_members(&self, query: &ListQuery) -> Result<Page<Member>, SdkError> {
        self.get("api/v1/members", query).await
    }

    /// Invites `email` to the current organization with `role`. Accounts join only by
    /// accepting an invitation, so this is how a person becomes a member; the token in the
    /// answer is shown once.
    pub async fn invite_member(
        &self,
        email: &str,
        role: &str,
    ) -> Result<CreatedInvitation, SdkError> {
        let body = json!({"email": email, "role": role});
        self.send(Method::POST, "api/v1/invitations", Some(&body))
            .await
    }

    /// Changes a member's role.
    pub async fn update_member(&self, user_id: &str, role: &str) -> Result<Member, SdkError> {
        let path = format!("api/v1/members/{}", segment(user_id, "user_id")?);
        self.send(Method::PATCH, &path, Some(&json!({"role": role})))
            .await
    }

    /// Removes a member from the current organization.
    pub async fn remove_member(&self, user_id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/members/{}", segment(user_id, "user_id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// The caller's API tokens (`all`: every member's, for admins).
    pub async fn list_api_tokens(
        &self,
        query: &ListQuery,
        all: bool,
    ) -> Result<Page<ApiToken>, SdkError> {
        #[derive(Serialize)]
        struct Query<'a> {
            #[serde(flatten)]
            page: &'a ListQuery,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            all: bool,
        }
        self.get("api/v1/api-tokens", &Query { page: query, all })
            .await
    }

    /// Creates an API token; its secret is in the answer and never shown again.
    pub async fn create_api_token(
        &self,
        request: &CreateApiToken,
    ) -> Result<CreatedApiToken, SdkError> {
        self.send(Method::POST, "api/v1/api-tokens", Some(request))
            .await
    }

    /// Revokes an API token.
    pub async fn revoke_api_token(&self, id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/api-tokens/{}", segment(id, "id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// The enrollment tokens of the current organization.
    pub async fn list_enrollment_tokens(
        &self,
        query: &ListQuery,
    ) -> Result<Page<EnrollmentTokenView>, SdkError> {
        self.get("api/v1/enrollment-tokens", query).await
    }

    /// Creates an enrollment token; the token is in the answer and never shown again.
    pub async fn create_enrollment_token(
        &self,
        request: &CreateEnrollmentToken,
    ) -> Result<CreatedEnrollmentToken, SdkError> {
        self.send(Method::POST, "api/v1/enrollment-tokens", Some(request))
            .await
    }

    /// One enrollment token by its public id.
    pub async fn get_enrollment_token(&self, id: &str) -> Result<EnrollmentTokenView, SdkError> {
        let path = format!("api/v1/enrollment-tokens/{}", segment(id, "id")?);
        self.get(&path, &()).await
    }

    /// Revokes an enrollment token (it stays listed as `revoked`).
    pub async fn revoke_enrollment_token(&self, id: &str) -> Result<EnrollmentTokenView, SdkError> {
        let path = format!("api/v1/enrollment-tokens/{}/revoke", segment(id, "id")?);
        self.send::<(), _>(Method::POST, &path, None).await
    }

    /// Deletes an enrollment token.
    pub async fn delete_enrollment_token(&self, id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/enrollment-tokens/{}", segment(id, "id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// A page of the organization's agents with their status and last host metrics (the
    /// API's JSON).
    pub async fn list_agents(&self, query: &ListQuery) -> Result<Value, SdkError> {
        self.get("api/v1/agents", query).await
    }

    /// The containers of an agent's Docker engine with CPU, memory, restarts and health.
    pub async fn list_containers(&self, agent_id: &str) -> Result<Value, SdkError> {
        let path = format!(
            "api/v1/agents/{}/containers",
            segment(agent_id, "agent_id")?
        );
        self.get(&path, &()).await
    }

    /// Starts, stops or restarts a container (`action`: `start`, `stop`, `restart`), after
    /// the organization's policies; the answer has the result and any policy warnings. A
    /// blocking policy is an [`SdkError::Api`] with status 403.
    pub async fn container_action(
        &self,
        agent_id: &str,
        container: &str,
        action: &str,
    ) -> Result<Value, SdkError> {
        if !matches!(action, "start" | "stop" | "restart") {
            return Err(SdkError::input(
                "action",
                format!("{action:?} is not start, stop or restart"),
            ));
        }
        let path = format!(
            "api/v1/agents/{}/containers/{}/{action}",
            segment(agent_id, "agent_id")?,
            segment(container, "container")?
        );
        self.send::<(), _>(Method::POST, &path, None).await
    }

    /// A page of proxy and redirection hosts with their apply status.
    pub async fn list_proxy_hosts(&self, query: &ListQuery) -> Result<Value, SdkError> {
        self.get("api/v1/proxy-hosts", query).await
    }

    /// Creates a proxy host on an agent; `host` is the host document (`{"domains": [...],
    /// "upstream": "http://web:8080", …}`). The answer says whether nginx serves it
    /// (`status`: `applied`, `quarantined` with nginx's message, `pending`, …).
    pub async fn create_proxy_host(&self, agent_id: &str, host: &Value) -> Result<Value, SdkError> {
        let body = serde_json::json!({"agent_id": agent_id, "host": host});
        self.send(Method::POST, "api/v1/proxy-hosts", Some(&body))
            .await
    }

    /// Deletes a proxy host; its agent stops serving it.
    pub async fn delete_proxy_host(&self, id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/proxy-hosts/{}", segment(id, "id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// Creates a policy from a template reference (`{"template": "no_exec_production",
    /// "environments": ["production"]}`).
    pub async fn create_policy_from_template(&self, template: &Value) -> Result<Value, SdkError> {
        let body = serde_json::json!({"template": template});
        self.send(Method::POST, "api/v1/policies/from-template", Some(&body))
            .await
    }

    /// A page of the organization's policies.
    pub async fn list_policies(&self, query: &ListQuery) -> Result<Value, SdkError> {
        self.get("api/v1/policies", query).await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/policies/{}", segment(id, "id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// Recorded policy violations; `filters`: `policy_id`, `action`, `agent_id`, `status`
    /// (`open`, `resolved`), `since`, `limit`, `cursor`.
    pub async fn list_violations(&self, filters: &Value) -> Result<Value, SdkError> {
        self.get("api/v1/policy-violations", &query_pairs(filters)?)
            .await
    }

    /// A page of central log lines (the API's JSON: `{items, next_cursor}`). `filters` is an
    /// object of query parameters: `since`, `until`, `agent_id`, `container`, `source`,
    /// `level`, `q`, `order`, `limit`, `cursor` (lists comma-separated).
    pub async fn query_logs(&self, filters: &Value) -> Result<Value, SdkError> {
        self.get("api/v1/logs", &query_pairs(filters)?).await
    }

    /// A page of the event inventory; `filters` as for [`Client::query_logs`] with `type`,
    /// `agent_id`, `container`, `severity`, `since`, `until`, `order`, `limit`, `cursor`.
    pub async fn list_events(&self, filters: &Value) -> Result<Value, SdkError> {
        self.get("api/v1/events", &query_pairs(filters)?).await
    }

    /// The alert history with each delivery's status; `filters`: `status` (`firing`,
    /// `resolved`), `rule_id`, `limit`, `cursor`.
    pub async fn list_alerts(&self, filters: &Value) -> Result<Value, SdkError> {
        self.get("api/v1/alerts", &query_pairs(filters)?).await
    }

    /// The alert channels (secrets shown as `{"set": true|false}`).
    pub async fn list_alert_channels(&self) -> Result<Value, SdkError> {
        self.get("api/v1/alert-channels", &()).await
    }

    /// Creates an alert channel: `config` is `{"type": "smtp"|"slack"|"webhook", …}`.
    pub async fn create_alert_channel(
        &self,
        name: &str,
        config: &Value,
    ) -> Result<Value, SdkError> {
        let body = serde_json::json!({"name": name, "config": config});
        self.send(Method::POST, "api/v1/alert-channels", Some(&body))
            .await
    }

    /// Sends a test notification through a channel: `{ok, error}` with the remote's words.
    pub async fn test_alert_channel(&self, id: &str) -> Result<Value, SdkError> {
        let path = format!("api/v1/alert-channels/{}/test", segment(id, "id")?);
        self.send::<(), _>(Method::POST, &path, None).await
    }

    /// Deletes an alert channel.
    pub async fn delete_alert_channel(&self, id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/alert-channels/{}", segment(id, "id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// The alert rules with the subjects they fire for.
    pub async fn list_alert_rules(&self) -> Result<Value, SdkError> {
        self.get("api/v1/alert-rules", &()).await
    }

    /// Creates an alert rule (`rule`: `{"name", "kind", …parameters, "severity", "enabled",
    /// …}`) notifying `channels`.
    pub async fn create_alert_rule(
        &self,
        rule: &Value,
        channels: &[String],
    ) -> Result<Value, SdkError> {
        let body = serde_json::json!({"rule": rule, "channels": channels});
        self.send(Method::POST, "api/v1/alert-rules", Some(&body))
            .await
    }

    /// Deletes an alert rule.
    pub async fn delete_alert_rule(&self, id: &str) -> Result<(), SdkError> {
        let path = format!("api/v1/alert-rules/{}", segment(id, "id")?);
        self.send_empty(Method::DELETE, &path).await
    }

    /// A page of the audit log, newest first.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditItem>, SdkError> {
        self.get("api/v1/audit", query).await
    }

    /// The server's own verification of the organization's chain (its report as JSON).
    pub async fn verify_audit(&self) -> Result<Value, SdkError> {
        self.get("api/v1/audit/verify", &()).await
    }

    /// The whole chain with its checkpoints and the server's public key, for offline
    /// verification with [`crate::verify_audit_export`].
    pub async fn export_audit(&self) -> Result<Value, SdkError> {
        self.get("api/v1/audit/export", &()).await
    }

    /// Exports the chain and verifies it here, with `public_key_hex` from a trusted place;
    /// `None` trusts the key the server puts in the export (which only proves the chain is
    /// consistent with what this server says, not that the server is honest).
    pub async fn verify_audit_offline(
        &self,
        public_key_hex: Option<&str>,
    ) -> Result<AuditReport, SdkError> {
        let export = self.export_audit().await?;
        let key = match public_key_hex {
            Some(key) => key.to_owned(),
            None => export
                .get("public_key")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| SdkError::UnexpectedResponse {
                    status: 200,
                    message: "the audit export has no public_key".to_owned(),
                })?,
        };
        verify_audit_export(&export, &key)
    }

    async fn get<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, SdkError> {
        let request = self.request(Method::GET, path)?.query(query);
        decode(request.send().await).await
    }

    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, SdkError> {
        let mut request = self.request(method, path)?;
        if let Some(body) = body {
            request = request.json(body);
        }
        decode(request.send().await).await
    }

    async fn send_empty(&self, method: Method, path: &str) -> Result<(), SdkError> {
        let response = self.request(method, path)?.send().await;
        let response = check(response).await?;
        drop(response);
        Ok(())
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, SdkError> {
        let url = self
            .inner
            .base
            .join(path)
            .map_err(|e| SdkError::input("path", e.to_string()))?;
        let mut request = self.inner.http.request(method, url);
        if let Some(token) = self.inner.token.read().ok().and_then(|t| t.clone()) {
            request = request.bearer_auth(token);
        }
        if let Some(org) = self.inner.organization.read().ok().and_then(|o| o.clone()) {
            request = request.header(ORG_HEADER, org);
        }
        Ok(request)
    }
}

/// Percent-encodes one path segment, refusing an empty one.
fn segment(value: &str, field: &str) -> Result<String, SdkError> {
    if value.is_empty() {
        return Err(SdkError::input(field, "must not be empty"));
    }
    Ok(value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect())
}

async fn check(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, SdkError> {
    let response = response.map_err(|e| SdkError::Transport {
        message: error_chain(&e),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(problem(status, &body))
}

async fn decode<T: DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, SdkError> {
    let response = check(response).await?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| SdkError::Transport {
        message: error_chain(&e),
    })?;
    serde_json::from_slice(&body).map_err(|e| SdkError::UnexpectedResponse {
        status,
        message: format!("the body does not match the documented schema: {e}"),
    })
}

fn problem(status: StatusCode, body: &[u8]) -> SdkError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) if !p.detail.is_empty() || !p.problem_type.is_empty() => {
            SdkError::Api(Box::new(ApiProblem {
                status: status.as_u16(),
                problem_type: p.problem_type,
                title: p.title,
                detail: p.detail,
                errors: p.errors,
                request_id: p.request_id,
                retry_after: p.retry_after,
            }))
        }
        _ => SdkError::UnexpectedResponse {
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        },
    }
}

/// reqwest's top-level message is often just "error sending request"; the cause says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// An object of query parameters (strings, numbers, booleans; lists joined with commas) as
/// pairs; anything else is refused naming the parameter.
fn query_pairs(filters: &Value) -> Result<Vec<(String, String)>, SdkError> {
    let object = match filters {
        Value::Null => return Ok(Vec::new()),
        Value::Object(object) => object,
        _ => {
            return Err(SdkError::input(
                "filters",
                "must be an object of query parameters",
            ));
        }
    };
    let scalar = |key: &str, v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(SdkError::input(
            format!("filters.{key}"),
            "must be a string, a number, a boolean or a list of them",
        )),
    };
    let mut pairs = Vec::new();
    for (key, value) in object {
        match value {
            Value::Null => {}
            Value::Array(items) => {
                let items: Result<Vec<String>, SdkError> =
                    items.iter().map(|v| scalar(key, v)).collect();
                pairs.push((key.clone(), items?.join(",")));
            }
            other => pairs.push((key.clone(), scalar(key, other)?)),
        }
    }
    Ok(pairs)
}
