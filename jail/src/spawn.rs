//! The supervisor's side of spawning a jailed process: descriptors, the clone, the id maps,
//! the cgroup, and the wait for exec.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

use super::config::{CgroupLimits, ChildStderr, JailConfig, PassFd};
use super::idmap::IdMaps;
use super::plan::{FdLayout, Host, Plan};
use super::process::JailedProcess;
use super::{child, JailError};

/// Namespaces made by the clone itself. The cgroup namespace is unshared by the child after
/// the supervisor has moved it into its cgroup, so that cgroup becomes the namespace's root.
const CLONE_FLAGS: libc::c_long = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::SIGCHLD) as libc::c_long;

/// Spawns `config.program` in its jail with `fds` installed at their target numbers.
pub(super) fn spawn(config: &JailConfig, fds: &[PassFd<'_>]) -> Result<JailedProcess, JailError> {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let maps = IdMaps::for_caller(&config.ids, euid, egid)?;
    let host = Host {
        caller_is_root: euid == 0,
        last_cap: last_cap()?,
    };

    let targets = check_targets(fds, config)?;
    let floor = targets.iter().copied().max().unwrap_or(2) + 1;
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(JailError::DevNull)?;
    let mut sources: Vec<(OwnedFd, RawFd)> = Vec::new();
    let stderr_source = match config.stderr {
        ChildStderr::Null => null.as_raw_fd(),
        ChildStderr::Inherit => libc::STDERR_FILENO,
        ChildStderr::Descriptor(fd) => fd,
    };
    for (source, target) in [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (stderr_source, 2),
    ]
    .into_iter()
    .chain(fds.iter().map(|f| (f.source.as_raw_fd(), f.target)))
    {
        sources.push((dup_above(source, floor)?, target));
    }
    let (sync_read, sync_write) = pipe_above(floor)?;
    let (error_read, error_write) = pipe_above(floor)?;
    let layout = FdLayout {
        moves: sources
            .iter()
            .map(|(fd, to)| (fd.as_raw_fd(), *to))
            .collect(),
        sync: sync_read.as_raw_fd(),
    };
    let plan = Plan::build(config, &layout, host)?;

    let pid = clone_and_run(&plan, error_write.as_raw_fd())?;
    // The child has its copies; the supervisor keeps only its ends of the two pipes.
    drop((sources, sync_read, error_write, null));
    let cgroup = config
        .cgroup
        .as_ref()
        .map(|limits| cgroup_path(limits, pid));
    let child = JailedProcess::adopt(pid, cgroup).map_err(|e| {
        kill_and_reap(pid);
        JailError::PidFd(e)
    })?;

    // From here on, an early return drops `child`, which kills and reaps it.
    write_id_maps(pid, &maps)?;
    if let Some(limits) = &config.cgroup {
        join_cgroup(limits, pid)?;
    }
    write_all(&sync_write, b"g").map_err(JailError::Release)?;
    match await_exec(&error_read, config.exec_timeout)? {
        None => Ok(child),
        Some((index, errno)) => Err(JailError::PreExec {
            step: plan
                .steps
                .get(index as usize)
                .map_or_else(|| format!("step {index}"), |s| s.what.clone()),
            errno: Errno::from_raw(errno),
        }),
    }
}

/// Checks the descriptor targets: 3 and up, each once, below the descriptor limit.
fn check_targets(fds: &[PassFd<'_>], config: &JailConfig) -> Result<Vec<RawFd>, JailError> {
    let nofile = config
        .rlimits
        .iter()
        .find(|l| l.resource == super::config::Resource::NoFile)
        .map_or(u64::MAX, |l| l.soft);
    let mut targets = vec![0, 1, 2];
    for fd in fds {
        if fd.target < 3 || targets.contains(&fd.target) || fd.target as u64 >= nofile {
            return Err(JailError::FdTarget(fd.target));
        }
        targets.push(fd.target);
    }
    Ok(targets)
}

/// Duplicates `fd` to a close-on-exec descriptor numbered at least `floor`, so that moving
/// descriptors into place in the child never overwrites one still to be moved.
fn dup_above(fd: RawFd, floor: RawFd) -> Result<OwnedFd, JailError> {
    // SAFETY: F_DUPFD_CLOEXEC takes a descriptor and a minimum number; the result is checked.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
    if new < 0 {
        return Err(JailError::Descriptors(io::Error::last_os_error()));
    }
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A close-on-exec pipe, both ends numbered at least `floor`: `(read, write)`.
fn pipe_above(floor: RawFd) -> Result<(OwnedFd, OwnedFd), JailError> {
    let mut ends = [0; 2];
    // SAFETY: `ends` is a valid array of two ints for the kernel to fill; checked below.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(JailError::Descriptors(io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are new and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    Ok((
        dup_above(read.as_raw_fd(), floor)?,
        dup_above(write.as_raw_fd(), floor)?,
    ))
}

/// The highest capability number this kernel knows.
fn last_cap() -> Result<u32, JailError> {
    let path = "/proc/sys/kernel/cap_last_cap";
    std::fs::read_to_string(path)
        .map_err(JailError::LastCap)?
        .trim()
        .parse()
        .map_err(|_| JailError::LastCap(io::Error::other(format!("{path} is not a number"))))
}

/// Clones into new namespaces; the child runs the plan and never returns here.
fn clone_and_run(plan: &Plan, error_fd: RawFd) -> Result<libc::pid_t, JailError> {
    // Block every signal across the clone so no handler of the supervisor runs in the child;
    // the child restores default actions and an empty mask just before exec.
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only write the sets.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut saved: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
    }
    // SAFETY: a clone without CLONE_VM and with a null stack behaves like fork: the child gets
    // a copy of this address space and continues on a copy of this stack. It runs only
    // `child::run`, which makes raw system calls on memory prepared before the clone and
    // ends in exec or _exit, so the copy of any lock held by another thread is never touched.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            CLONE_FLAGS,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if pid == 0 {
        // SAFETY: this is the child of the fork-like clone above, with signals blocked, and
        // `plan` was built for it.
        unsafe { child::run(plan, error_fd) }
    }
    let err = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(JailError::Clone(err));
    }
    Ok(pid as libc::pid_t)
}

fn write_id_maps(pid: libc::pid_t, maps: &IdMaps) -> Result<(), JailError> {
    let write = |name: &str, contents: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::write(&path, contents).map_err(|source| JailError::IdMap { path, source })
    };
    if let Some(setgroups) = maps.setgroups {
        write("setgroups", setgroups)?;
    }
    write("uid_map", &maps.uid_map)?;
    write("gid_map", &maps.gid_map)
}

fn cgroup_path(limits: &CgroupLimits, pid: libc::pid_t) -> PathBuf {
    limits.parent.join(format!("ray-gpu-{pid}"))
}

/// Makes the child's cgroup under the delegated directory, sets its limits and moves the
/// child in, before the child unshares its cgroup namespace.
fn join_cgroup(limits: &CgroupLimits, pid: libc::pid_t) -> Result<(), JailError> {
    let dir = cgroup_path(limits, pid);
    let fail = |path: PathBuf| move |source| JailError::Cgroup { path, source };
    std::fs::create_dir(&dir).map_err(fail(dir.clone()))?;
    for (file, value) in [
        ("memory.max", limits.memory_max.to_string()),
        ("pids.max", limits.pids_max.to_string()),
        ("cgroup.procs", pid.to_string()),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, value).map_err(fail(path))?;
    }
    Ok(())
}

fn write_all(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: `bytes` is valid for reads of its length; the result is checked.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if n == bytes.len() as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits for exec: end of file on the error pipe (its write end closes at exec), or an
/// 8-byte `(step index, errno)` record from a failed step.
fn await_exec(error_read: &OwnedFd, timeout: Duration) -> Result<Option<(u32, i32)>, JailError> {
    let mut pfd = libc::pollfd {
        fd: error_read.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, millis) };
    if ready == 0 {
        return Err(JailError::ExecTimeout(timeout));
    }
    let mut record = [0u8; 8];
    // SAFETY: `record` is writable for its length; the result is checked.
    let n = unsafe { libc::read(error_read.as_raw_fd(), record.as_mut_ptr().cast(), 8) };
    match n {
        0 => Ok(None),
        8 => Ok(Some((
            u32::from_ne_bytes(record[..4].try_into().expect("4 bytes")),
            i32::from_ne_bytes(record[4..].try_into().expect("4 bytes")),
        ))),
        _ => Err(JailError::ErrorPipe(io::Error::last_os_error())),
    }
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: `pid` is our unreaped child, so it cannot name another process.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}
