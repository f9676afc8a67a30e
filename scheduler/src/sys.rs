//! The Linux calls the scheduler makes: process CPU clocks, the monotonic clock, liveness
//! and stopping and continuing a process through its pidfd.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// CLOCK_MONOTONIC now: one clock for every process of the host.
pub fn monotonic() -> Duration {
    clock(libc::CLOCK_MONOTONIC).unwrap_or_default()
}

/// The CPU time every thread of process `pid` has used, dead threads included, to the
/// nanosecond; `None` once the process is gone. Any process's clock may be read.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // The kernel's process CPU clock id (what glibc's clock_getcpuclockid computes): the
    // pid's complement shifted past the 3 clock-type bits, CPUCLOCK_SCHED (2), not per thread.
    clock(((!pid) << 3) | 2)
}

fn clock(id: libc::clockid_t) -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`, which lives across the call; an
    // invalid or vanished clock gives -1 and writes nothing.
    let rc = unsafe { libc::clock_gettime(id, &mut now) };
    match rc {
        0 => Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32)),
        _ => None,
    }
}

/// How long the threads of process `pid` have been ready to run but waited for a CPU (the
/// second field of each `/proc/PID/task/TID/schedstat`), summed over the threads alive now.
pub fn run_delay(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let waited_ns: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    Some(Duration::from_nanos(waited_ns))
}

/// Whether process `pid` exists (a zombie counts; signalling it is not needed).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the pid exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `signal` through `pidfd`; a pidfd never names a recycled pid.
pub fn signal(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a pidfd the caller owns, a signal number, no siginfo
    // and no flags; a process that has ended gives ESRCH.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Whether the process behind `pidfd` has ended (its pidfd polls readable).
pub fn ended(pidfd: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call; timeout 0 never blocks.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc != 0
}

/// A pidfd for process `pid` (the tests' children; supervisors pass the jail's).
#[cfg(test)]
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    match fd {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
        fd => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
    }
}
