//! A compiled, ordered set of policies.

use std::collections::BTreeSet;

use super::compile::{CompileError, Node, compile_condition};
use super::document::Policy;
use super::path::SlotTable;

/// Policies compiled once for fast, repeated evaluation.
///
/// Compiling splits every attribute path into segments, converts and checks every operand,
/// builds every regular expression and orders the policies by priority (higher first, ties by
/// id). Disabled policies are kept (see [`PolicySet::policies`]) but never evaluated.
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) policies: Vec<Policy>,
    pub(crate) compiled: Vec<CompiledPolicy>,
    pub(crate) slots: SlotTable,
}

/// One enabled policy, ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    /// Index into `PolicySet::policies`.
    pub(crate) index: usize,
    /// Bit set of the `ActionKind`s it applies to; `u16::MAX` for all.
    pub(crate) actions: u16,
    pub(crate) root: Node,
}

impl PolicySet {
    /// Compiles `policies`, or returns the first problem found.
    pub fn compile(policies: impl IntoIterator<Item = Policy>) -> Result<Self, CompileError> {
        let mut policies: Vec<Policy> = policies.into_iter().collect();
        policies.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        let mut seen = BTreeSet::new();
        let mut compiled = Vec::new();
        let mut slots = SlotTable::default();
        for (index, policy) in policies.iter().enumerate() {
            if !seen.insert(policy.id) {
                return Err(CompileError::DuplicateId { policy: policy.id });
            }
            let mut problems = Vec::new();
            let root = compile_condition(&policy.condition, "/condition", &mut problems);
            if let Some(first) = problems.into_iter().next() {
                return Err(first.into_error(policy.id));
            }
            let Some(mut root) = root else {
                // Compilation only fails with a problem; this keeps the invariant visible.
                continue;
            };
            if !policy.enabled {
                continue;
            }
            let actions = if policy.applies_to.actions.is_empty() {
                u16::MAX
            } else {
                policy
                    .applies_to
                    .actions
                    .iter()
                    .fold(0, |acc, a| acc | a.bit())
            };
            intern_paths(&mut root, &mut slots);
            compiled.push(CompiledPolicy {
                index,
                actions,
                root,
            });
        }
        Ok(Self {
            policies,
            compiled,
            slots,
        })
    }

    /// An empty set: every evaluation allows.
    pub fn empty() -> Self {
        Self {
            policies: Vec::new(),
            compiled: Vec::new(),
            slots: SlotTable::default(),
        }
    }

    /// All policies, enabled or not, in evaluation order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// How many policies the set holds (enabled or not).
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether the set holds no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

fn intern_paths(node: &mut Node, slots: &mut SlotTable) {
    match node {
        Node::All(children) | Node::Any(children) => {
            children.iter_mut().for_each(|c| intern_paths(c, slots));
        }
        Node::Not(child) => intern_paths(child, slots),
        Node::Leaf(leaf) => slots.intern(&mut leaf.path),
    }
}
