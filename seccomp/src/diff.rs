//! Semantic comparison of two policies.
//!
//! Both are compiled and their programs probed with argument vectors built from every
//! constant either policy compares against (each value, its neighbours, each bit of a
//! mask), so `arg1 == 3 || arg1 == 4` and `arg1 >= 3 && arg1 <= 4` compare equal and a
//! changed mask shows the requests it newly admits.

use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

use crate::action::Action;
use crate::error::CompileError;
use crate::policy::{Op, Policy, SyscallRule};
use crate::probe::{witnesses, Prober};
use crate::tables::syscall_number;

/// Most differing probes listed per syscall.
const MAX_PROBES_SHOWN: usize = 8;

/// One syscall whose verdict changed for some arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The syscall.
    pub syscall: String,
    /// `any arguments`, or the probes (`arg1=0x5412`) where the verdict changed.
    pub when: Vec<String>,
    /// Verdict in the old policy.
    pub before: Action,
    /// Verdict in the new policy.
    pub after: Action,
}

/// What changed from policy A to policy B.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Calls that did not run before and run now.
    pub became_allowed: Vec<Change>,
    /// Calls that ran before and do not now.
    pub became_forbidden: Vec<Change>,
    /// Calls refused both times, but differently (errno vs kill ...).
    pub refusal_changed: Vec<Change>,
}

/// Compares `a` (old) with `b` (new).
pub fn diff(a: &Policy, b: &Policy) -> Result<Report, CompileError> {
    let old = Prober::new(a)?;
    let new = Prober::new(b)?;
    let names: BTreeSet<&str> = a
        .syscalls()
        .iter()
        .chain(b.syscalls())
        .map(SyscallRule::name)
        .collect();
    let mut report = Report::default();
    for name in names {
        let Some(nr) = syscall_number(name) else {
            continue;
        };
        let rules: Vec<&SyscallRule> = [a.rule(name), b.rule(name)].into_iter().flatten().collect();
        let probes = probes(&rules);
        let verdicts: Vec<(String, Action, Action)> = probes
            .iter()
            .map(|(label, args)| (label.clone(), old.action(nr, *args), new.action(nr, *args)))
            .collect();
        let changed: Vec<&(String, Action, Action)> =
            verdicts.iter().filter(|(_, x, y)| x != y).collect();
        let pairs: BTreeSet<(Action, Action)> = changed.iter().map(|(_, x, y)| (*x, *y)).collect();
        for (before, after) in pairs {
            let matching: Vec<String> = changed
                .iter()
                .filter(|(_, x, y)| (*x, *y) == (before, after))
                .map(|(label, _, _)| label.clone())
                .collect();
            let when = match matching.len() == verdicts.len() {
                true => vec!["any arguments".to_string()],
                false => matching.into_iter().take(MAX_PROBES_SHOWN).collect(),
            };
            let change = Change {
                syscall: name.to_string(),
                when,
                before,
                after,
            };
            match (before.runs(), after.runs()) {
                (false, true) => report.became_allowed.push(change),
                (true, false) => report.became_forbidden.push(change),
                _ => report.refusal_changed.push(change),
            }
        }
    }
    Ok(report)
}

/// Labelled argument vectors: each rule's witnesses, and each witness with one argument
/// replaced by each interesting value for that argument.
fn probes(rules: &[&SyscallRule]) -> Vec<(String, [u64; 6])> {
    let bases: Vec<[u64; 6]> = rules.iter().flat_map(|r| witnesses(r)).collect();
    let mut values: BTreeSet<(usize, u64)> = BTreeSet::new();
    for c in rules.iter().flat_map(|r| r.allow_if()).flatten() {
        let v = c.value;
        values.extend([v, v.wrapping_sub(1), v.wrapping_add(1), !v, 0].map(|x| (c.arg, x)));
        if matches!(c.op, Op::AnyBits | Op::InMask) {
            values.extend(
                (0..64)
                    .map(|b| 1u64 << b)
                    .filter(|b| v & b != 0)
                    .map(|b| (c.arg, b)),
            );
            values.extend(
                (0..64)
                    .map(|b| 1u64 << b)
                    .filter(|b| v & b == 0)
                    .take(4)
                    .map(|b| (c.arg, b)),
            );
        }
    }
    let mut out: Vec<(String, [u64; 6])> = bases.iter().map(|b| (describe(b, None), *b)).collect();
    for base in &bases {
        for &(arg, value) in &values {
            let mut args = *base;
            args[arg] = value;
            out.push((describe(&args, Some(arg)), args));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn describe(args: &[u64; 6], focus: Option<usize>) -> String {
    let shown: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, v)| **v != 0 || Some(*i) == focus)
        .map(|(i, v)| format!("arg{i}={v:#x}"))
        .collect();
    match shown.is_empty() {
        true => "all arguments 0".to_string(),
        false => shown.join(" "),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sections = [
            ("BECAME ALLOWED", &self.became_allowed),
            ("BECAME FORBIDDEN", &self.became_forbidden),
            ("REFUSAL CHANGED", &self.refusal_changed),
        ];
        for (title, changes) in sections {
            writeln!(f, "{title} ({})", changes.len())?;
            for c in changes {
                writeln!(
                    f,
                    "  {:<22} {} -> {}: {}",
                    c.syscall,
                    c.before,
                    c.after,
                    c.when.join(", ")
                )?;
            }
        }
        Ok(())
    }
}
