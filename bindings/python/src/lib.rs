//! The `infrapilot._infrapilot` extension module: the SDK facade and API client for Python.
//!
//! Every function converts Python values to JSON, calls `infrapilot-sdk`, and converts the
//! answer back; the Python package (`python/infrapilot`) re-exports it with type stubs.
//! Evaluation, rendering, verification and every HTTP call run with the GIL released
//! (`Python::detach`, PyO3's new name for `allow_threads`), so other Python threads keep
//! running. The client is synchronous: each call blocks on a shared Tokio runtime; asyncio
//! code can use `asyncio.to_thread(client.list_members)`.

mod client;
mod convert;
mod errors;

use infrapilot_sdk as sdk;
use pyo3::prelude::*;

use crate::convert::{from_py, input, to_py};
use crate::errors::to_pyerr;

/// A compiled policy set. Compile once, evaluate many resources.
#[pyclass(frozen, module = "infrapilot")]
struct PolicyEngine {
    inner: sdk::PolicyEngine,
}

#[pymethods]
impl PolicyEngine {
    /// Compiles `policies`: a list (or `{"policies": [...]}`, or that as a JSON string) of
    /// policy documents and template references.
    #[new]
    fn new(py: Python<'_>, policies: &Bound<'_, PyAny>) -> PyResult<Self> {
        let policies = input(policies)?;
        let inner = py
            .detach(|| sdk::PolicyEngine::from_json(&policies))
            .map_err(to_pyerr)?;
        Ok(Self { inner })
    }

    /// Evaluates a resource for `action` in `context`; returns `{decision, violations,
    /// diagnostics}`.
    #[pyo3(signature = (resource, action = "create", context = None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        resource: &Bound<'py, PyAny>,
        action: &str,
        context: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let resource = input(resource)?;
        let context = opt(context)?;
        let answer = py
            .detach(|| {
                self.inner
                    .evaluate(&resource, action, &context)
                    .and_then(|a| json(&a))
            })
            .map_err(to_pyerr)?;
        to_py(py, &answer)
    }

    /// Evaluates every service of a docker-compose file; returns `{decision, services}`.
    #[pyo3(signature = (compose_yaml, action = "create", context = None))]
    fn evaluate_compose<'py>(
        &self,
        py: Python<'py>,
        compose_yaml: &str,
        action: &str,
        context: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let context = opt(context)?;
        let answer = py
            .detach(|| {
                sdk::evaluate_compose_with(&self.inner, compose_yaml, action, &context)
                    .and_then(|a| json(&a))
            })
            .map_err(to_pyerr)?;
        to_py(py, &answer)
    }

    /// The policy documents of the set in evaluation order, templates expanded.
    fn policies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.policies())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("PolicyEngine(<{} policies>)", self.inner.len())
    }
}

/// Checks one policy document; returns `{valid, diagnostics}` with JSON pointers.
#[pyfunction]
fn validate_policy<'py>(
    py: Python<'py>,
    document: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let document = input(document)?;
    let answer = json(&sdk::validate_policy(&document)).map_err(to_pyerr)?;
    to_py(py, &answer)
}

/// The built-in policy templates.
#[pyfunction]
fn list_templates(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let answer = json(&sdk::list_templates()).map_err(to_pyerr)?;
    to_py(py, &answer)
}

/// Compiles `policies` and evaluates every service of a compose file for `create`.
#[pyfunction]
#[pyo3(signature = (compose_yaml, policies, context = None))]
fn evaluate_compose<'py>(
    py: Python<'py>,
    compose_yaml: &str,
    policies: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let policies = input(policies)?;
    let context = opt(context)?;
    let answer = py
        .detach(|| sdk::evaluate_compose(compose_yaml, &policies, &context).and_then(|a| json(&a)))
        .map_err(to_pyerr)?;
    to_py(py, &answer)
}

/// Each compose service mapped to the container resource the policies read.
#[pyfunction]
fn compose_resources<'py>(py: Python<'py>, compose_yaml: &str) -> PyResult<Bound<'py, PyAny>> {
    let resources = py
        .detach(|| sdk::compose_resources(compose_yaml))
        .map_err(to_pyerr)?;
    let map: serde_json::Map<String, serde_json::Value> = resources.into_iter().collect();
    to_py(py, &serde_json::Value::Object(map))
}

/// Checks a proxy host; raises `InvalidInputError` naming the field.
#[pyfunction]
fn validate_proxy_host(host: &Bound<'_, PyAny>) -> PyResult<()> {
    sdk::validate_proxy_host(&input(host)?).map_err(to_pyerr)
}

/// Renders a proxy host's nginx files for `layout` (the default layout when `None`).
#[pyfunction]
#[pyo3(signature = (host, layout = None))]
fn render_proxy_host<'py>(
    py: Python<'py>,
    host: &Bound<'py, PyAny>,
    layout: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let host = input(host)?;
    let layout = opt(layout)?;
    let answer = py
        .detach(|| sdk::render_proxy_host(&host, &layout).and_then(|a| json(&a)))
        .map_err(to_pyerr)?;
    to_py(py, &answer)
}

/// The default nginx layout.
#[pyfunction]
fn default_layout(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    to_py(py, &sdk::default_layout())
}

/// Verifies an audit export with the organization's public key (hex).
#[pyfunction]
fn verify_audit_export<'py>(
    py: Python<'py>,
    export: &Bound<'py, PyAny>,
    public_key: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let export = input(export)?;
    let answer = py
        .detach(|| sdk::verify_audit_export(&export, public_key).and_then(|a| json(&a)))
        .map_err(to_pyerr)?;
    to_py(py, &answer)
}

/// An enrollment token's public parts: `{version, ca_fingerprint, public_id}`.
#[pyfunction]
fn inspect_enrollment_token<'py>(py: Python<'py>, token: &str) -> PyResult<Bound<'py, PyAny>> {
    let answer = sdk::inspect_enrollment_token(token)
        .and_then(|a| json(&a))
        .map_err(to_pyerr)?;
    to_py(py, &answer)
}

/// `None` is the JSON `null` (the facade's "not given").
fn opt(value: Option<&Bound<'_, PyAny>>) -> PyResult<serde_json::Value> {
    value
        .map(from_py)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Serializes an answer of the facade.
pub(crate) fn json(value: &impl serde::Serialize) -> Result<serde_json::Value, sdk::SdkError> {
    serde_json::to_value(value).map_err(|e| sdk::SdkError::InvalidJson {
        message: e.to_string(),
    })
}

#[pymodule]
fn _infrapilot(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PolicyEngine>()?;
    m.add_class::<client::Client>()?;
    m.add_function(wrap_pyfunction!(validate_policy, m)?)?;
    m.add_function(wrap_pyfunction!(list_templates, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_compose, m)?)?;
    m.add_function(wrap_pyfunction!(compose_resources, m)?)?;
    m.add_function(wrap_pyfunction!(validate_proxy_host, m)?)?;
    m.add_function(wrap_pyfunction!(render_proxy_host, m)?)?;
    m.add_function(wrap_pyfunction!(default_layout, m)?)?;
    m.add_function(wrap_pyfunction!(verify_audit_export, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_enrollment_token, m)?)?;
    errors::register(m)?;
    Ok(())
}
