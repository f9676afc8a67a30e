//! Exhausting resources: each must stop at the jail's rlimits, not at the host's end.

use std::sync::{Arc, Mutex};

use control::probe::TechniqueRequest;

use super::memory::{map_anonymous, unmap_anonymous};
use super::sys::{self, addr_of, reg, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("thread_bomb", thread_bomb),
    ("memory_balloon", memory_balloon),
    ("fd_exhaustion", fd_exhaustion),
    ("file_size_limit", file_size_limit),
    (
        "file_size_limit_sigxfsz_ignored",
        file_size_limit_sigxfsz_ignored,
    ),
];

/// Threads started before giving up on hitting a limit.
const MAX_THREADS: usize = 4096;
/// Stack of each bomb thread: small, so the thread count, not memory, is what runs out.
const BOMB_STACK: usize = 64 * 1024;
/// Memory mapped per step, and the most mapped before giving up (never touched).
const BALLOON_STEP: u64 = 64 << 20;
const BALLOON_MAX: u64 = 1 << 40;
/// Descriptors opened before giving up.
const MAX_FDS: usize = 1 << 20;
/// The file the size probes write, and the most they write before giving up.
const BIG_FILE: &str = "/tmp/rayos-fsize-probe";
const BIG_FILE_MAX: u64 = 4 << 30;
const WRITE_CHUNK: usize = 1 << 20;

fn thread_bomb(_: &TechniqueRequest) -> Attempt {
    // Every thread blocks on this lock until the bomb is over, so all are alive at once.
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().map_err(|_| libc::EINVAL)?;
    let mut threads = Vec::new();
    let mut refusal = None;
    while threads.len() < MAX_THREADS {
        let gate = Arc::clone(&gate);
        match std::thread::Builder::new()
            .stack_size(BOMB_STACK)
            .spawn(move || drop(gate.lock()))
        {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                refusal = Some(e.raw_os_error().unwrap_or(libc::EAGAIN));
                break;
            }
        }
    }
    drop(held);
    let started = threads.len();
    threads.into_iter().for_each(|t| drop(t.join()));
    match refusal {
        Some(errno) => Err(errno),
        None => Ok(format!("started {started} threads without refusal")),
    }
}

fn memory_balloon(_: &TechniqueRequest) -> Attempt {
    let mut mapped = Vec::new();
    let mut refusal = None;
    while (mapped.len() as u64) * BALLOON_STEP < BALLOON_MAX {
        match map_anonymous(BALLOON_STEP, libc::MAP_NORESERVE) {
            Ok(addr) => mapped.push(addr),
            Err(errno) => {
                refusal = Some(errno);
                break;
            }
        }
    }
    let total = mapped.len() as u64 * BALLOON_STEP;
    mapped
        .into_iter()
        .for_each(|addr| unmap_anonymous(addr, BALLOON_STEP));
    match refusal {
        Some(errno) => Err(errno),
        None => Ok(format!("mapped {} MiB without refusal", total >> 20)),
    }
}

fn fd_exhaustion(_: &TechniqueRequest) -> Attempt {
    let mut fds = Vec::new();
    let mut refusal = None;
    while fds.len() < MAX_FDS {
        match sys::open("/", libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => fds.push(i64::from(fd)),
            Err(errno) => {
                refusal = Some(errno);
                break;
            }
        }
    }
    let opened = fds.len();
    fds.into_iter().for_each(sys::close);
    match refusal {
        Some(errno) => Err(errno),
        None => Ok(format!("opened {opened} descriptors without refusal")),
    }
}

fn file_size_limit(_: &TechniqueRequest) -> Attempt {
    write_big_file()
}

fn file_size_limit_sigxfsz_ignored(_: &TechniqueRequest) -> Attempt {
    // SAFETY: ignoring SIGXFSZ installs no handler; nothing else in the probe relies on it.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(sys::errno());
    }
    write_big_file()
}

/// Writes zeros to [`BIG_FILE`] until a write is refused.
fn write_big_file() -> Attempt {
    let fd = sys::open(BIG_FILE, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    let chunk = vec![0u8; WRITE_CHUNK];
    let mut written = 0u64;
    let mut refusal = None;
    while written < BIG_FILE_MAX {
        // SAFETY: `chunk` is readable for its whole length during the call.
        match unsafe {
            sys::syscall(
                libc::SYS_write,
                &[reg(fd.into()), addr_of(&chunk[0]), chunk.len() as u64],
            )
        } {
            Ok(n) => written += n as u64,
            Err(errno) => {
                refusal = Some(errno);
                break;
            }
        }
    }
    sys::close(fd.into());
    match refusal {
        Some(errno) => Err(errno),
        None => Ok(format!("wrote {written} bytes without refusal")),
    }
}
