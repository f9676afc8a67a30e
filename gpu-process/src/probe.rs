//! Probe mode: escape techniques attempted from inside the finished sandbox. Built only with
//! the `probe` feature, which release builds refuse (main.rs's compile_error!).
//!
//! ray-gpu calls [`run`] for each `ToGpu::Probe` request once its seccomp filter is in place.
//! Every technique either reports what happened ([`ProbeOutcome::Succeeded`] with what it
//! reached, or [`ProbeOutcome::Errno`] with the errno of the first step that failed) or dies
//! trying, in which case the supervisor reports how the process died (SIGSYS for a call the
//! filter kills).
//!
//! Some techniques would harm the host if they ever ran outside a jail (`kill(-1, SIGKILL)` as
//! host root, for one), so the probe attempts nothing unless it is pid 1 of its own pid
//! namespace, which an unjailed process never is.

mod clone;
mod exec;
mod exhaustion;
mod fds;
mod files;
mod ioctl;
mod kernel;
mod memory;
mod network;
mod nvidia;
mod privilege;
mod processes;
mod sys;

use control::probe::{ProbeOutcome, ProbeReport, ProbeRequest, RawSyscall, TechniqueRequest};

use sys::Technique;

/// Every technique module's table of named techniques.
const TABLES: &[&[(&str, Technique)]] = &[
    files::TECHNIQUES,
    exec::TECHNIQUES,
    network::TECHNIQUES,
    processes::TECHNIQUES,
    privilege::TECHNIQUES,
    kernel::TECHNIQUES,
    memory::TECHNIQUES,
    ioctl::TECHNIQUES,
    nvidia::TECHNIQUES,
    clone::TECHNIQUES,
    exhaustion::TECHNIQUES,
    fds::TECHNIQUES,
];

/// Carries out one probe request and reports each outcome, in order.
pub fn run(request: &ProbeRequest) -> ProbeReport {
    let outcomes = match (inside_pid_namespace(), request) {
        (false, ProbeRequest::Technique(_)) => vec![refused_outside_jail()],
        (false, ProbeRequest::RawSyscalls(calls)) => vec![refused_outside_jail(); calls.len()],
        (true, ProbeRequest::Technique(t)) => vec![attempt(t)],
        (true, ProbeRequest::RawSyscalls(calls)) => calls.iter().map(raw_syscall).collect(),
    };
    ProbeReport { outcomes }
}

fn attempt(request: &TechniqueRequest) -> ProbeOutcome {
    match find(&request.name) {
        Some(technique) => match technique(request) {
            Ok(detail) => ProbeOutcome::Succeeded(detail),
            Err(errno) => ProbeOutcome::Errno(errno),
        },
        None => ProbeOutcome::Refused(format!("unknown technique {:?}", request.name)),
    }
}

fn find(name: &str) -> Option<Technique> {
    TABLES
        .iter()
        .flat_map(|table| table.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, technique)| *technique)
}

fn raw_syscall(call: &RawSyscall) -> ProbeOutcome {
    // SAFETY: running exactly the call the supervisor asked for, whatever it does to this
    // process, is the point of probe mode; the process is disposable and jailed (checked by
    // `inside_pid_namespace` before any call is made).
    match unsafe { sys::syscall(call.nr, &call.args) } {
        Ok(rc) => ProbeOutcome::Succeeded(rc.to_string()),
        Err(errno) => ProbeOutcome::Errno(errno),
    }
}

/// Whether this process is pid 1 of a pid namespace: the jail's shape, never the host's.
fn inside_pid_namespace() -> bool {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() == 1 }
}

fn refused_outside_jail() -> ProbeOutcome {
    ProbeOutcome::Refused("not pid 1 of a pid namespace: refusing to attempt escapes".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::probe::TECHNIQUES;
    use std::collections::BTreeSet;

    #[test]
    fn every_catalogued_technique_is_implemented_and_nothing_else() {
        let catalogue: BTreeSet<&str> = TECHNIQUES.iter().map(|t| t.name).collect();

        let implemented: BTreeSet<&str> = TABLES
            .iter()
            .flat_map(|table| table.iter().map(|(name, _)| *name))
            .collect();

        assert_eq!(implemented, catalogue);
    }

    #[test]
    fn technique_is_refused_outside_a_pid_namespace() {
        let request = ProbeRequest::Technique(TechniqueRequest {
            name: "kill_all".into(),
            ..Default::default()
        });

        let report = run(&request);

        assert_eq!(report.outcomes, vec![refused_outside_jail()]);
    }

    #[test]
    fn raw_syscalls_are_refused_outside_a_pid_namespace() {
        let call = RawSyscall {
            nr: libc::SYS_getpid,
            args: [0; 6],
        };

        let report = run(&ProbeRequest::RawSyscalls(vec![call, call]));

        assert_eq!(report.outcomes, vec![refused_outside_jail(); 2]);
    }

    #[test]
    fn unknown_technique_is_refused_by_name() {
        let request = TechniqueRequest {
            name: "no_such_technique".into(),
            ..Default::default()
        };

        let outcome = attempt(&request);

        assert_eq!(
            outcome,
            ProbeOutcome::Refused("unknown technique \"no_such_technique\"".into())
        );
    }

    #[test]
    fn raw_syscall_reports_its_return_value() {
        let call = RawSyscall {
            nr: libc::SYS_getppid,
            args: [0; 6],
        };

        let outcome = raw_syscall(&call);

        assert_eq!(
            outcome,
            ProbeOutcome::Succeeded(std::os::unix::process::parent_id().to_string())
        );
    }

    #[test]
    fn raw_syscall_reports_its_errno() {
        let call = RawSyscall {
            nr: libc::SYS_close,
            args: [u64::from(u32::MAX >> 1), 0, 0, 0, 0, 0],
        };

        let outcome = raw_syscall(&call);

        assert_eq!(outcome, ProbeOutcome::Errno(libc::EBADF));
    }
}
