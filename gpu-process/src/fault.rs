//! Fault injection for the fault tests (probe builds only):
//! `RAYOS_GPU_FAULT=segv|abort|hang|close-tube` makes the thread that serves the device crash,
//! abort, spin for ever or close the control tube 5 seconds after the scanout first shows
//! pixels, that is while the guest renders. `balloon`, `threads` and `descriptors` make it take
//! memory, threads or descriptors at that moment until the jail's limit refuses one, say where
//! it was stopped, give everything back and serve on; `spin` starts threads that burn the CPU
//! for 10 s: the containment tests.

use std::io::Write;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after the first frame with pixels the fault strikes.
const DELAY: Duration = Duration::from_secs(5);
/// The descriptor the control tube is installed at (as in main.rs).
const TUBE_FD: i32 = 3;

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Segv,
    Abort,
    Hang,
    CloseTube,
    Balloon,
    Threads,
    Descriptors,
    Spin,
}

fn configured() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| match std::env::var("RAYOS_GPU_FAULT").ok()?.as_str() {
        "segv" => Some(Fault::Segv),
        "abort" => Some(Fault::Abort),
        "hang" => Some(Fault::Hang),
        "close-tube" => Some(Fault::CloseTube),
        "balloon" => Some(Fault::Balloon),
        "threads" => Some(Fault::Threads),
        "descriptors" => Some(Fault::Descriptors),
        "spin" => Some(Fault::Spin),
        _ => None,
    })
}

/// Called on the serving thread each time a frame with pixels is handed out.
pub fn frame_shown() {
    static FIRST: OnceLock<Instant> = OnceLock::new();
    static STRUCK: OnceLock<()> = OnceLock::new();
    let Some(fault) = configured() else {
        return;
    };
    if FIRST.get_or_init(Instant::now).elapsed() < DELAY || STRUCK.set(()).is_err() {
        return;
    }
    match fault {
        // SAFETY: not sound, on purpose: the write faults, which is the fault being tested.
        // Only probe builds (debug, for the fault tests; release builds refuse the feature)
        // compile this.
        Fault::Segv => unsafe { std::ptr::null_mut::<u8>().write_volatile(1) },
        Fault::Abort => std::process::abort(),
        Fault::Hang => loop {
            std::hint::spin_loop();
        },
        Fault::CloseTube => close_tube_and_live_on(),
        Fault::Balloon => say(&balloon()),
        Fault::Threads => say(&thread_bomb()),
        Fault::Descriptors => say(&descriptor_bomb()),
        Fault::Spin => say(&spin()),
    }
}

/// Threads that burn the CPU for a while, beside the renderer.
const SPINNERS: usize = 8;
const SPIN_FOR: Duration = Duration::from_secs(10);

/// Starts [`SPINNERS`] threads that spin for [`SPIN_FOR`] and end; returns at once.
fn spin() -> String {
    for _ in 0..SPINNERS {
        let started = std::thread::Builder::new().stack_size(64 << 10).spawn(|| {
            let until = Instant::now() + SPIN_FOR;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        if let Err(e) = started {
            return format!("spinning: a thread was refused: {e}");
        }
    }
    format!("spinning {SPINNERS} threads for {} s", SPIN_FOR.as_secs())
}

/// One line on stderr, which rayvmm forwards to its log.
fn say(what: &str) {
    let _ = writeln!(std::io::stderr(), "ray-gpu: fault: {what}");
}

/// Maps 64 MiB of private writable memory at a time until the kernel refuses (RLIMIT_DATA),
/// then unmaps it all.
fn balloon() -> String {
    const CHUNK: usize = 64 << 20;
    let mut chunks = Vec::new();
    let refused = loop {
        // SAFETY: a new anonymous private mapping at an address the kernel picks: it aliases
        // nothing; the result is checked before use, and it is unmapped below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            break std::io::Error::last_os_error();
        }
        chunks.push(ptr);
    };
    let taken = chunks.len() * (CHUNK >> 20);
    for ptr in chunks {
        // SAFETY: unmaps exactly a mapping made above, which nothing else uses.
        unsafe { libc::munmap(ptr, CHUNK) };
    }
    format!("memory refused after {taken} MiB more: {refused}")
}

/// Starts threads that wait until the kernel refuses one (RLIMIT_NPROC), then lets them end.
fn thread_bomb() -> String {
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    let mut threads = Vec::new();
    let refused = loop {
        let released = std::sync::Arc::clone(&released);
        let started = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let _ = released.lock().map(|r| r.recv());
            });
        match started {
            Ok(thread) => threads.push(thread),
            Err(e) => break e,
        }
    };
    let count = threads.len();
    drop(release);
    for thread in threads {
        let _ = thread.join();
    }
    format!("thread refused after {count} more: {refused}")
}

/// Opens the root directory until the kernel refuses (RLIMIT_NOFILE), then closes them all.
fn descriptor_bomb() -> String {
    let mut fds = Vec::new();
    let refused = loop {
        match std::fs::File::open("/") {
            Ok(file) => fds.push(file),
            Err(e) => break e,
        }
    };
    format!("descriptor refused after {} more: {refused}", fds.len())
}

/// Says so on stderr, closes the control tube and lets the process live on, serving the
/// device: what a compromised GPU process that wants to escape rayvmm's watch would do.
///
/// The tube thread waits for this frame's answer; its next send fails on the closed
/// descriptor, and it would end the process (exit 2) after printing why. So a helper thread
/// first takes stderr's lock and keeps it: the tube thread's error message waits for it for
/// ever, and the process does not end. The serving thread returns and serves on (unless it
/// logs a line, which waits the same way).
fn close_tube_and_live_on() {
    let (held, stderr_held) = mpsc::channel();
    let holder = std::thread::Builder::new()
        .name("fault-stderr".into())
        .spawn(move || {
            let mut stderr = std::io::stderr().lock();
            // Said first, so the test can time rayvmm's detection from here.
            let _ = writeln!(stderr, "ray-gpu: fault: closing the control tube");
            let _ = held.send(());
            loop {
                std::thread::park();
            }
        });
    if holder.is_err() || stderr_held.recv().is_err() {
        // No thread, so nothing would keep the process alive: the fault cannot be staged.
        std::process::abort();
    }
    // SAFETY: closes the tube's descriptor behind the back of the `Tube` that owns it, on
    // purpose: that is the fault. The owner is never dropped (its thread ends up waiting for
    // stderr for ever, and the process is killed), so the number is never closed twice.
    unsafe {
        libc::close(TUBE_FD);
    }
}
