//! The child's side of the jail: from clone to exec, the steps of a [`Plan`], each a raw
//! system call.
//!
//! Nothing here allocates, takes a lock or runs a destructor: the child is a copy of one
//! thread of a possibly multithreaded supervisor, and another thread may have held the
//! allocator's lock at the moment of the clone. A failing step writes `(step index, errno)`
//! to the error pipe and the child exits; the supervisor names the step.

use std::os::fd::RawFd;

use super::plan::{Action, Exec, Plan};

/// Exit status of a child that failed before exec.
const PRE_EXEC_FAILURE: libc::c_int = 127;

/// Runs the plan; never returns. `error_fd` is the close-on-exec write end of the error pipe.
///
/// # Safety
/// Must be called only in the child of a fork-like clone, with signals blocked, and `plan`
/// must be the plan built for this child before the clone.
pub(super) unsafe fn run(plan: &Plan, error_fd: RawFd) -> ! {
    for (index, step) in plan.steps.iter().enumerate() {
        if let Err(errno) = perform(&step.action) {
            report(error_fd, index as u32, errno);
            // SAFETY: _exit ends the process without running any user-space code.
            unsafe { libc::_exit(PRE_EXEC_FAILURE) };
        }
    }
    // The last step is exec, which does not return on success; a plan always ends with it.
    report(error_fd, plan.steps.len() as u32, libc::ENOEXEC);
    // SAFETY: as above.
    unsafe { libc::_exit(PRE_EXEC_FAILURE) }
}

/// Writes the 8-byte failure record; a lost record still reads as "died before exec".
fn report(fd: RawFd, index: u32, errno: i32) {
    let mut record = [0u8; 8];
    record[..4].copy_from_slice(&index.to_ne_bytes());
    record[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: `record` is a valid 8-byte buffer; a failed write is ignored on purpose.
    unsafe { libc::write(fd, record.as_ptr().cast(), record.len()) };
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Turns a libc-style return value into the errno of a failure.
fn check(rc: libc::c_long) -> Result<(), i32> {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn perform(action: &Action) -> Result<(), i32> {
    // SAFETY (for every call below): each is a system call given either plain integers or
    // pointers to NUL-terminated strings and arrays prepared by the plan, which lives in this
    // process's copy of the supervisor's memory and is not freed before exec. None of them
    // allocates or touches state shared with other threads of the supervisor.
    unsafe {
        match action {
            Action::DieWithParent => {
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) as _)
            }
            Action::AwaitParent { fd } => {
                let mut byte = 0u8;
                loop {
                    let n = libc::read(*fd, (&mut byte as *mut u8).cast(), 1);
                    match n {
                        1 => return Ok(()),
                        0 => return Err(libc::ECANCELED),
                        _ if errno() == libc::EINTR => continue,
                        _ => return Err(errno()),
                    }
                }
            }
            Action::CheckParentAlive { fd } => {
                let mut pfd = libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                check(libc::poll(&mut pfd, 1, 0) as _)?;
                if pfd.revents & libc::POLLHUP != 0 {
                    Err(libc::ECANCELED)
                } else {
                    Ok(())
                }
            }
            Action::UnshareCgroupNamespace => check(libc::unshare(libc::CLONE_NEWCGROUP) as _),
            // Raw system calls for the id changes: glibc's wrappers apply them to every thread
            // of the process (signalling each one and waiting), and this copy of the
            // supervisor has one thread while glibc's bookkeeping still lists them all.
            Action::SetGroups(gids) => check(libc::syscall(
                libc::SYS_setgroups,
                gids.len() as libc::c_long,
                gids.as_ptr(),
            )),
            Action::SetResGid(gid) => check(libc::syscall(
                libc::SYS_setresgid,
                *gid as libc::c_long,
                *gid as libc::c_long,
                *gid as libc::c_long,
            )),
            Action::SetResUid(uid) => check(libc::syscall(
                libc::SYS_setresuid,
                *uid as libc::c_long,
                *uid as libc::c_long,
                *uid as libc::c_long,
            )),
            Action::Dup2 { from, to } => check(libc::dup2(*from, *to) as _),
            Action::CloseOthersOnExec { first } => check(libc::syscall(
                libc::SYS_close_range,
                *first as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )),
            Action::MakeMountsPrivate => check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) as _),
            Action::MountTmpfs {
                target,
                flags,
                data,
            } => check(libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                *flags,
                data.as_ptr().cast(),
            ) as _),
            Action::MkDir { path, mode } => {
                if libc::mkdir(path.as_ptr(), *mode) == 0 || errno() == libc::EEXIST {
                    Ok(())
                } else {
                    Err(errno())
                }
            }
            Action::CreateFile { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                );
                check(fd as _)?;
                libc::close(fd);
                Ok(())
            }
            Action::PivotRoot { new_root, put_old } => check(libc::syscall(
                libc::SYS_pivot_root,
                new_root.as_ptr(),
                put_old.as_ptr(),
            )),
            Action::ChDir { path } => check(libc::chdir(path.as_ptr()) as _),
            Action::Bind { source, target } => check(libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) as _),
            Action::Remount { target, flags } => check(libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | *flags,
                std::ptr::null(),
            ) as _),
            Action::Symlink { value, link } => {
                check(libc::symlink(value.as_ptr(), link.as_ptr()) as _)
            }
            Action::MountProc {
                target,
                flags,
                data,
            } => check(libc::mount(
                c"proc".as_ptr(),
                target.as_ptr(),
                c"proc".as_ptr(),
                *flags,
                data.as_ptr().cast(),
            ) as _),
            Action::Detach { target } => {
                check(libc::umount2(target.as_ptr(), libc::MNT_DETACH) as _)
            }
            Action::RmDir { path } => check(libc::rmdir(path.as_ptr()) as _),
            Action::SetRlimit {
                resource,
                soft,
                hard,
            } => {
                let limit = libc::rlimit64 {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                check(libc::setrlimit64(*resource, &limit) as _)
            }
            Action::SetNice(nice) => check(libc::setpriority(libc::PRIO_PROCESS, 0, *nice) as _),
            Action::DropBoundingSet { last_cap } => {
                for cap in 0..=*last_cap {
                    check(libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) as _)?;
                }
                Ok(())
            }
            Action::ClearAmbient => check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) as _),
            Action::SetSecurebits => {
                check(libc::prctl(libc::PR_SET_SECUREBITS, super::plan::SECUREBITS) as _)
            }
            Action::ClearCapabilities => clear_capabilities(),
            Action::NoNewPrivs => check(libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) as _),
            Action::Exec(exec) => exec_with_default_signals(exec),
        }
    }
}

/// `capset` with every set empty (version 3: two 32-bit words per set).
fn clear_capabilities() -> Result<(), i32> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: `header` and `data` have the kernel's layout for version 3 and live for the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })
}

/// Resets every signal to its default action and unblocks them all, then execs. Signals were
/// blocked across the clone so none of the supervisor's handlers could run in the child.
///
/// # Safety
/// `exec`'s pointer arrays must be valid and null-terminated.
unsafe fn exec_with_default_signals(exec: &Exec) -> Result<(), i32> {
    // SAFETY: signal() and sigprocmask() are async-signal-safe and take plain values; a
    // sigset_t is plain data. execve only returns on failure.
    unsafe {
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(exec.path.as_ptr(), exec.argv.as_ptr(), exec.envp.as_ptr());
    }
    Err(errno())
}
