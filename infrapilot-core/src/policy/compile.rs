//! Compiling a condition: paths split once, operands checked and converted, regexes built once.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use super::document::{Condition, Operator};
use super::path::AttributePath;
use super::shape::kind;
use crate::ids::PolicyId;

/// The deepest a condition may be nested.
pub const MAX_DEPTH: usize = 32;
/// The most nodes (leaves and combinators) one condition may have.
pub const MAX_NODES: usize = 1024;
/// The longest `matches` pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Compiled regex size limit, so a pattern cannot make compilation explode.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a set of policies cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// A leaf's `field` is not a valid attribute path.
    #[error("policy {policy}: at {pointer}: attribute path {path:?} {reason}")]
    InvalidPath {
        /// The policy.
        policy: PolicyId,
        /// Where in the policy document.
        pointer: String,
        /// The path as written.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `matches` pattern does not compile.
    #[error("policy {policy}: at {pointer}: regular expression {pattern:?} is invalid: {reason}")]
    InvalidRegex {
        /// The policy.
        policy: PolicyId,
        /// Where in the policy document.
        pointer: String,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// An operand does not suit its operator.
    #[error("policy {policy}: at {pointer}: operator {operator} cannot take {value}: {reason}")]
    InvalidOperand {
        /// The policy.
        policy: PolicyId,
        /// Where in the policy document.
        pointer: String,
        /// The operator.
        operator: Operator,
        /// The operand, as compact JSON.
        value: String,
        /// What the operator needs.
        reason: String,
    },
    /// The condition is nested deeper than [`MAX_DEPTH`].
    #[error("policy {policy}: at {pointer}: conditions may be nested at most {limit} deep")]
    TooDeep {
        /// The policy.
        policy: PolicyId,
        /// Where the limit was crossed.
        pointer: String,
        /// The limit.
        limit: usize,
    },
    /// The condition has more than [`MAX_NODES`] nodes.
    #[error("policy {policy}: a condition may have at most {limit} nodes")]
    TooLarge {
        /// The policy.
        policy: PolicyId,
        /// The limit.
        limit: usize,
    },
    /// Two policies in one set share an id.
    #[error("two policies share the id {policy}")]
    DuplicateId {
        /// The shared id.
        policy: PolicyId,
    },
}

/// A compiled condition node.
#[derive(Debug)]
pub(crate) enum Node {
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Leaf(Box<LeafNode>),
}

/// A compiled leaf.
#[derive(Debug)]
pub(crate) struct LeafNode {
    pub(crate) field: String,
    pub(crate) path: AttributePath,
    pub(crate) op: Op,
    pub(crate) pointer: String,
}

/// A compiled operator with its converted operand.
#[derive(Debug)]
pub(crate) enum Op {
    Equals(Value),
    NotEquals(Value),
    Contains(Value),
    GreaterThan(f64),
    LessThan(f64),
    In(Box<[Value]>),
    NotIn(Box<[Value]>),
    Exists(bool),
    Matches(Regex),
    OlderThan(f64),
}

/// A problem with one node, before it is tied to a policy.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pointer: String,
    kind: ProblemKind,
}

#[derive(Debug, Clone)]
enum ProblemKind {
    InvalidPath {
        path: String,
        reason: String,
    },
    InvalidRegex {
        pattern: String,
        reason: String,
    },
    InvalidOperand {
        operator: Operator,
        value: String,
        reason: String,
    },
    TooDeep,
    TooLarge,
}

impl Problem {
    pub(crate) fn into_error(self, policy: PolicyId) -> CompileError {
        let pointer = self.pointer;
        match self.kind {
            ProblemKind::InvalidPath { path, reason } => CompileError::InvalidPath {
                policy,
                pointer,
                path,
                reason,
            },
            ProblemKind::InvalidRegex { pattern, reason } => CompileError::InvalidRegex {
                policy,
                pointer,
                pattern,
                reason,
            },
            ProblemKind::InvalidOperand {
                operator,
                value,
                reason,
            } => CompileError::InvalidOperand {
                policy,
                pointer,
                operator,
                value,
                reason,
            },
            ProblemKind::TooDeep => CompileError::TooDeep {
                policy,
                pointer,
                limit: MAX_DEPTH,
            },
            ProblemKind::TooLarge => CompileError::TooLarge {
                policy,
                limit: MAX_NODES,
            },
        }
    }

    pub(crate) fn to_diagnostic(&self, policy: Option<PolicyId>) -> Diagnostic {
        let code = match self.kind {
            ProblemKind::InvalidPath { .. } => DiagnosticCode::InvalidPath,
            ProblemKind::InvalidRegex { .. } => DiagnosticCode::InvalidRegex,
            ProblemKind::InvalidOperand { .. } => DiagnosticCode::InvalidOperand,
            ProblemKind::TooDeep => DiagnosticCode::TooDeep,
            ProblemKind::TooLarge => DiagnosticCode::TooLarge,
        };
        Diagnostic {
            severity: Severity::Error,
            code,
            policy,
            pointer: self.pointer.clone(),
            message: self.message(),
        }
    }

    fn message(&self) -> String {
        match &self.kind {
            ProblemKind::InvalidPath { path, reason } => {
                format!("attribute path {path:?} {reason}")
            }
            ProblemKind::InvalidRegex { pattern, reason } => {
                format!("regular expression {pattern:?} is invalid: {reason}")
            }
            ProblemKind::InvalidOperand {
                operator,
                value,
                reason,
            } => {
                format!("operator {operator} cannot take {value}: {reason}")
            }
            ProblemKind::TooDeep => format!("conditions may be nested at most {MAX_DEPTH} deep"),
            ProblemKind::TooLarge => format!("a condition may have at most {MAX_NODES} nodes"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message())
        } else {
            write!(f, "at {}: {}", self.pointer, self.message())
        }
    }
}

/// Checks a condition without keeping the compiled form; pointers are relative to it.
pub(crate) fn check_condition(condition: &Condition, problems: &mut Vec<Problem>) {
    let mut nodes = 0;
    compile_node(condition, &mut String::new(), 0, &mut nodes, problems);
}

/// Compiles `condition`, whose JSON pointer is `pointer`. Every problem is pushed to `problems`;
/// the result is `None` when there was any.
pub(crate) fn compile_condition(
    condition: &Condition,
    pointer: &str,
    problems: &mut Vec<Problem>,
) -> Option<Node> {
    let mut nodes = 0;
    compile_node(condition, &mut pointer.to_owned(), 0, &mut nodes, problems)
}

fn compile_node(
    condition: &Condition,
    pointer: &mut String,
    depth: usize,
    nodes: &mut usize,
    problems: &mut Vec<Problem>,
) -> Option<Node> {
    if depth > MAX_DEPTH {
        problems.push(Problem {
            pointer: pointer.clone(),
            kind: ProblemKind::TooDeep,
        });
        return None;
    }
    *nodes += 1;
    if *nodes == MAX_NODES + 1 {
        problems.push(Problem {
            pointer: String::new(),
            kind: ProblemKind::TooLarge,
        });
    }
    let mut children = |name: &str, items: &[Condition], pointer: &mut String| {
        let base = pointer.len();
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            pointer.truncate(base);
            pointer.push('/');
            pointer.push_str(name);
            pointer.push('/');
            pointer.push_str(&i.to_string());
            match compile_node(item, pointer, depth + 1, nodes, problems) {
                Some(n) => out.push(n),
                None => ok = false,
            }
        }
        pointer.truncate(base);
        ok.then(|| out.into_boxed_slice())
    };
    let node = match condition {
        Condition::All(items) => Node::All(children("all", items, pointer)?),
        Condition::Any(items) => Node::Any(children("any", items, pointer)?),
        Condition::Not(child) => {
            let base = pointer.len();
            pointer.push_str("/not");
            let inner = compile_node(child, pointer, depth + 1, nodes, problems);
            pointer.truncate(base);
            Node::Not(Box::new(inner?))
        }
        Condition::Leaf(leaf) => {
            let path = AttributePath::parse(&leaf.field).map_err(|reason| Problem {
                pointer: format!("{pointer}/field"),
                kind: ProblemKind::InvalidPath {
                    path: leaf.field.clone(),
                    reason,
                },
            });
            let op = compile_op(leaf.operator, &leaf.value).map_err(|kind| Problem {
                pointer: format!("{pointer}/value"),
                kind,
            });
            match (path, op) {
                (Ok(path), Ok(op)) => Node::Leaf(Box::new(LeafNode {
                    field: leaf.field.clone(),
                    path,
                    op,
                    pointer: pointer.clone(),
                })),
                (path, op) => {
                    problems.extend(path.err());
                    problems.extend(op.err());
                    return None;
                }
            }
        }
    };
    (*nodes <= MAX_NODES).then_some(node)
}

fn compile_op(operator: Operator, value: &Value) -> Result<Op, ProblemKind> {
    let bad = |reason: &str| ProblemKind::InvalidOperand {
        operator,
        value: truncated_json(value),
        reason: reason.to_owned(),
    };
    let number = || {
        value
            .as_f64()
            .ok_or_else(|| bad("the value must be a number"))
    };
    let array = || match value {
        Value::Array(items) => Ok(items.clone().into_boxed_slice()),
        _ => Err(bad("the value must be an array")),
    };
    Ok(match operator {
        Operator::Equals | Operator::NotEquals | Operator::Contains if value.is_null() => {
            return Err(bad(
                "null never matches, because null counts as absent; use exists",
            ));
        }
        Operator::Equals => Op::Equals(value.clone()),
        Operator::NotEquals => Op::NotEquals(value.clone()),
        Operator::Contains => Op::Contains(value.clone()),
        Operator::GreaterThan => Op::GreaterThan(number()?),
        Operator::LessThan => Op::LessThan(number()?),
        Operator::In => Op::In(array()?),
        Operator::NotIn => Op::NotIn(array()?),
        Operator::Exists => Op::Exists(
            value
                .as_bool()
                .ok_or_else(|| bad("the value must be true or false"))?,
        ),
        Operator::Matches => {
            let Value::String(pattern) = value else {
                return Err(bad("the value must be a regular expression string"));
            };
            if pattern.len() > MAX_PATTERN_LEN {
                return Err(bad(&format!(
                    "patterns may be at most {MAX_PATTERN_LEN} bytes"
                )));
            }
            let regex = RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| ProblemKind::InvalidRegex {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
            Op::Matches(regex)
        }
        Operator::OlderThan => {
            let seconds = number()?;
            if seconds < 0.0 {
                return Err(bad(
                    "the value is a number of seconds and must not be negative",
                ));
            }
            Op::OlderThan(seconds)
        }
    })
}

fn truncated_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 128 {
        let cut: String = text.chars().take(128).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The attribute has a type the operator cannot compare; carries what it needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mismatch(pub(crate) &'static str);

impl Op {
    /// Applies the operator to one present (non-null) attribute value. Not for `Exists`,
    /// which looks at presence, not at a value.
    #[inline]
    pub(crate) fn test(&self, actual: &Value, now: i64) -> Result<bool, Mismatch> {
        match self {
            Op::Equals(v) => Ok(json_eq(actual, v)),
            Op::NotEquals(v) => Ok(!json_eq(actual, v)),
            Op::Contains(v) => match (actual, v) {
                (Value::String(s), Value::String(needle)) => Ok(s.contains(needle.as_str())),
                (Value::Array(items), v) => Ok(items.iter().any(|item| json_eq(item, v))),
                (Value::String(_), _) => Err(Mismatch("an array (the value is not a string)")),
                _ => Err(Mismatch("a string or an array")),
            },
            Op::GreaterThan(n) => number(actual).map(|a| a > *n),
            Op::LessThan(n) => number(actual).map(|a| a < *n),
            Op::In(items) => Ok(items.iter().any(|item| json_eq(actual, item))),
            Op::NotIn(items) => Ok(!items.iter().any(|item| json_eq(actual, item))),
            Op::Exists(_) => Ok(true),
            Op::Matches(re) => match actual {
                Value::String(s) => Ok(re.is_match(s)),
                _ => Err(Mismatch("a string")),
            },
            // i64 -> f64 loses precision only beyond 2^53 seconds, far outside any real clock.
            #[allow(clippy::cast_precision_loss)]
            Op::OlderThan(seconds) => number(actual).map(|created| now as f64 - created > *seconds),
        }
    }
}

#[inline]
fn number(v: &Value) -> Result<f64, Mismatch> {
    match v {
        Value::Number(n) => n.as_f64().ok_or(Mismatch("a number")),
        _ => Err(Mismatch("a number")),
    }
}

/// Deep JSON equality with numbers compared by value, so `1` equals `1.0`.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// Describes a mismatch for a diagnostic.
pub(crate) fn mismatch_message(leaf: &LeafNode, actual: &Value, needed: Mismatch) -> String {
    format!(
        "attribute {} is {} ({}); operator {} needs {}, so this leaf is false",
        leaf.field,
        kind(actual),
        truncated_json(actual),
        leaf_operator_name(&leaf.op),
        needed.0
    )
}

fn leaf_operator_name(op: &Op) -> &'static str {
    match op {
        Op::Equals(_) => "equals",
        Op::NotEquals(_) => "not_equals",
        Op::Contains(_) => "contains",
        Op::GreaterThan(_) => "greater_than",
        Op::LessThan(_) => "less_than",
        Op::In(_) => "in",
        Op::NotIn(_) => "not_in",
        Op::Exists(_) => "exists",
        Op::Matches(_) => "matches",
        Op::OlderThan(_) => "older_than",
    }
}
