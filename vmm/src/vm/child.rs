//! Spawning a supervised child with exactly the descriptors it should inherit.
//!
//! The child gets `PR_SET_PDEATHSIG(SIGKILL)` (it dies with rayvmm, never an orphan), its own
//! process group (a terminal's Ctrl-C reaches rayvmm, which stops the children in order),
//! the listed descriptors at fixed numbers, and nothing else: every other descriptor is
//! closed at exec. A waiter thread reports how it ended; kills go through a pidfd, so a
//! recycled pid is never signalled.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};

/// How a child process ended, in words and as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitDescription {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal's name, when a signal killed it.
    pub signal: Option<String>,
}

impl ExitDescription {
    /// Describes a wait status.
    pub fn from_status(status: ExitStatus) -> ExitDescription {
        ExitDescription {
            code: status.code(),
            signal: status.signal().map(signal_name),
        }
    }

    /// Whether the process exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// `SIGKILL`-style name of a signal number.
pub fn signal_name(signo: i32) -> String {
    nix::sys::signal::Signal::try_from(signo)
        .map(|sig| sig.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signo}"))
}

impl fmt::Display for ExitDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.signal) {
            (Some(code), _) => write!(f, "exited with code {code}"),
            (None, Some(signal)) => write!(f, "was killed by {signal}"),
            (None, None) => write!(f, "ended for an unknown reason"),
        }
    }
}

/// Most descriptors a child may inherit.
const MAX_INHERITED: usize = 8;
/// The first descriptor number children inherit at (after stdin, stdout, stderr).
pub const FIRST_INHERITED_FD: RawFd = 3;
/// The first descriptor number past the inherited range, where sources are moved first.
const ABOVE_INHERITED: RawFd = FIRST_INHERITED_FD + MAX_INHERITED as RawFd;

/// A spawned child: its pid and a pidfd for signalling it safely.
#[derive(Debug)]
pub struct SupervisedChild {
    pid: u32,
    pidfd: OwnedFd,
}

impl SupervisedChild {
    /// Spawns `cmd` with `inherited[i]` at descriptor `FIRST_INHERITED_FD + i`; calls
    /// `on_exit` from a waiter thread when the child ends.
    pub fn spawn(
        mut cmd: Command,
        inherited: &[RawFd],
        on_exit: Box<dyn FnOnce(ExitDescription) + Send>,
    ) -> std::io::Result<SupervisedChild> {
        if inherited.len() > MAX_INHERITED {
            return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        }
        let mut fds = [-1 as RawFd; MAX_INHERITED];
        fds[..inherited.len()].copy_from_slice(inherited);
        let count = inherited.len();
        let parent = std::process::id();
        cmd.process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls on integers captured by value; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || child_setup(parent, &fds[..count]));
        }
        let mut child = cmd.spawn().map_err(with_descriptor_limit)?;
        let pid = child.id();
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        std::thread::Builder::new()
            .name(format!("wait-{pid}"))
            .spawn(move || {
                if let Ok(status) = child.wait() {
                    on_exit(ExitDescription::from_status(status));
                }
            })?;
        Ok(SupervisedChild { pid, pidfd })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signo` (harmless once the child is gone).
    pub fn signal(&self, signo: i32) {
        // SAFETY: pidfd_send_signal on our own pidfd with no siginfo; a process already gone
        // gives ESRCH, and a pidfd never refers to a recycled pid.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signo,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// Kills the child with SIGKILL.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }
}

/// Adds rayvmm's descriptor limit to an EMFILE (from the pipe the standard library makes to
/// hear of a failed exec, or from moving the inherited descriptors in the child), so the
/// message says which limit ran out.
fn with_descriptor_limit(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() != Some(libc::EMFILE) {
        return e;
    }
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or_else(|_| "unknown".to_string(), |(soft, _)| soft.to_string());
    std::io::Error::new(
        e.kind(),
        format!("{e}: no descriptor left for the child's (rayvmm's RLIMIT_NOFILE is {limit})"),
    )
}

/// Runs in the child between fork and exec.
fn child_setup(parent: u32, inherited: &[RawFd]) -> std::io::Result<()> {
    let check = |r: libc::c_long| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r as RawFd)
        }
    };
    // SAFETY: plain system calls on integers; none touches this process's memory.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).into())?;
        // rayvmm may have died between fork and prctl: then nobody would kill this child.
        if libc::getppid() as u32 != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        // Move every source above the target range first, so no dup2 clobbers a source. The
        // lowest number above the range is asked for: under a low RLIMIT_NOFILE a fixed
        // higher one fails with EINVAL (a number at or past the limit), which says nothing;
        // running out of numbers is EMFILE either way.
        let mut moved = [0 as RawFd; MAX_INHERITED];
        for (slot, src) in moved.iter_mut().zip(inherited) {
            let copy = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, ABOVE_INHERITED);
            if copy < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
            }
            *slot = check(copy.into())?;
        }
        for (i, src) in moved.iter().take(inherited.len()).enumerate() {
            // dup2 leaves the new descriptor without close-on-exec: exactly these cross.
            check(libc::dup2(*src, FIRST_INHERITED_FD + i as RawFd).into())?;
        }
        // Everything above the inherited range closes at exec. Marking instead of closing
        // keeps the standard library's exec-error pipe working.
        let first = (FIRST_INHERITED_FD as libc::c_uint) + inherited.len() as libc::c_uint;
        check(libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ))?;
    }
    Ok(())
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    fn run_shell(script: &str, inherited: &[RawFd]) -> (String, ExitDescription) {
        let out = pipe();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]).stdout(Stdio::from(out.1));
        let (tx, rx) = mpsc::channel();
        let _child =
            SupervisedChild::spawn(cmd, inherited, Box::new(move |d| tx.send(d).unwrap())).unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(out.0), &mut text).unwrap();
        (text, exit)
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    /// Waits until `pid` is blocked in clock_nanosleep (x86_64 number 230), that is, until
    /// `sleep` is past its dynamic loader, whose short-lived descriptors would race the listing.
    fn wait_until_sleeping(pid: u32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap();
            if syscall.starts_with("230 ") {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("child {pid} never reached clock_nanosleep");
    }

    /// Each open descriptor of `pid` with what it points at, in order, once it sleeps.
    fn descriptors_of(pid: u32) -> Vec<(RawFd, String)> {
        wait_until_sleeping(pid);
        let mut fds: Vec<(RawFd, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let target = std::fs::read_link(entry.path()).unwrap();
                (
                    entry.file_name().to_string_lossy().parse().unwrap(),
                    target.to_string_lossy().into_owned(),
                )
            })
            .collect();
        fds.sort();
        fds
    }

    #[test]
    fn child_sees_only_the_inherited_descriptors() {
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = std::fs::File::open("/dev/zero").unwrap();
        let _not_passed = std::fs::File::open("/dev/null").unwrap();
        let mut cmd = Command::new("/bin/sleep");
        cmd.arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());

        // Read the table from here, where no shell of the test's own adds descriptors to it.
        let child =
            SupervisedChild::spawn(cmd, &[b.as_raw_fd(), a.as_raw_fd()], Box::new(|_| {})).unwrap();
        let fds = descriptors_of(child.pid());
        child.kill();

        let null = || "/dev/null".to_string();
        assert_eq!(
            fds,
            vec![
                (0, null()),
                (1, null()),
                (2, null()),
                (3, "/dev/zero".into()),
                (4, null())
            ]
        );
    }

    #[test]
    fn exit_code_is_reported() {
        let (_, exit) = run_shell("exit 7", &[]);

        assert_eq!(
            exit,
            ExitDescription {
                code: Some(7),
                signal: None
            }
        );
    }

    #[test]
    fn death_by_signal_is_named() {
        let (_, exit) = run_shell("kill -SEGV $$", &[]);

        assert_eq!(
            exit,
            ExitDescription {
                code: None,
                signal: Some("SIGSEGV".into())
            }
        );
    }
}
