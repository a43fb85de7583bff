//! `infrapilot.Client`: a synchronous client over the SDK's async one.
//!
//! Each method runs its request on one shared Tokio runtime with the GIL released, and
//! returns the API's JSON as plain dicts and lists. Synchronous because that is what scripts
//! want; asyncio code can wrap a call in `asyncio.to_thread`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;

use infrapilot_sdk::SdkError;
use infrapilot_sdk::client::{self as api, AuditQuery, ListQuery};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;

use crate::convert::{from_py, to_py};
use crate::errors::to_pyerr;
use crate::json;

/// The runtime every client shares; built on first use.
fn runtime() -> Result<&'static tokio::runtime::Runtime, SdkError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("infrapilot-client")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|message| SdkError::Transport {
            message: format!("could not start the client runtime: {message}"),
        })
}

/// A client for one InfraPilot server.
#[pyclass(frozen, module = "infrapilot")]
pub(crate) struct Client {
    inner: api::Client,
}

impl Client {
    /// Runs one request with the GIL released and converts the answer to Python.
    fn call<'py, T, F>(&self, py: Python<'py>, request: F) -> PyResult<Bound<'py, PyAny>>
    where
        T: Serialize,
        F: Future<Output = Result<T, SdkError>> + Send,
    {
        let answer = py
            .detach(|| runtime()?.block_on(request).and_then(|a| json(&a)))
            .map_err(to_pyerr)?;
        to_py(py, &answer)
    }
}

/// Keyword filters as a JSON object (none: no filter).
fn filters_of(filters: Option<&Bound<'_, PyDict>>) -> PyResult<serde_json::Value> {
    match filters {
        Some(dict) => from_py(dict.as_any()),
        None => Ok(serde_json::Value::Null),
    }
}

fn page(limit: Option<u32>, cursor: Option<String>) -> ListQuery {
    ListQuery { limit, cursor }
}

#[pymethods]
impl Client {
    /// A client for `base_url`, using `token` (an API token or an access token) and acting in
    /// `organization` (an id) when given.
    #[new]
    #[pyo3(signature = (base_url, token = None, organization = None))]
    fn new(base_url: &str, token: Option<String>, organization: Option<String>) -> PyResult<Self> {
        let inner = api::Client::new(base_url).map_err(to_pyerr)?;
        inner.set_token(token);
        inner.set_organization(organization);
        Ok(Self { inner })
    }

    /// Replaces the bearer token (`None` forgets it).
    #[pyo3(signature = (token))]
    fn set_token(&self, token: Option<String>) {
        self.inner.set_token(token);
    }

    /// Acts in another organization (`X-Org-Id`), or the token's own with `None`.
    #[pyo3(signature = (organization))]
    fn set_organization(&self, organization: Option<String>) {
        self.inner.set_organization(organization);
    }

    /// The server's base URL.
    #[getter]
    fn base_url(&self) -> String {
        self.inner.base_url().to_owned()
    }

    /// Whether setup is still needed: `{setup_required, edition}`.
    fn setup_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.setup_status())
    }

    /// Completes first-start setup with the code from the server's log.
    #[pyo3(signature = (setup_code, email, name, password, organization_name, organization_slug = None))]
    #[allow(clippy::too_many_arguments)]
    fn setup<'py>(
        &self,
        py: Python<'py>,
        setup_code: String,
        email: String,
        name: String,
        password: String,
        organization_name: String,
        organization_slug: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = api::SetupRequest {
            setup_code,
            email,
            name,
            password,
            organization_name,
            organization_slug,
        };
        self.call(py, self.inner.setup(&request))
    }

    /// Signs in; without MFA the access token is kept for later calls.
    #[pyo3(signature = (email, password, organization_id = None))]
    fn login<'py>(
        &self,
        py: Python<'py>,
        email: &str,
        password: &str,
        organization_id: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.login(email, password, organization_id))
    }

    /// Completes a sign-in with a TOTP or backup code.
    #[pyo3(signature = (mfa_token, code, organization_id = None))]
    fn login_mfa<'py>(
        &self,
        py: Python<'py>,
        mfa_token: &str,
        code: &str,
        organization_id: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.login_mfa(mfa_token, code, organization_id))
    }

    /// The signed-in account and its organizations.
    fn me<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.me())
    }

    /// The organizations the caller may see: `{items, next_cursor}`.
    #[pyo3(signature = (limit = None, cursor = None))]
    fn list_organizations<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_organizations(&q))
    }

    /// Creates an organization (SaaS edition).
    #[pyo3(signature = (name, slug = None))]
    fn create_organization<'py>(
        &self,
        py: Python<'py>,
        name: String,
        slug: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = api::CreateOrg { name, slug };
        self.call(py, self.inner.create_organization(&request))
    }

    /// The organization the client acts in.
    fn organization<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.organization())
    }

    /// The members of the current organization: `{items, next_cursor}`.
    #[pyo3(signature = (limit = None, cursor = None))]
    fn list_members<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_members(&q))
    }

    /// Invites `email` with `role` (`viewer`, `operator`, `admin`, `owner`); the answer holds
    /// the invitation and its token, shown once.
    fn invite_member<'py>(
        &self,
        py: Python<'py>,
        email: &str,
        role: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.invite_member(email, role))
    }

    /// Changes a member's role.
    fn update_member<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        role: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.update_member(user_id, role))
    }

    /// Removes a member.
    fn remove_member<'py>(&self, py: Python<'py>, user_id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.remove_member(user_id))
    }

    /// The organization's agents with status and host metrics: `{items, next_cursor}`.
    #[pyo3(signature = (limit = None, cursor = None))]
    fn list_agents<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_agents(&q))
    }

    /// The containers of an agent's Docker engine.
    fn list_containers<'py>(&self, py: Python<'py>, agent_id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.list_containers(agent_id))
    }

    /// Starts, stops or restarts a container (`action`: `start`, `stop`, `restart`), after
    /// the organization's policies: `{result, warnings}`.
    fn container_action<'py>(
        &self,
        py: Python<'py>,
        agent_id: &str,
        container: &str,
        action: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.container_action(agent_id, container, action))
    }

    /// Proxy and redirection hosts with their apply status: `{items, next_cursor}`.
    #[pyo3(signature = (limit = None, cursor = None))]
    fn list_proxy_hosts<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_proxy_hosts(&q))
    }

    /// Creates a proxy host on an agent from a host document (`{"domains": [...],
    /// "upstream": "http://web:8080"}`); the answer's `status` says whether nginx serves it.
    fn create_proxy_host<'py>(
        &self,
        py: Python<'py>,
        agent_id: &str,
        host: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let host = from_py(host)?;
        self.call(py, self.inner.create_proxy_host(agent_id, &host))
    }

    /// Deletes a proxy host.
    fn delete_proxy_host<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.delete_proxy_host(id))
    }

    /// The organization's policies: `{items, next_cursor}`.
    #[pyo3(signature = (limit = None, cursor = None))]
    fn list_policies<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_policies(&q))
    }

    /// Deletes a policy.
    fn delete_policy<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.delete_policy(id))
    }

    /// Recorded policy violations; keyword filters `policy_id`, `action`, `agent_id`,
    /// `status`, `since`, `limit`, `cursor`.
    #[pyo3(signature = (**filters))]
    fn list_violations<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filters = filters_of(filters)?;
        self.call(py, self.inner.list_violations(&filters))
    }

    /// Central log lines: `{items, next_cursor}`; keyword filters `since`, `until`,
    /// `agent_id`, `container`, `source`, `level` (lists allowed), `q`, `order`, `limit`,
    /// `cursor`.
    #[pyo3(signature = (**filters))]
    fn query_logs<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filters = filters_of(filters)?;
        self.call(py, self.inner.query_logs(&filters))
    }

    /// The event inventory: `{items, next_cursor}`; keyword filters `type`, `agent_id`,
    /// `container`, `severity`, `since`, `until`, `order`, `limit`, `cursor`.
    #[pyo3(signature = (**filters))]
    fn list_events<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filters = filters_of(filters)?;
        self.call(py, self.inner.list_events(&filters))
    }

    /// The alert history with each delivery's status; keyword filters `status`, `rule_id`,
    /// `limit`, `cursor`.
    #[pyo3(signature = (**filters))]
    fn list_alerts<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filters = filters_of(filters)?;
        self.call(py, self.inner.list_alerts(&filters))
    }

    /// The alert channels (secrets shown as `{"set": true|false}`).
    fn list_alert_channels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.list_alert_channels())
    }

    /// Creates an alert channel from `config` (`{"type": "smtp"|"slack"|"webhook", …}`).
    fn create_alert_channel<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        config: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let config = from_py(config)?;
        self.call(py, self.inner.create_alert_channel(name, &config))
    }

    /// Sends a test notification through a channel: `{ok, error}`.
    fn test_alert_channel<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.test_alert_channel(id))
    }

    /// Deletes an alert channel.
    fn delete_alert_channel<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.delete_alert_channel(id))
    }

    /// The alert rules.
    fn list_alert_rules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.list_alert_rules())
    }

    /// Creates an alert rule notifying `channels` (ids).
    #[pyo3(signature = (rule, channels = Vec::new()))]
    fn create_alert_rule<'py>(
        &self,
        py: Python<'py>,
        rule: &Bound<'py, PyAny>,
        channels: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rule = from_py(rule)?;
        self.call(py, self.inner.create_alert_rule(&rule, &channels))
    }

    /// Deletes an alert rule.
    fn delete_alert_rule<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.delete_alert_rule(id))
    }

    /// Creates a policy from a template reference (`{"template": "no_exec_production",
    /// "environments": ["production"]}`).
    fn create_policy_from_template<'py>(
        &self,
        py: Python<'py>,
        template: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let template = from_py(template)?;
        self.call(py, self.inner.create_policy_from_template(&template))
    }

    /// The caller's API tokens (`all`: every member's, for admins).
    #[pyo3(signature = (limit = None, cursor = None, all = false))]
    fn list_api_tokens<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
        all: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_api_tokens(&q, all))
    }

    /// Creates an API token: `{api_token, token}`; the secret is not shown again.
    #[pyo3(signature = (name, role = None, expires_in_days = None))]
    fn create_api_token<'py>(
        &self,
        py: Python<'py>,
        name: String,
        role: Option<String>,
        expires_in_days: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = api::CreateApiToken {
            name,
            role,
            expires_in_days,
        };
        self.call(py, self.inner.create_api_token(&request))
    }

    /// Revokes an API token.
    fn revoke_api_token<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.revoke_api_token(id))
    }

    /// The enrollment tokens: `{items, next_cursor}`.
    #[pyo3(signature = (limit = None, cursor = None))]
    fn list_enrollment_tokens<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = page(limit, cursor);
        self.call(py, self.inner.list_enrollment_tokens(&q))
    }

    /// Creates an enrollment token: `{enrollment_token, token, install_command}`.
    #[pyo3(signature = (name, labels = None, expires_in_secs = None, max_uses = None))]
    fn create_enrollment_token<'py>(
        &self,
        py: Python<'py>,
        name: String,
        labels: Option<BTreeMap<String, String>>,
        expires_in_secs: Option<i64>,
        max_uses: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = api::CreateEnrollmentToken {
            name,
            labels: labels.unwrap_or_default(),
            expires_in_secs,
            max_uses,
        };
        self.call(py, self.inner.create_enrollment_token(&request))
    }

    /// One enrollment token by public id.
    fn get_enrollment_token<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.get_enrollment_token(id))
    }

    /// Revokes an enrollment token.
    fn revoke_enrollment_token<'py>(
        &self,
        py: Python<'py>,
        id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.revoke_enrollment_token(id))
    }

    /// Deletes an enrollment token.
    fn delete_enrollment_token<'py>(
        &self,
        py: Python<'py>,
        id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.delete_enrollment_token(id))
    }

    /// A page of the audit log, newest first, filtered by the keyword arguments.
    #[pyo3(signature = (action = None, actor = None, resource_kind = None, outcome = None, from_time = None, to_time = None, limit = None, cursor = None))]
    #[allow(clippy::too_many_arguments)]
    fn list_audit<'py>(
        &self,
        py: Python<'py>,
        action: Option<String>,
        actor: Option<String>,
        resource_kind: Option<String>,
        outcome: Option<String>,
        from_time: Option<String>,
        to_time: Option<String>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = AuditQuery {
            action,
            actor,
            resource_kind,
            outcome,
            from: from_time,
            to: to_time,
            limit,
            cursor,
        };
        self.call(py, self.inner.list_audit(&q))
    }

    /// The server's verification report of the organization's chain.
    fn verify_audit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.verify_audit())
    }

    /// The whole chain with checkpoints and public key, for offline verification.
    fn export_audit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.export_audit())
    }

    /// Exports the chain and verifies it locally with `public_key` (hex; the export's own key
    /// when `None`).
    #[pyo3(signature = (public_key = None))]
    fn verify_audit_offline<'py>(
        &self,
        py: Python<'py>,
        public_key: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, self.inner.verify_audit_offline(public_key))
    }

    fn __repr__(&self) -> String {
        format!("Client({:?})", self.inner.base_url())
    }
}
