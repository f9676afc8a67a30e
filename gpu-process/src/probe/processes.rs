//! Reaching other processes: the supervisor, the parent, everyone.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of, addr_of_mut, reg, scalar, scalar_reached, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("ptrace_attach_supervisor", ptrace_attach_supervisor),
    ("ptrace_traceme", ptrace_traceme),
    ("process_vm_writev_supervisor", process_vm_writev_supervisor),
    ("process_vm_readv_supervisor", process_vm_readv_supervisor),
    ("kill_supervisor", kill_supervisor),
    ("kill_all", kill_all),
    ("pidfd_getfd_supervisor", pidfd_getfd_supervisor),
    ("kcmp_supervisor", kcmp_supervisor),
];

/// `KCMP_FILE` from linux/kcmp.h (the libc crate does not define it).
const KCMP_FILE: u64 = 0;

fn ptrace_attach_supervisor(req: &TechniqueRequest) -> Attempt {
    scalar_reached(
        libc::SYS_ptrace,
        &[
            libc::PTRACE_ATTACH.into(),
            reg(req.supervisor_pid.into()),
            0,
            0,
        ],
    )
}

fn ptrace_traceme(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_ptrace, &[libc::PTRACE_TRACEME.into(), 0, 0, 0])
}

fn process_vm_writev_supervisor(req: &TechniqueRequest) -> Attempt {
    process_vm(libc::SYS_process_vm_writev, req.supervisor_pid)
}

fn process_vm_readv_supervisor(req: &TechniqueRequest) -> Attempt {
    process_vm(libc::SYS_process_vm_readv, req.supervisor_pid)
}

/// One byte between our buffer and the same address in `pid` (any address serves the test:
/// the call must be refused before any memory is looked at).
fn process_vm(nr: i64, pid: i32) -> Attempt {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: addr_of_mut(&mut byte) as *mut libc::c_void,
        iov_len: 1,
    };
    let remote = local;
    // SAFETY: both iovecs describe our one-byte buffer, valid for reads and writes.
    let moved = unsafe {
        sys::syscall(
            nr,
            &[reg(pid.into()), addr_of(&local), 1, addr_of(&remote), 1, 0],
        )
    }?;
    Ok(format!("moved {moved} bytes"))
}

fn kill_supervisor(req: &TechniqueRequest) -> Attempt {
    scalar_reached(
        libc::SYS_kill,
        &[reg(req.supervisor_pid.into()), libc::SIGKILL as u64],
    )
}

fn kill_all(_: &TechniqueRequest) -> Attempt {
    // Only ever runs as pid 1 of a pid namespace (probe::run checks), where -1 reaches no
    // process outside that namespace even if the filter allowed the call.
    scalar_reached(libc::SYS_kill, &[reg(-1), libc::SIGKILL as u64])
}

fn pidfd_getfd_supervisor(req: &TechniqueRequest) -> Attempt {
    let pidfd = scalar(libc::SYS_pidfd_open, &[reg(req.supervisor_pid.into()), 0])?;
    let stolen = scalar(libc::SYS_pidfd_getfd, &[reg(pidfd), 0, 0]);
    sys::close(pidfd);
    let fd = stolen?;
    sys::close(fd);
    Ok("took the supervisor's fd 0".into())
}

fn kcmp_supervisor(req: &TechniqueRequest) -> Attempt {
    // SAFETY: getpid has no preconditions and cannot fail.
    let me = reg(unsafe { libc::getpid() }.into());
    let supervisor = reg(req.supervisor_pid.into());
    scalar_reached(libc::SYS_kcmp, &[me, supervisor, KCMP_FILE, 0, 0])
}
