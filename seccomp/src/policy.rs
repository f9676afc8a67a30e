//! The parsed form of a policy: per syscall, the argument conditions that allow it and what
//! happens otherwise. Also the reference semantics (`evaluate`) the compiled BPF must match.

use serde::Serialize;
use std::fmt;

use crate::action::{Action, DefaultAction};
use crate::bpf::SeccompData;
use crate::error::Location;

/// A comparison operator of the policy language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<` (unsigned, 64-bit)
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&`: at least one bit of the mask is set in the argument.
    AnyBits,
    /// `in`: the argument has no bit outside the mask.
    InMask,
}

impl Op {
    /// Whether `arg OP value` holds.
    pub fn holds(self, arg: u64, value: u64) -> bool {
        match self {
            Op::Eq => arg == value,
            Op::Ne => arg != value,
            Op::Lt => arg < value,
            Op::Le => arg <= value,
            Op::Gt => arg > value,
            Op::Ge => arg >= value,
            Op::AnyBits => arg & value != 0,
            Op::InMask => arg & !value == 0,
        }
    }

    /// The operator as written in a policy.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::AnyBits => "&",
            Op::InMask => "in",
        }
    }

    pub(crate) fn from_symbol(s: &str) -> Option<Op> {
        [
            Op::Eq,
            Op::Ne,
            Op::Lt,
            Op::Le,
            Op::Gt,
            Op::Ge,
            Op::AnyBits,
            Op::InMask,
        ]
        .into_iter()
        .find(|op| op.symbol() == s)
    }
}

/// One `argN OP value` comparison; arguments are 64-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Comparison {
    /// Argument index, 0 to 5.
    pub arg: usize,
    /// The operator.
    pub op: Op,
    /// The constant, already evaluated.
    pub value: u64,
}

impl Comparison {
    /// Whether the comparison holds for these syscall arguments.
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        self.op.holds(args[self.arg], self.value)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arg{} {} {:#x}", self.arg, self.op.symbol(), self.value)
    }
}

/// A conjunction: every comparison must hold.
pub type Clause = Vec<Comparison>;

/// One line of the policy that contributed to a syscall's rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Definition {
    /// Where the line is (the syscall name).
    pub at: Location,
    /// What follows the colon, as written.
    pub text: String,
}

/// Everything a policy says about one syscall, all its lines merged as minijail merges them:
/// the syscall is allowed when any clause of any line holds; otherwise the unconditional
/// action (`return E`, `trap` ...) applies if one was given, else the default action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyscallRule {
    pub(crate) name: &'static str,
    pub(crate) nr: i64,
    pub(crate) allow_if: Vec<Clause>,
    pub(crate) otherwise: Option<Action>,
    pub(crate) otherwise_at: Option<Location>,
    pub(crate) definitions: Vec<Definition>,
}

impl SyscallRule {
    /// The syscall's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The syscall's x86_64 number.
    pub fn nr(&self) -> i64 {
        self.nr
    }

    /// The clauses (disjunction of conjunctions) under which it is allowed.
    pub fn allow_if(&self) -> &[Clause] {
        &self.allow_if
    }

    /// The action when no clause holds; `None` means the policy's default action.
    pub fn otherwise(&self) -> Option<Action> {
        self.otherwise
    }

    /// The policy lines that make up this rule, in order.
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }

    /// Whether any argument values at all are allowed.
    pub fn is_unconditional_allow(&self) -> bool {
        self.otherwise.is_some_and(Action::runs)
    }

    /// The action for these arguments; `None` means the policy's default action.
    pub fn action_for(&self, args: &[u64; 6]) -> Option<Action> {
        let allowed = self
            .allow_if
            .iter()
            .any(|clause| clause.iter().all(|c| c.holds(args)));
        if allowed {
            Some(Action::Allow)
        } else {
            self.otherwise
        }
    }

    /// The rule in policy syntax, one line per definition (`name: text`).
    pub fn to_policy_text(&self) -> String {
        let lines: Vec<String> = self
            .definitions
            .iter()
            .map(|d| format!("{}: {}", self.name, d.text))
            .collect();
        lines.join("\n")
    }
}

/// A parsed policy, includes resolved: the rules for every syscall it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) rules: Vec<SyscallRule>,
}

impl Policy {
    /// The name the policy was read under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule of every syscall the policy names, in order of first appearance.
    pub fn syscalls(&self) -> &[SyscallRule] {
        &self.rules
    }

    /// The rule for one syscall, by name.
    pub fn rule(&self, name: &str) -> Option<&SyscallRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The action the policy text prescribes for `data`, computed directly from the rules
    /// (no BPF): the reference the compiled program is tested against.
    pub fn evaluate(&self, data: &SeccompData, default: DefaultAction) -> Action {
        if data.arch != crate::bpf::AUDIT_ARCH_X86_64 || data.nr & crate::bpf::X32_SYSCALL_BIT != 0
        {
            return Action::KillProcess;
        }
        self.rules
            .iter()
            .find(|r| r.nr == i64::from(data.nr))
            .and_then(|r| r.action_for(&data.args))
            .unwrap_or_else(|| default.into())
    }
}
