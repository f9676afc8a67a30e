//! A spawned jailed process: waiting for it, killing it, and reaping it on drop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// A signal killed it (SIGSYS: the seccomp filter's kill action).
    Signaled(i32),
}

impl ExitStatus {
    fn from_wait_status(status: libc::c_int) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }
}

/// A child of this process running in a jail. Dropping it kills and reaps the child, so no
/// jailed process outlives its handle and none is left a zombie.
#[derive(Debug)]
pub struct JailedProcess {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
    cgroup: Option<PathBuf>,
}

impl JailedProcess {
    /// Takes charge of child `pid`, which this process must not reap elsewhere.
    pub(super) fn adopt(pid: libc::pid_t, cgroup: Option<PathBuf>) -> io::Result<JailedProcess> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(JailedProcess {
            pid,
            // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
            status: None,
            cgroup,
        })
    }

    /// The child's pid in the supervisor's pid namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The child's pidfd: signals sent through it cannot reach a recycled pid.
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.pidfd)
    }

    /// The cgroup the child was placed in, if a delegated cgroup v2 directory was configured.
    pub fn cgroup(&self) -> Option<&Path> {
        self.cgroup.as_deref()
    }

    /// How the child ended, if it has; reaps it.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid int; the pid is our unreaped child.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        match rc {
            0 => Ok(None),
            rc if rc == self.pid => {
                self.status = Some(ExitStatus::from_wait_status(status));
                self.remove_cgroup();
                Ok(self.status)
            }
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Waits up to `timeout` for the child to end; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.try_wait()? {
            return Ok(Some(status));
        }
        let mut pfd = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        self.try_wait()
    }

    /// Waits for the child to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.wait_timeout(Duration::from_secs(3600))? {
                return Ok(status);
            }
        }
    }

    /// Kills the child with SIGKILL (unless it already ended) and reaps it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if self.try_wait()?.is_none() {
            // SAFETY: pidfd_send_signal takes a pidfd of our unreaped child and a signal
            // number; a pidfd cannot name a recycled pid.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.wait()
    }

    fn remove_cgroup(&mut self) {
        if let Some(dir) = &self.cgroup {
            // Best effort, once the child is reaped: an emptied cgroup goes away; a failure
            // leaves an empty directory behind.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for JailedProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
