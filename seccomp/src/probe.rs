//! Asking a compiled policy questions: "what happens to syscall N with these arguments?"
//!
//! Audit and diff answer through the BPF program the kernel would run, not through the
//! rules, so a compiler bug or a surprising mask shows up in their answers.

use seccompiler::BpfProgram;

use crate::action::{Action, DefaultAction};
use crate::bpf::SeccompData;
use crate::error::CompileError;
use crate::policy::{Op, Policy, SyscallRule};
use crate::tables::syscall_number;

/// A policy compiled with the kill-process default, ready to be probed.
pub(crate) struct Prober<'p> {
    pub policy: &'p Policy,
    program: BpfProgram,
}

impl<'p> Prober<'p> {
    pub fn new(policy: &'p Policy) -> Result<Self, CompileError> {
        let program = policy.compile(DefaultAction::KillProcess)?;
        Ok(Prober { policy, program })
    }

    /// The action for `nr(args)`; a program our compiler built always runs to a verdict,
    /// and a failure to run counts as the kernel's refusal.
    pub fn action(&self, nr: i64, args: [u64; 6]) -> Action {
        crate::check(&self.program, &SeccompData::x86_64(nr, args)).unwrap_or(Action::KillProcess)
    }

    /// Whether syscall `name` runs for at least one of its witness argument vectors.
    pub fn allowed(&self, name: &str) -> bool {
        let (Some(nr), Some(rule)) = (syscall_number(name), self.policy.rule(name)) else {
            return false;
        };
        witnesses(rule)
            .into_iter()
            .any(|args| self.action(nr, args).runs())
    }

    /// Whether syscall `name` runs with argument `arg` set to `value` (other arguments
    /// taken from the rule's witnesses).
    pub fn admits(&self, name: &str, arg: usize, value: u64) -> bool {
        let (Some(nr), Some(rule)) = (syscall_number(name), self.policy.rule(name)) else {
            return false;
        };
        witnesses(rule).into_iter().any(|mut args| {
            args[arg] = value;
            self.action(nr, args).runs()
        })
    }

    /// Whether syscall `name` runs for any argument `arg` value (checked on a spread of
    /// values no sane allow-list names all of).
    pub fn unrestricted(&self, name: &str, arg: usize) -> bool {
        UNUSUAL_VALUES.iter().all(|&v| self.admits(name, arg, v))
    }
}

/// Values a policy that restricts an argument is unlikely to admit all at once.
const UNUSUAL_VALUES: [u64; 6] = [
    0x7fff_fff1,
    0xdead_beef,
    0x8000_0000_0000_0001,
    0x1234_5678_9abc_def0,
    0x5a5a,
    u64::MAX - 2,
];

/// Argument vectors likely to satisfy the rule: all zero, and one per clause built to
/// satisfy that clause's comparisons.
pub(crate) fn witnesses(rule: &SyscallRule) -> Vec<[u64; 6]> {
    let mut out = vec![[0u64; 6]];
    for clause in rule.allow_if() {
        let mut args = [0u64; 6];
        for c in clause {
            args[c.arg] = satisfying(c.op, c.value, args[c.arg]);
        }
        out.push(args);
    }
    out
}

fn satisfying(op: Op, value: u64, current: u64) -> u64 {
    match op {
        Op::Eq | Op::Le | Op::Ge => value,
        Op::Ne | Op::Gt => value.wrapping_add(1),
        Op::Lt => value.saturating_sub(1),
        Op::AnyBits => current | (value & value.wrapping_neg()),
        Op::InMask => current & value,
    }
}
