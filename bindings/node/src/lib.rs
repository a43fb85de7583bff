//! The `infrapilot.node` addon: the SDK facade and API client for Node.js.
//!
//! Values cross as JSON (napi's serde-json conversion); errors are thrown as `Error`s whose
//! message is the SDK error as JSON, which `index.js` turns into an instance of the matching
//! `InfraPilotError` subclass. Client calls return Promises driven by napi's Tokio runtime.

mod client;

use infrapilot_sdk as sdk;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

/// Throws an SDK error; `index.js` parses the JSON message back into a typed error.
pub(crate) fn to_napi(error: sdk::SdkError) -> Error {
    Error::new(Status::GenericFailure, error.to_json().to_string())
}

/// Serializes an answer of the facade.
pub(crate) fn json(value: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| {
        to_napi(sdk::SdkError::InvalidJson {
            message: e.to_string(),
        })
    })
}

/// A JS argument that may be a value or JSON text.
pub(crate) fn input(value: Value) -> Result<Value> {
    match value {
        Value::String(text) => sdk::parse_json(&text).map_err(to_napi),
        mut other => {
            integers(&mut other);
            Ok(other)
        }
    }
}

/// The largest integer a JS number holds exactly (2^53 - 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// JS has one number type, and napi hands over every number outside the 32-bit range as a
/// float (`1795318842765068.0`); the SDK's typed documents (audit exports, policy priorities,
/// byte sizes) want integers. Every integral number a JS number holds exactly becomes an
/// integer again, as `JSON.stringify` would have written it.
fn integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER)
            {
                // Exact: |f| <= 2^53 - 1 fits an i64 without rounding.
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integers),
        Value::Object(map) => map.values_mut().for_each(integers),
        _ => {}
    }
}

/// A compiled policy set. Compile once, evaluate many resources.
#[napi]
pub struct PolicyEngine {
    inner: sdk::PolicyEngine,
}

#[napi]
impl PolicyEngine {
    /// Compiles a policy set: an array (or `{policies: [...]}`, or JSON text) of policy
    /// documents and template references.
    #[napi(constructor)]
    pub fn new(policies: Value) -> Result<Self> {
        let inner = sdk::PolicyEngine::from_json(&input(policies)?).map_err(to_napi)?;
        Ok(Self { inner })
    }

    /// Evaluates a resource for `action` (default `create`) in `context`.
    #[napi]
    pub fn evaluate(
        &self,
        resource: Value,
        action: Option<String>,
        context: Option<Value>,
    ) -> Result<Value> {
        let answer = self
            .inner
            .evaluate(
                &input(resource)?,
                action.as_deref().unwrap_or("create"),
                &input(context.unwrap_or_default())?,
            )
            .map_err(to_napi)?;
        json(&answer)
    }

    /// The same as `evaluate` with JSON text in and out. Crossing N-API once as a string is
    /// about twice as fast as converting object graphs value by value, so `index.js` routes
    /// `evaluate` through this.
    #[napi]
    pub fn evaluate_json(
        &self,
        resource: String,
        action: Option<String>,
        context: Option<String>,
    ) -> Result<String> {
        let resource = sdk::parse_json(&resource).map_err(to_napi)?;
        let context = match context {
            Some(text) => sdk::parse_json(&text).map_err(to_napi)?,
            None => Value::Null,
        };
        let answer = self
            .inner
            .evaluate(&resource, action.as_deref().unwrap_or("create"), &context)
            .map_err(to_napi)?;
        serde_json::to_string(&answer).map_err(|e| {
            to_napi(sdk::SdkError::InvalidJson {
                message: e.to_string(),
            })
        })
    }

    /// Evaluates every service of a docker-compose file.
    #[napi]
    pub fn evaluate_compose(
        &self,
        compose_yaml: String,
        action: Option<String>,
        context: Option<Value>,
    ) -> Result<Value> {
        let answer = sdk::evaluate_compose_with(
            &self.inner,
            &compose_yaml,
            action.as_deref().unwrap_or("create"),
            &input(context.unwrap_or_default())?,
        )
        .map_err(to_napi)?;
        json(&answer)
    }

    /// The policy documents of the set, in evaluation order.
    #[napi]
    pub fn policies(&self) -> Value {
        self.inner.policies()
    }

    /// How many policies the set holds.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        u32::try_from(self.inner.len()).unwrap_or(u32::MAX)
    }
}

/// Checks one policy document: `{valid, diagnostics}`.
#[napi]
pub fn validate_policy(document: Value) -> Result<Value> {
    json(&sdk::validate_policy(&input(document)?))
}

/// The built-in policy templates.
#[napi]
pub fn list_templates() -> Result<Value> {
    json(&sdk::list_templates())
}

/// Compiles `policies` and evaluates every service of a compose file for `create`.
#[napi]
pub fn evaluate_compose(
    compose_yaml: String,
    policies: Value,
    context: Option<Value>,
) -> Result<Value> {
    let answer = sdk::evaluate_compose(
        &compose_yaml,
        &input(policies)?,
        &input(context.unwrap_or_default())?,
    )
    .map_err(to_napi)?;
    json(&answer)
}

/// Each compose service mapped to the container resource the policies read.
#[napi]
pub fn compose_resources(compose_yaml: String) -> Result<Value> {
    let resources = sdk::compose_resources(&compose_yaml).map_err(to_napi)?;
    Ok(Value::Object(resources.into_iter().collect()))
}

/// Checks a proxy host; throws an `InvalidInputError` naming the field.
#[napi]
pub fn validate_proxy_host(host: Value) -> Result<()> {
    sdk::validate_proxy_host(&input(host)?).map_err(to_napi)
}

/// Renders a proxy host's nginx files (`layout` defaults to the agent's layout).
#[napi]
pub fn render_proxy_host(host: Value, layout: Option<Value>) -> Result<Value> {
    let answer = sdk::render_proxy_host(&input(host)?, &input(layout.unwrap_or_default())?)
        .map_err(to_napi)?;
    json(&answer)
}

/// The default nginx layout.
#[napi]
pub fn default_layout() -> Value {
    sdk::default_layout()
}

/// Verifies an audit export with the organization's public key (hex).
#[napi]
pub fn verify_audit_export(export: Value, public_key: String) -> Result<Value> {
    let answer = sdk::verify_audit_export(&input(export)?, &public_key).map_err(to_napi)?;
    json(&answer)
}

/// An enrollment token's public parts: `{version, ca_fingerprint, public_id}`.
#[napi]
pub fn inspect_enrollment_token(token: String) -> Result<Value> {
    json(&sdk::inspect_enrollment_token(&token).map_err(to_napi)?)
}
