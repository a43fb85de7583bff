//! docker-compose files: each service mapped to the container resource the policy templates
//! read, and evaluated.
//!
//! The mapping (compose key → resource attribute):
//!
//! | compose | resource |
//! |---|---|
//! | service name, `container_name` | `name` |
//! | `image` | `image` |
//! | `user` | `config.user` (absent stays absent: the templates treat it as root) |
//! | `healthcheck.test` (string → `["CMD-SHELL", s]`), `disable: true` → `["NONE"]`, durations in seconds | `config.healthcheck` |
//! | `privileged` | `host_config.privileged` |
//! | `network_mode` | `host_config.network_mode` |
//! | `restart` (`on-failure:3` → name + `maximum_retry_count`), else `deploy.restart_policy.condition` (`none` → `no`, `any` → `always`) | `host_config.restart_policy` |
//! | `mem_limit` or `deploy.resources.limits.memory` (`512m`, `1g`, bytes) | `host_config.memory` (bytes) |
//! | `cpus` or `deploy.resources.limits.cpus` | `host_config.nano_cpus` |
//! | `cap_add`, `cap_drop`, `pid`, `ipc`, `read_only` | `host_config.cap_add`, `cap_drop`, `pid_mode`, `ipc_mode`, `readonly_rootfs` |
//! | `volumes` (short `src:dst[:ro]` and long syntax) | `mounts[]` with `type`, `source`, `destination`, `rw` |
//! | `labels` (map or `k=v` list) | `labels` |
//!
//! Variables (`${TAG}`) are not interpolated and `extends`/`include` are not followed: to
//! check what Docker will run, pass the output of `docker compose config`. YAML merge keys
//! (`<<: *defaults`) are applied.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::SdkError;
use crate::policy::{Decision, Evaluation, PolicyEngine, parse_action, parse_context};

/// The answer for a whole compose file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposeEvaluation {
    /// The strictest decision over all services (`allow` for a file without services).
    pub decision: Decision,
    /// One answer per service, sorted by service name.
    pub services: Vec<ServiceEvaluation>,
}

/// The answer for one compose service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEvaluation {
    /// The service's name (its key under `services`).
    pub service: String,
    /// The decision, violations and diagnostics.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The container resource the service was mapped to, as the policies saw it.
    pub resource: Value,
}

/// Parses a compose file and returns each service's container resource, sorted by name.
pub fn compose_resources(compose_yaml: &str) -> Result<Vec<(String, Value)>, SdkError> {
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(compose_yaml).map_err(|e| {
        let location = e.location();
        SdkError::InvalidCompose {
            message: e.to_string(),
            field: None,
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
        }
    })?;
    yaml.apply_merge()
        .map_err(|e| compose_error(None, e.to_string()))?;
    let document: Value = serde_json::to_value(&yaml)
        .map_err(|e| compose_error(None, format!("only string keys are supported: {e}")))?;
    let Some(services) = document.get("services") else {
        return Err(compose_error(
            Some("services"),
            "a compose file needs a top-level \"services\" mapping".to_owned(),
        ));
    };
    let Value::Object(services) = services else {
        return Err(compose_error(
            Some("services"),
            "\"services\" must be a mapping of service names to services".to_owned(),
        ));
    };
    services
        .iter()
        .map(|(name, service)| Ok((name.clone(), service_resource(name, service)?)))
        .collect()
}

/// Evaluates every service of a compose file against `engine` for `action` (normally
/// `create`) in `context` (see [`PolicyEngine::evaluate`]).
pub fn evaluate_compose_with(
    engine: &PolicyEngine,
    compose_yaml: &str,
    action: &str,
    context: &Value,
) -> Result<ComposeEvaluation, SdkError> {
    let action = parse_action(action)?;
    let context = parse_context(context)?;
    let mut decision = Decision::Allow;
    let services = compose_resources(compose_yaml)?
        .into_iter()
        .map(|(service, resource)| {
            let evaluation = engine.evaluate_with(&resource, action, &context);
            decision = decision.max(evaluation.decision);
            ServiceEvaluation {
                service,
                evaluation,
                resource,
            }
        })
        .collect();
    Ok(ComposeEvaluation { decision, services })
}

/// Compiles `policies` (see [`PolicyEngine::from_json`]) and evaluates every service of a
/// compose file for `create` in `context`.
pub fn evaluate_compose(
    compose_yaml: &str,
    policies: &Value,
    context: &Value,
) -> Result<ComposeEvaluation, SdkError> {
    evaluate_compose_with(
        &PolicyEngine::from_json(policies)?,
        compose_yaml,
        "create",
        context,
    )
}

fn compose_error(field: Option<&str>, message: String) -> SdkError {
    SdkError::InvalidCompose {
        message,
        field: field.map(str::to_owned),
        line: None,
        column: None,
    }
}

fn service_resource(name: &str, service: &Value) -> Result<Value, SdkError> {
    let base = format!("services.{name}");
    let Value::Object(s) = service else {
        return Err(compose_error(
            Some(&base),
            "a service must be a mapping".to_owned(),
        ));
    };
    let field = |key: &str| format!("{base}.{key}");
    let mut resource = Map::new();
    let container_name = s
        .get("container_name")
        .and_then(Value::as_str)
        .unwrap_or(name);
    resource.insert("name".into(), container_name.into());
    if let Some(image) = s.get("image") {
        resource.insert("image".into(), image.clone());
    }

    let mut config = Map::new();
    if let Some(user) = s.get("user") {
        config.insert("user".into(), scalar_string(user));
    }
    if let Some(h) = s.get("healthcheck") {
        config.insert("healthcheck".into(), healthcheck(h, &field("healthcheck"))?);
    }
    resource.insert("config".into(), Value::Object(config));

    let mut host = Map::new();
    for (from, to) in [
        ("privileged", "privileged"),
        ("network_mode", "network_mode"),
        ("cap_add", "cap_add"),
        ("cap_drop", "cap_drop"),
        ("pid", "pid_mode"),
        ("ipc", "ipc_mode"),
        ("read_only", "readonly_rootfs"),
    ] {
        if let Some(v) = s.get(from) {
            host.insert(to.into(), v.clone());
        }
    }
    let deploy = s.get("deploy");
    if let Some(restart) = s.get("restart") {
        host.insert(
            "restart_policy".into(),
            restart_policy(&scalar_string(restart)),
        );
    } else if let Some(condition) = deploy
        .and_then(|d| d.pointer("/restart_policy/condition"))
        .and_then(Value::as_str)
    {
        let name = match condition {
            "none" => "no",
            "any" => "always",
            other => other,
        };
        host.insert("restart_policy".into(), json!({ "name": name }));
    }
    let limits = deploy.and_then(|d| d.pointer("/resources/limits"));
    let memory = s
        .get("mem_limit")
        .map(|m| (m, field("mem_limit")))
        .or_else(|| {
            limits
                .and_then(|l| l.get("memory"))
                .map(|m| (m, field("deploy.resources.limits.memory")))
        });
    if let Some((memory, path)) = memory {
        host.insert("memory".into(), bytes(memory, &path)?.into());
    }
    let cpus = s.get("cpus").map(|c| (c, field("cpus"))).or_else(|| {
        limits
            .and_then(|l| l.get("cpus"))
            .map(|c| (c, field("deploy.resources.limits.cpus")))
    });
    if let Some((cpus, path)) = cpus {
        host.insert("nano_cpus".into(), nano_cpus(cpus, &path)?.into());
    }
    resource.insert("host_config".into(), Value::Object(host));

    let mut mounts = Vec::new();
    if let Some(volumes) = s.get("volumes") {
        let Value::Array(volumes) = volumes else {
            return Err(compose_error(
                Some(&field("volumes")),
                "volumes must be a list".to_owned(),
            ));
        };
        for (i, v) in volumes.iter().enumerate() {
            mounts.push(mount(v, &format!("{base}.volumes[{i}]"))?);
        }
    }
    resource.insert("mounts".into(), Value::Array(mounts));
    resource.insert(
        "labels".into(),
        s.get("labels")
            .map(|l| labels(l, &field("labels")))
            .transpose()?
            .unwrap_or_else(|| json!({})),
    );
    Ok(Value::Object(resource))
}

/// Compose accepts numbers where Docker wants strings (`user: 1000`).
fn scalar_string(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    }
}

fn restart_policy(restart: &Value) -> Value {
    let Some(text) = restart.as_str() else {
        return json!({ "name": restart });
    };
    match text.split_once(':') {
        Some((name, count)) => match count.trim().parse::<u64>() {
            Ok(n) => json!({ "name": name, "maximum_retry_count": n }),
            Err(_) => json!({ "name": text }),
        },
        None => json!({ "name": text }),
    }
}

fn healthcheck(h: &Value, field: &str) -> Result<Value, SdkError> {
    let Value::Object(h) = h else {
        return Err(compose_error(
            Some(field),
            "healthcheck must be a mapping".to_owned(),
        ));
    };
    let mut out = Map::new();
    if h.get("disable").and_then(Value::as_bool) == Some(true) {
        out.insert("test".into(), json!(["NONE"]));
    } else if let Some(test) = h.get("test") {
        let test = match test {
            Value::String(cmd) => json!(["CMD-SHELL", cmd]),
            other => other.clone(),
        };
        out.insert("test".into(), test);
    }
    for key in ["interval", "timeout", "start_period", "start_interval"] {
        if let Some(v) = h.get(key) {
            out.insert(key.into(), seconds(v, &format!("{field}.{key}"))?);
        }
    }
    if let Some(v) = h.get("retries") {
        out.insert("retries".into(), v.clone());
    }
    Ok(Value::Object(out))
}

/// A compose duration (`1m30s`, `500ms`, `10`) in seconds.
fn seconds(v: &Value, field: &str) -> Result<Value, SdkError> {
    if v.is_number() {
        return Ok(v.clone());
    }
    let text = v.as_str().unwrap_or_default();
    let invalid = || {
        compose_error(
            Some(field),
            format!("{v} is not a duration such as \"30s\" or \"1m30s\""),
        )
    };
    let mut total = 0.0_f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    if text.is_empty() {
        return Err(invalid());
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&next) = chars.peek() {
            if next.is_ascii_alphabetic() {
                unit.push(next);
                chars.next();
            } else {
                break;
            }
        }
        let n: f64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return Err(invalid()),
        };
    }
    if !number.is_empty() {
        total += number.parse::<f64>().map_err(|_| invalid())?;
    }
    Ok(if total.fract() == 0.0 && total < 9e15 {
        json!(total as i64)
    } else {
        json!(total)
    })
}

/// A compose byte size (`512m`, `1g`, `1073741824`, `1.5gb`) in bytes.
fn bytes(v: &Value, field: &str) -> Result<i64, SdkError> {
    let invalid = || {
        compose_error(
            Some(field),
            format!("{v} is not a size such as \"512m\", \"1g\" or a number of bytes"),
        )
    };
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    let text = v.as_str().ok_or_else(invalid)?.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| invalid())?;
    let factor: f64 = match unit.trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(invalid()),
    };
    let total = (n * factor).round();
    if !(0.0..9e18).contains(&total) {
        return Err(invalid());
    }
    Ok(total as i64)
}

fn nano_cpus(v: &Value, field: &str) -> Result<i64, SdkError> {
    let cpus = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|c| (0.0..1e9).contains(c))
    .ok_or_else(|| {
        compose_error(
            Some(field),
            format!("{v} is not a number of CPUs such as 0.5 or \"2\""),
        )
    })?;
    Ok((cpus * 1e9).round() as i64)
}

fn mount(v: &Value, field: &str) -> Result<Value, SdkError> {
    match v {
        Value::String(spec) => {
            let parts: Vec<&str> = spec.split(':').collect();
            let (source, destination, mode) = match parts.as_slice() {
                [destination] => (None, *destination, None),
                [source, destination] => (Some(*source), *destination, None),
                [source, destination, mode] => (Some(*source), *destination, Some(*mode)),
                _ => {
                    return Err(compose_error(
                        Some(field),
                        format!("{spec:?} is not a volume such as \"./data:/data:ro\""),
                    ));
                }
            };
            let kind = match source {
                Some(s) if s.starts_with(['/', '.', '~']) => "bind",
                _ => "volume",
            };
            let read_only = mode.is_some_and(|m| m.split(',').any(|o| o == "ro"));
            Ok(json!({
                "type": kind,
                "source": source,
                "destination": destination,
                "rw": !read_only,
            }))
        }
        Value::Object(m) => Ok(json!({
            "type": m.get("type").cloned().unwrap_or_else(|| json!("volume")),
            "source": m.get("source"),
            "destination": m.get("target"),
            "rw": !m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
        })),
        other => Err(compose_error(
            Some(field),
            format!("a volume is a string or a mapping, got {other}"),
        )),
    }
}

fn labels(v: &Value, field: &str) -> Result<Value, SdkError> {
    match v {
        Value::Object(m) => Ok(Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), scalar_string(v)))
                .collect(),
        )),
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                let text = item.as_str().unwrap_or_default();
                let (k, v) = text.split_once('=').unwrap_or((text, ""));
                out.insert(k.to_owned(), v.into());
            }
            Ok(Value::Object(out))
        }
        other => Err(compose_error(
            Some(field),
            format!("labels are a mapping or a list of \"key=value\", got {other}"),
        )),
    }
}
