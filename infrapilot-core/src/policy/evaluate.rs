//! Evaluating a resource against a [`PolicySet`].

use serde::Serialize;
use serde_json::Value;

use super::action::{ActionKind, Decision, PolicyAction};
use super::compile::{LeafNode, Node, Op, mismatch_message};
use super::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use super::document::Policy;
use super::message::render_value;
use super::path::{Resolver, render_steps};
use super::set::{CompiledPolicy, PolicySet};
use crate::ids::PolicyId;
use crate::values::Labels;

/// The most evidence entries kept per violation.
const MAX_EVIDENCE: usize = 16;

/// Facts about the request that are not part of the resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvalContext {
    /// The labels of the agent (Docker host) the operation runs on; matched against
    /// `applies_to.labels`.
    pub agent_labels: Labels,
    /// The environment the agent belongs to (`production`, `staging`, …); matched against
    /// `applies_to.environments`.
    pub environment: Option<String>,
    /// The current time, unix seconds; used by `older_than`.
    pub now: i64,
}

impl EvalContext {
    /// A context for an agent, taking the environment from its `env` label when it has one.
    pub fn for_agent(agent_labels: Labels, now: i64) -> Self {
        let environment = agent_labels.get("env").map(|v| v.as_str().to_owned());
        Self {
            agent_labels,
            environment,
            now,
        }
    }
}

/// The answer for one operation: a decision, the violations behind it, and diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Response {
    decision: Decision,
    violations: Vec<Violation>,
    diagnostics: Vec<Diagnostic>,
}

impl Response {
    /// `block` if any `block` policy fired, else `warn` if any `warn` policy fired, else `allow`
    /// (audit-only violations still allow).
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// Whether the operation may go ahead (`allow` or `warn`).
    pub fn is_allowed(&self) -> bool {
        self.decision != Decision::Block
    }

    /// Every policy that fired, in evaluation order (priority, then id).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Problems met while evaluating, such as an attribute of a type an operator cannot compare.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

/// One policy that fired.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Violation {
    /// The policy's id.
    pub policy_id: PolicyId,
    /// The policy's name.
    pub policy_name: String,
    /// What the policy does.
    pub action: PolicyAction,
    /// The rendered message (the policy's template, or its name when it has none).
    pub message: String,
    /// The attributes that made the condition true, with their actual values.
    pub evidence: Vec<Evidence>,
}

/// One attribute behind a violation.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Evidence {
    /// The concrete path (`mounts.1.source`; the written path when nothing resolved).
    pub path: String,
    /// The actual value; `None` when the attribute is absent.
    pub actual: Option<Value>,
}

impl PolicySet {
    /// Evaluates every enabled policy that applies to `action` in `context` against `resource`.
    ///
    /// Never fails and never panics: a comparison the data does not allow is a false leaf plus
    /// a diagnostic. Nothing is allocated for a policy that does not fire, except diagnostics.
    pub fn evaluate(
        &self,
        resource: &Value,
        action: ActionKind,
        context: &EvalContext,
    ) -> Response {
        let mut response = Response {
            decision: Decision::Allow,
            violations: Vec::new(),
            diagnostics: Vec::new(),
        };
        let mut resolver = Resolver::new(resource, &self.slots);
        for compiled in &self.compiled {
            let Some(policy) = self.policies.get(compiled.index) else {
                continue;
            };
            if !applies(compiled, policy, action, context) {
                continue;
            }
            let mut eval = Eval {
                resolver: &mut resolver,
                now: context.now,
                policy: policy.id,
                diagnostics: &mut response.diagnostics,
            };
            if eval.node(&compiled.root) {
                let violation = violation(policy, compiled, &mut resolver, context.now);
                response.decision = response.decision.max(policy.action.decision());
                response.violations.push(violation);
            }
        }
        response
    }
}

fn applies(
    compiled: &CompiledPolicy,
    policy: &Policy,
    action: ActionKind,
    context: &EvalContext,
) -> bool {
    if compiled.actions & action.bit() == 0 {
        return false;
    }
    let applies_to = &policy.applies_to;
    if !applies_to.environments.is_empty() {
        match &context.environment {
            Some(env) if applies_to.environments.iter().any(|e| e == env) => {}
            _ => return false,
        }
    }
    applies_to.labels.is_empty() || context.agent_labels.matches(&applies_to.labels)
}

struct Eval<'a, 't, 'v> {
    resolver: &'a mut Resolver<'t, 'v>,
    now: i64,
    policy: PolicyId,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Eval<'_, '_, '_> {
    fn node(&mut self, node: &Node) -> bool {
        match node {
            Node::All(children) => children.iter().all(|c| self.node(c)),
            Node::Any(children) => children.iter().any(|c| self.node(c)),
            Node::Not(child) => !self.node(child),
            Node::Leaf(leaf) => self.leaf(leaf),
        }
    }

    #[inline]
    fn leaf(&mut self, leaf: &LeafNode) -> bool {
        if let Op::Exists(want) = leaf.op {
            return self.resolver.any(&leaf.path, &mut |_| true) == want;
        }
        let now = self.now;
        let mut mismatch = None;
        let hit = self
            .resolver
            .any(&leaf.path, &mut |v| match leaf.op.test(v, now) {
                Ok(b) => b,
                Err(needed) => {
                    mismatch.get_or_insert((v, needed));
                    false
                }
            });
        if let (false, Some((actual, needed))) = (hit, mismatch) {
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                code: DiagnosticCode::TypeMismatch,
                policy: Some(self.policy),
                pointer: leaf.pointer.clone(),
                message: mismatch_message(leaf, actual, needed),
            });
        }
        hit
    }
}

fn violation(
    policy: &Policy,
    compiled: &CompiledPolicy,
    resolver: &mut Resolver<'_, '_>,
    now: i64,
) -> Violation {
    let mut evidence = Vec::new();
    let mut scratch = Vec::new();
    let mut eval = Eval {
        resolver,
        now,
        policy: policy.id,
        diagnostics: &mut scratch,
    };
    explain(&mut eval, &compiled.root, true, &mut evidence);
    let message = match &policy.message {
        Some(template) => {
            let (field, value) = evidence.first().map_or(("", None), |e: &Evidence| {
                (e.path.as_str(), e.actual.as_ref())
            });
            template.render(&policy.name, field, value)
        }
        None => match evidence.first() {
            Some(e) => format!(
                "{} ({} = {})",
                policy.name,
                e.path,
                render_value(e.actual.as_ref())
            ),
            None => policy.name.clone(),
        },
    };
    Violation {
        policy_id: policy.id,
        policy_name: policy.name.clone(),
        action: policy.action,
        message,
        evidence,
    }
}

/// Collects the attributes that make `node` evaluate to `want` (it is known to).
fn explain(eval: &mut Eval<'_, '_, '_>, node: &Node, want: bool, out: &mut Vec<Evidence>) {
    if out.len() >= MAX_EVIDENCE {
        return;
    }
    match node {
        Node::Not(child) => explain(eval, child, !want, out),
        // An `all` that is true, or an `any` that is false, needs every child; otherwise the
        // children that decided it are the ones with the wanted value.
        Node::All(children) | Node::Any(children) => {
            for child in children.iter() {
                if eval.node(child) == want {
                    explain(eval, child, want, out);
                }
            }
        }
        Node::Leaf(leaf) => {
            let now = eval.now;
            let mut found = None;
            let matcher = |v: &Value| match leaf.op {
                Op::Exists(_) => true,
                ref op => op.test(v, now).unwrap_or(false) == want,
            };
            leaf.path
                .any_with_steps(eval.resolver.root(), &mut |steps, v| {
                    if matcher(v) {
                        found = Some((render_steps(steps), v.clone()));
                        true
                    } else {
                        false
                    }
                });
            let entry = match found {
                Some((path, actual)) => Evidence {
                    path,
                    actual: Some(actual),
                },
                None => Evidence {
                    path: leaf.field.clone(),
                    actual: None,
                },
            };
            if !out.iter().any(|e| e.path == entry.path) {
                out.push(entry);
            }
        }
    }
}
