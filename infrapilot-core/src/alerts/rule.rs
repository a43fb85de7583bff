//! Alert rules: what to watch, where, how loud, and how often to say it.

use serde::{Deserialize, Serialize};

use crate::ids::AlertRuleId;
use crate::values::{ContainerName, Labels};

/// The longest rule name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The most consecutive samples, restarts or similar counts a rule may ask for.
pub const MAX_COUNT: u32 = 1_000;
/// The longest window, cooldown or offline delay a rule may ask for: 30 days, in seconds.
pub const MAX_SECONDS: u32 = 30 * 24 * 3600;
/// The furthest ahead a certificate rule may look, in days.
pub const MAX_CERT_DAYS: u32 = 365;
/// The highest CPU threshold accepted, in percent: Docker reports up to 100 % per core.
pub const MAX_CPU_PERCENT: f64 = 100_000.0;

/// How loud an alert is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, nothing to do.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The name as it appears in JSON (`"critical"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// The severity named `name` (as [`Severity::as_str`] writes it), if any.
    pub fn from_name(name: &str) -> Option<Severity> {
        [Self::Info, Self::Warning, Self::Critical]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// The memory level above which a [`RuleKind::MemoryAbove`] sample counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryThreshold {
    /// A share of the container's memory limit, in percent (0 < x ≤ 100). Samples that carry
    /// no limit do not count either way.
    Percent(f64),
    /// An absolute amount of memory, in bytes (> 0).
    Bytes(u64),
}

/// What a rule watches, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// A container stopped: fires for every `die` event with a non-zero exit code, or for
    /// every `die` event at all when `include_clean_exit` is set. Never resolves.
    ContainerExited {
        /// Whether an exit with code 0 fires too.
        #[serde(default)]
        include_clean_exit: bool,
    },
    /// A container restarted at least `restarts` times within `window_secs` seconds.
    /// Resolves once no restart happened for a whole window.
    RestartLoop {
        /// How many restarts make a loop (1 to [`MAX_COUNT`]).
        restarts: u32,
        /// The window the restarts must fall into, in seconds (1 to [`MAX_SECONDS`]).
        window_secs: u32,
    },
    /// A container's CPU use was above `percent` for `samples` consecutive samples.
    /// Resolves at the first sample at or below the threshold.
    CpuAbove {
        /// The threshold in percent of one core (0 < x ≤ [`MAX_CPU_PERCENT`]).
        percent: f64,
        /// How many consecutive samples must be above (1 to [`MAX_COUNT`]).
        samples: u32,
    },
    /// A container's memory use was above `threshold` for `samples` consecutive samples.
    /// Resolves at the first sample at or below the threshold.
    MemoryAbove {
        /// The threshold.
        threshold: MemoryThreshold,
        /// How many consecutive samples must be above (1 to [`MAX_COUNT`]).
        samples: u32,
    },
    /// A certificate expires within `within_days` days. Resolves when a renewed certificate
    /// (a later `not_after`) is observed.
    CertificateExpiring {
        /// How many days ahead to warn (1 to [`MAX_CERT_DAYS`]).
        within_days: u32,
    },
    /// More than `percent` % of a host's requests over the last `window_secs` seconds were
    /// answered with a 5xx status, counting only when at least `min_requests` requests were
    /// seen (so one failed request out of one does not fire). Resolves when the share falls
    /// back to or under the threshold, or traffic falls under `min_requests`.
    Nginx5xxShare {
        /// The threshold in percent (0 ≤ x < 100).
        percent: f64,
        /// The window in seconds (1 to [`MAX_SECONDS`]).
        window_secs: u32,
        /// The fewest requests in the window for the share to count (at least 1).
        min_requests: u64,
    },
    /// An agent was not seen for more than `after_secs` seconds. Resolves when it is seen again.
    ///
    /// A connected agent is heard from once per heartbeat interval, so a delay shorter than
    /// [`min_agent_offline_secs`] of the server's interval would fire on a healthy agent:
    /// the server refuses such a rule ([`AlertRule::check_heartbeat`]).
    AgentOffline {
        /// How long an agent may stay silent, in seconds (from
        /// [`min_agent_offline_secs`] of the server's heartbeat interval, 70 with the
        /// default 30 s, to [`MAX_SECONDS`]).
        after_secs: u32,
    },
}

impl RuleKind {
    /// The kind's name as it appears in JSON (`"cpu_above"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::ContainerExited { .. } => "container_exited",
            Self::RestartLoop { .. } => "restart_loop",
            Self::CpuAbove { .. } => "cpu_above",
            Self::MemoryAbove { .. } => "memory_above",
            Self::CertificateExpiring { .. } => "certificate_expiring",
            Self::Nginx5xxShare { .. } => "nginx_5xx_share",
            Self::AgentOffline { .. } => "agent_offline",
        }
    }

    /// Whether the kind watches containers (and so whether a container filter applies).
    pub fn is_about_containers(&self) -> bool {
        matches!(
            self,
            Self::ContainerExited { .. }
                | Self::RestartLoop { .. }
                | Self::CpuAbove { .. }
                | Self::MemoryAbove { .. }
        )
    }

    fn validate(&self) -> Result<(), RuleError> {
        match *self {
            Self::ContainerExited { .. } => Ok(()),
            Self::RestartLoop {
                restarts,
                window_secs,
            } => {
                count("restarts", restarts)?;
                seconds("window_secs", window_secs)
            }
            Self::CpuAbove { percent, samples } => {
                if !(percent.is_finite() && percent > 0.0 && percent <= MAX_CPU_PERCENT) {
                    return Err(out_of_range(
                        "percent",
                        percent,
                        "a number above 0 and at most 100000",
                    ));
                }
                count("samples", samples)
            }
            Self::MemoryAbove { threshold, samples } => {
                match threshold {
                    MemoryThreshold::Percent(p) if !(p.is_finite() && p > 0.0 && p <= 100.0) => {
                        return Err(out_of_range(
                            "threshold.percent",
                            p,
                            "above 0 and at most 100",
                        ));
                    }
                    MemoryThreshold::Bytes(0) => {
                        return Err(out_of_range("threshold.bytes", 0, "at least 1"));
                    }
                    _ => {}
                }
                count("samples", samples)
            }
            Self::CertificateExpiring { within_days } => {
                if within_days == 0 || within_days > MAX_CERT_DAYS {
                    return Err(out_of_range("within_days", within_days, "1 to 365"));
                }
                Ok(())
            }
            Self::Nginx5xxShare {
                percent,
                window_secs,
                min_requests,
            } => {
                if !(percent.is_finite() && (0.0..100.0).contains(&percent)) {
                    return Err(out_of_range("percent", percent, "at least 0 and below 100"));
                }
                if min_requests == 0 {
                    return Err(out_of_range("min_requests", 0, "at least 1"));
                }
                seconds("window_secs", window_secs)
            }
            Self::AgentOffline { after_secs } => seconds("after_secs", after_secs),
        }
    }
}

/// Where a rule applies. An empty selector matches every agent; an empty container list
/// matches every container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Labels an agent must carry (all of them, with equal values) for the rule to apply.
    #[serde(default)]
    pub agent_selector: Labels,
    /// Container names the rule is limited to. Only allowed for container kinds.
    #[serde(default)]
    pub containers: Vec<ContainerName>,
}

impl Scope {
    /// Whether an agent with `labels` is in scope.
    pub fn matches_agent(&self, labels: &Labels) -> bool {
        labels.matches(&self.agent_selector)
    }

    /// Whether a container named `name` is in scope (agent aside).
    pub fn matches_container(&self, name: &ContainerName) -> bool {
        self.containers.is_empty() || self.containers.contains(name)
    }
}

/// The plain, unchecked description of a rule, as stored and as sent over the API.
/// Turn it into an [`AlertRule`] with [`AlertRule::new`].
///
/// A field it does not know is refused: the kind's parameters are flattened into it, and
/// every key the rule's own fields do not take goes to [`RuleKind`], which refuses the keys
/// its kind does not have (`deny_unknown_fields` cannot sit on a struct with a flattened
/// field, so it sits on the kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertRuleSpec {
    /// The rule's id.
    pub id: AlertRuleId,
    /// A human-readable name, 1 to 200 characters, no control characters.
    pub name: String,
    /// What to watch.
    #[serde(flatten)]
    pub kind: RuleKind,
    /// Where to watch.
    #[serde(default)]
    pub scope: Scope,
    /// How loud the alert is.
    pub severity: Severity,
    /// The least time between two firings for the same subject, in seconds (0 to [`MAX_SECONDS`]).
    #[serde(default)]
    pub cooldown_secs: u32,
    /// Whether the rule is evaluated at all.
    pub enabled: bool,
    /// Whether a resolution should be notified (resolutions are reported either way, so the
    /// server can close the alert).
    #[serde(default)]
    pub notify_on_resolve: bool,
}

/// A validated alert rule: parameters in range, a usable name, a scope that fits the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AlertRuleSpec", into = "AlertRuleSpec")]
pub struct AlertRule {
    spec: AlertRuleSpec,
}

impl AlertRule {
    /// Checks `spec` and wraps it.
    pub fn new(spec: AlertRuleSpec) -> Result<Self, RuleError> {
        let chars = spec.name.chars().count();
        if spec.name.trim().is_empty() || chars > MAX_NAME_CHARS {
            return Err(RuleError::InvalidName {
                name: spec.name,
                reason: "must be 1 to 200 characters and not blank",
            });
        }
        if spec.name.chars().any(char::is_control) {
            return Err(RuleError::InvalidName {
                name: spec.name,
                reason: "must not contain control characters",
            });
        }
        spec.kind.validate()?;
        seconds("cooldown_secs", spec.cooldown_secs)?;
        if !spec.scope.containers.is_empty() && !spec.kind.is_about_containers() {
            return Err(RuleError::ContainerScopeNotApplicable {
                kind: spec.kind.name(),
            });
        }
        Ok(Self { spec })
    }

    /// The checked description.
    pub fn spec(&self) -> &AlertRuleSpec {
        &self.spec
    }

    /// The rule's id.
    pub fn id(&self) -> AlertRuleId {
        self.spec.id
    }

    /// What the rule watches.
    pub fn kind(&self) -> &RuleKind {
        &self.spec.kind
    }

    /// Where the rule applies.
    pub fn scope(&self) -> &Scope {
        &self.spec.scope
    }

    /// The cooldown in seconds.
    pub fn cooldown_secs(&self) -> i64 {
        i64::from(self.spec.cooldown_secs)
    }

    /// Checks the rule against the interval at which connected agents send heartbeats: an
    /// `agent_offline` rule must wait at least [`min_agent_offline_secs`] of it, or it would
    /// fire between two heartbeats of a connected agent. Other kinds always pass.
    pub fn check_heartbeat(&self, heartbeat_secs: u32) -> Result<(), RuleError> {
        let minimum = min_agent_offline_secs(heartbeat_secs);
        match self.spec.kind {
            RuleKind::AgentOffline { after_secs } if after_secs < minimum => {
                Err(RuleError::ShorterThanHeartbeat {
                    parameter: "after_secs",
                    value: after_secs,
                    minimum,
                    heartbeat_secs,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The shortest silence after which an agent may be called offline, for agents that send a
/// heartbeat every `heartbeat_secs`: two intervals plus ten seconds, the same grace by which
/// the server stops showing an agent online (one heartbeat may be late or lost).
pub fn min_agent_offline_secs(heartbeat_secs: u32) -> u32 {
    heartbeat_secs.saturating_mul(2).saturating_add(10)
}

impl TryFrom<AlertRuleSpec> for AlertRule {
    type Error = RuleError;

    fn try_from(spec: AlertRuleSpec) -> Result<Self, Self::Error> {
        Self::new(spec)
    }
}

impl From<AlertRule> for AlertRuleSpec {
    fn from(rule: AlertRule) -> Self {
        rule.spec
    }
}

impl schemars::JsonSchema for AlertRule {
    fn schema_name() -> String {
        "AlertRule".to_owned()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        AlertRuleSpec::json_schema(generator)
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The name is blank, too long or contains control characters.
    #[error("alert rule name {name:?} {reason}")]
    InvalidName {
        /// The refused name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A numeric parameter is outside its range.
    #[error("alert rule parameter {parameter} must be {expected} (got {value})")]
    ParameterOutOfRange {
        /// The parameter's name.
        parameter: &'static str,
        /// The refused value, as text.
        value: String,
        /// The accepted range, in words.
        expected: &'static str,
    },
    /// An `agent_offline` delay shorter than the heartbeat interval allows: it would fire on
    /// connected agents between two heartbeats.
    #[error(
        "alert rule parameter {parameter} must be at least {minimum} seconds (two heartbeat intervals of {heartbeat_secs} s plus 10 s), or it fires on connected agents between heartbeats (got {value})"
    )]
    ShorterThanHeartbeat {
        /// The parameter's name (`after_secs`).
        parameter: &'static str,
        /// The refused value, in seconds.
        value: u32,
        /// The shortest delay accepted, in seconds.
        minimum: u32,
        /// The server's heartbeat interval, in seconds.
        heartbeat_secs: u32,
    },
    /// A container filter was given for a kind that does not watch containers.
    #[error("a {kind} rule does not watch containers; remove the container filter from its scope")]
    ContainerScopeNotApplicable {
        /// The rule kind.
        kind: &'static str,
    },
}

fn out_of_range(
    parameter: &'static str,
    value: impl ToString,
    expected: &'static str,
) -> RuleError {
    RuleError::ParameterOutOfRange {
        parameter,
        value: value.to_string(),
        expected,
    }
}

fn count(parameter: &'static str, value: u32) -> Result<(), RuleError> {
    if value == 0 || value > MAX_COUNT {
        return Err(out_of_range(parameter, value, "1 to 1000"));
    }
    Ok(())
}

fn seconds(parameter: &'static str, value: u32) -> Result<(), RuleError> {
    let min = u32::from(parameter != "cooldown_secs");
    if value < min || value > MAX_SECONDS {
        return Err(out_of_range(
            parameter,
            value,
            "within 30 days (2592000 seconds)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_names_match_json() {
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(Severity::from_name(s.as_str()), Some(s));
        }
        assert_eq!(Severity::from_name("loud"), None);
    }
    use crate::alerts::test_support::spec;

    fn check(kind: RuleKind, expected_error: Option<&str>) {
        let got = AlertRule::new(spec(kind.clone()))
            .err()
            .map(|e| e.to_string());
        match (got, expected_error) {
            (None, None) => {}
            (Some(err), Some(want)) => assert!(err.contains(want), "{kind:?}: {err}"),
            (got, want) => panic!("{kind:?}: got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn parameters_are_range_checked() {
        check(
            RuleKind::ContainerExited {
                include_clean_exit: true,
            },
            None,
        );
        check(
            RuleKind::RestartLoop {
                restarts: 3,
                window_secs: 300,
            },
            None,
        );
        check(
            RuleKind::RestartLoop {
                restarts: 0,
                window_secs: 300,
            },
            Some("restarts"),
        );
        check(
            RuleKind::RestartLoop {
                restarts: 3,
                window_secs: 0,
            },
            Some("window_secs"),
        );
        check(
            RuleKind::CpuAbove {
                percent: 90.0,
                samples: 3,
            },
            None,
        );
        check(
            RuleKind::CpuAbove {
                percent: f64::NAN,
                samples: 3,
            },
            Some("percent"),
        );
        check(
            RuleKind::CpuAbove {
                percent: 0.0,
                samples: 3,
            },
            Some("percent"),
        );
        check(
            RuleKind::CpuAbove {
                percent: 50.0,
                samples: 1001,
            },
            Some("samples"),
        );
        check(
            RuleKind::MemoryAbove {
                threshold: MemoryThreshold::Percent(101.0),
                samples: 1,
            },
            Some("threshold.percent"),
        );
        check(
            RuleKind::MemoryAbove {
                threshold: MemoryThreshold::Bytes(0),
                samples: 1,
            },
            Some("threshold.bytes"),
        );
        check(
            RuleKind::CertificateExpiring { within_days: 0 },
            Some("within_days"),
        );
        check(
            RuleKind::Nginx5xxShare {
                percent: 100.0,
                window_secs: 60,
                min_requests: 10,
            },
            Some("percent"),
        );
        check(
            RuleKind::Nginx5xxShare {
                percent: 5.0,
                window_secs: 60,
                min_requests: 0,
            },
            Some("min_requests"),
        );
        check(
            RuleKind::AgentOffline {
                after_secs: MAX_SECONDS + 1,
            },
            Some("after_secs"),
        );
    }

    #[test]
    fn names_and_scopes_are_checked() {
        let mut s = spec(RuleKind::AgentOffline { after_secs: 60 });
        s.name = " ".to_owned();
        assert!(matches!(
            AlertRule::new(s.clone()),
            Err(RuleError::InvalidName { .. })
        ));
        s.name = "a\nb".to_owned();
        assert!(matches!(
            AlertRule::new(s.clone()),
            Err(RuleError::InvalidName { .. })
        ));
        s.name = "offline".to_owned();
        s.scope
            .containers
            .push(ContainerName::parse("web").unwrap());
        let err = AlertRule::new(s).unwrap_err();
        assert!(err.to_string().contains("agent_offline"), "{err}");
    }

    #[test]
    fn an_offline_delay_must_outlast_two_heartbeats() {
        // Every heartbeat interval an operator is likely to set, each side of the bound.
        for heartbeat in [1, 5, 10, 30, 60, 300] {
            let minimum = min_agent_offline_secs(heartbeat);
            assert_eq!(minimum, 2 * heartbeat + 10);
            for (after_secs, ok) in [(1, false), (minimum - 1, false), (minimum, true)] {
                let rule = AlertRule::new(spec(RuleKind::AgentOffline { after_secs })).unwrap();
                match rule.check_heartbeat(heartbeat) {
                    Ok(()) => assert!(ok, "{after_secs} s accepted with {heartbeat} s"),
                    Err(e) => {
                        assert!(!ok, "{after_secs} s refused with {heartbeat} s: {e}");
                        assert!(matches!(
                            e,
                            RuleError::ShorterThanHeartbeat { parameter: "after_secs", value, minimum: m, .. }
                                if value == after_secs && m == minimum
                        ));
                        assert!(e.to_string().contains("after_secs"), "{e}");
                    }
                }
            }
        }
        // Other kinds do not depend on the heartbeat.
        let cpu = AlertRule::new(spec(RuleKind::CpuAbove {
            percent: 90.0,
            samples: 1,
        }))
        .unwrap();
        assert!(cpu.check_heartbeat(300).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let rule = AlertRule::new(spec(RuleKind::AgentOffline { after_secs: 120 })).unwrap();
        let json = serde_json::to_value(&rule).unwrap();
        assert!(serde_json::from_value::<AlertRuleSpec>(json.clone()).is_ok());
        let mut top = json.clone();
        top["zz_unknown"] = true.into();
        let err = serde_json::from_value::<AlertRuleSpec>(top).unwrap_err();
        assert!(err.to_string().contains("zz_unknown"), "{err}");
        let mut nested = json;
        nested["scope"]["zz_unknown"] = true.into();
        let err = serde_json::from_value::<AlertRuleSpec>(nested).unwrap_err();
        assert!(err.to_string().contains("zz_unknown"), "{err}");
    }

    #[test]
    fn json_goes_through_validation() {
        let rule = AlertRule::new(spec(RuleKind::CpuAbove {
            percent: 90.0,
            samples: 3,
        }))
        .unwrap();
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["kind"], "cpu_above");
        assert_eq!(json["samples"], 3);
        assert_eq!(
            serde_json::from_value::<AlertRule>(json.clone()).unwrap(),
            rule
        );
        let mut bad = json;
        bad["samples"] = 0.into();
        let err = serde_json::from_value::<AlertRule>(bad).unwrap_err();
        assert!(err.to_string().contains("samples"), "{err}");
    }
}
