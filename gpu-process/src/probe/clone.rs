//! New processes and threads: only threads may be made.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("clone3", clone3),
    ("clone_newuser", clone_newuser),
    ("fork", fork),
    ("vfork", vfork),
    ("thread", thread),
];

/// Stack for the `vfork`-style child, which only calls `_exit`.
const CHILD_STACK: usize = 64 * 1024;

/// What a started thread hands back, to show it ran.
const THREAD_RESULT: u32 = 7;

fn clone3(_: &TechniqueRequest) -> Attempt {
    // SAFETY: clone_args is plain data; all-zero is valid and is filled in below.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: `args` is a valid clone_args of the size passed. With no CLONE_VM and no new
    // stack the child gets a copy of this address space and only calls `_exit`.
    let rc = unsafe {
        sys::syscall(
            libc::SYS_clone3,
            &[addr_of(&args), std::mem::size_of_val(&args) as u64],
        )
    };
    forked(rc)
}

fn clone_newuser(_: &TechniqueRequest) -> Attempt {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
    // SAFETY: no CLONE_VM and no new stack: the child runs on a copy of this address space
    // and only calls `_exit`.
    let rc = unsafe { sys::syscall(libc::SYS_clone, &[flags, 0, 0, 0, 0]) };
    forked(rc)
}

fn fork(_: &TechniqueRequest) -> Attempt {
    // SAFETY: the child only calls `_exit`, which is async-signal-safe.
    let rc = unsafe { libc::fork() };
    forked(if rc < 0 {
        Err(sys::errno())
    } else {
        Ok(rc.into())
    })
}

fn vfork(_: &TechniqueRequest) -> Attempt {
    extern "C" fn child(_: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `_exit` ends the child without touching the memory it shares with us.
        unsafe { libc::_exit(0) }
    }
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: one past the end of `stack` is its top; x86_64 stacks grow down from there.
    let top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) }.cast::<libc::c_void>();
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    // SAFETY: `child` runs on its own stack, which outlives it (CLONE_VFORK suspends us until
    // it exits), and only calls `_exit`.
    let rc = unsafe { libc::clone(child, top, flags, std::ptr::null_mut()) };
    drop(stack);
    if rc < 0 {
        Err(sys::errno())
    } else {
        Ok(format!("started child {rc} sharing our memory"))
    }
}

fn thread(_: &TechniqueRequest) -> Attempt {
    let handle = std::thread::Builder::new()
        .name("probe-thread".into())
        .spawn(|| THREAD_RESULT)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EAGAIN))?;
    let value = handle.join().map_err(|_| libc::EINVAL)?;
    Ok(format!("thread returned {value}"))
}

/// The parent's view of a fork-like call; the child, if one was made, exits at once.
fn forked(rc: Result<i64, i32>) -> Attempt {
    match rc {
        // SAFETY: in the child, `_exit` leaves without running anything of the parent's.
        Ok(0) => unsafe { libc::_exit(0) },
        Ok(pid) => Ok(format!("started child {pid}")),
        Err(errno) => Err(errno),
    }
}
