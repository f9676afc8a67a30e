//! Compiles a [`Policy`] to one x86_64 seccomp BPF program with seccompiler.
//!
//! seccompiler gives each filter one match action and one mismatch action, while a policy
//! can mix allow, several errnos, trap and log. So the policy is split into action groups
//! (allow first, then one group per unconditional action), each group is built by
//! seccompiler with a sentinel mismatch action, and the groups are chained: every sentinel
//! `RET` becomes a `JA` (32-bit offset, same length) to the next group, and the last
//! group's sentinels become the default action. In front goes one architecture check
//! (foreign arch: kill) and one x32 check (x32 syscall numbers: kill), replacing the
//! architecture check seccompiler puts at the head of every group.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use crate::action::{Action, DefaultAction};
use crate::bpf::{jump, stmt, AUDIT_ARCH_X86_64, MAX_INSTRUCTIONS, X32_SYSCALL_BIT};
use crate::error::CompileError;
use crate::policy::{Comparison, Op, Policy, SyscallRule};

/// An action no policy produces (policies cannot say `trace`), marking "not mine: go on".
const SENTINEL: SeccompAction = SeccompAction::Trace(0x5eed);
/// Most seccompiler rules one syscall's expression may expand to (`&` expands per bit).
const MAX_RULES_PER_SYSCALL: usize = 256;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Length of seccompiler's architecture check at the head of each filter.
const ARCH_CHECK_LEN: usize = 3;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JA: u16 = 0x05;
const BPF_RET_K: u16 = 0x06;

/// Arch check and x32 rejection, in front of everything.
fn prologue() -> Vec<sock_filter> {
    vec![
        stmt(BPF_LD_W_ABS, 4),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, 0),
        jump(BPF_JGE_K, X32_SYSCALL_BIT as u32, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ]
}

pub(crate) fn compile(policy: &Policy, default: DefaultAction) -> Result<BpfProgram, CompileError> {
    let groups = action_groups(policy)?;
    let mut bodies = Vec::new();
    for (action, rules) in groups {
        bodies.push((action, group_body(action, rules)?));
    }
    let mut program = prologue();
    let default_action = Action::from(default).to_seccompiler();
    let default_ret = stmt(
        BPF_RET_K,
        default_action.map_or(SECCOMP_RET_KILL_PROCESS, u32::from),
    );
    let sentinel = u32::from(SENTINEL);
    let count = bodies.len();
    for (index, (_, body)) in bodies.into_iter().enumerate() {
        let end = body.len();
        let last = index + 1 == count;
        program.extend(body.into_iter().enumerate().map(|(pc, insn)| {
            match (insn.code == BPF_RET_K && insn.k == sentinel, last) {
                (false, _) => insn,
                (true, true) => default_ret.clone(),
                (true, false) => stmt(BPF_JA, (end - pc - 1) as u32),
            }
        }));
    }
    if count == 0 {
        program.push(default_ret);
    }
    match program.len() {
        n if n > MAX_INSTRUCTIONS => Err(CompileError::TooLong(n)),
        _ => Ok(program),
    }
}

/// The policy split by action: syscall number -> seccompiler rules (empty: unconditional).
type Groups = BTreeMap<Action, BTreeMap<i64, Vec<SeccompRule>>>;

fn action_groups(policy: &Policy) -> Result<Groups, CompileError> {
    let mut groups = Groups::new();
    for rule in policy.syscalls() {
        if rule.is_unconditional_allow() {
            let action = rule.otherwise.unwrap_or(Action::Allow);
            groups
                .entry(action)
                .or_default()
                .insert(rule.nr, Vec::new());
            continue;
        }
        let alternatives = expand_rule(rule)?;
        if !alternatives.is_empty() {
            groups
                .entry(Action::Allow)
                .or_default()
                .insert(rule.nr, alternatives);
        }
        if let Some(action) = rule.otherwise {
            groups
                .entry(action)
                .or_default()
                .insert(rule.nr, Vec::new());
        }
    }
    Ok(groups)
}

/// One group compiled by seccompiler, without its architecture check.
fn group_body(
    action: Action,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
) -> Result<Vec<sock_filter>, CompileError> {
    let name = action.to_string();
    let matched = action
        .to_seccompiler()
        .ok_or(CompileError::UnexpectedShape {
            group: name.clone(),
            what: "seccompiler cannot express this action",
        })?;
    let seccompiler_error = |source| CompileError::Seccompiler {
        group: name.clone(),
        source,
    };
    let filter = SeccompFilter::new(rules, SENTINEL, matched, TargetArch::x86_64)
        .map_err(seccompiler_error)?;
    let program: BpfProgram = filter.try_into().map_err(seccompiler_error)?;
    let head_is_arch_check = program.len() > ARCH_CHECK_LEN
        && program[0] == stmt(BPF_LD_W_ABS, 4)
        && program[1].code == BPF_JEQ_K
        && program[1].k == AUDIT_ARCH_X86_64;
    match head_is_arch_check {
        true => Ok(program[ARCH_CHECK_LEN..].to_vec()),
        false => Err(CompileError::UnexpectedShape {
            group: name,
            what: "it does not start with the x86_64 architecture check",
        }),
    }
}

/// The rule's clauses as seccompiler rules: `&` becomes one rule per mask bit.
fn expand_rule(rule: &SyscallRule) -> Result<Vec<SeccompRule>, CompileError> {
    let mut out = Vec::new();
    for clause in &rule.allow_if {
        let mut products: Vec<Vec<SeccompCondition>> = vec![Vec::new()];
        for comparison in clause {
            let choices = conditions(comparison)?;
            products = products
                .iter()
                .flat_map(|prefix| {
                    choices.iter().map(move |c| {
                        let mut next = prefix.clone();
                        next.push(c.clone());
                        next
                    })
                })
                .collect();
            if out.len() + products.len() > MAX_RULES_PER_SYSCALL {
                return Err(CompileError::TooManyRules {
                    at: rule.definitions[0].at.clone(),
                    name: rule.name.to_string(),
                    limit: MAX_RULES_PER_SYSCALL,
                });
            }
        }
        for conditions in products {
            let built =
                SeccompRule::new(conditions).map_err(|source| CompileError::Seccompiler {
                    group: "allow".to_string(),
                    source,
                })?;
            out.push(built);
        }
    }
    Ok(out)
}

/// The seccompiler conditions any one of which makes `comparison` hold.
fn conditions(comparison: &Comparison) -> Result<Vec<SeccompCondition>, CompileError> {
    let value = comparison.value;
    let pairs = match comparison.op {
        Op::Eq => vec![(SeccompCmpOp::Eq, value)],
        Op::Ne => vec![(SeccompCmpOp::Ne, value)],
        Op::Lt => vec![(SeccompCmpOp::Lt, value)],
        Op::Le => vec![(SeccompCmpOp::Le, value)],
        Op::Gt => vec![(SeccompCmpOp::Gt, value)],
        Op::Ge => vec![(SeccompCmpOp::Ge, value)],
        Op::InMask => vec![(SeccompCmpOp::MaskedEq(!value), 0)],
        Op::AnyBits => (0..64)
            .map(|bit| 1u64 << bit)
            .filter(|bit| value & bit != 0)
            .map(|bit| (SeccompCmpOp::MaskedEq(bit), bit))
            .collect(),
    };
    pairs
        .into_iter()
        .map(|(op, v)| {
            SeccompCondition::new(comparison.arg as u8, SeccompCmpArgLen::Qword, op, v).map_err(
                |source| CompileError::Seccompiler {
                    group: "allow".to_string(),
                    source,
                },
            )
        })
        .collect()
}
