//! Turning the signals rayvmm reacts to into events on one thread.
//!
//! The signals are blocked in every thread (call [`block`] before starting any other
//! thread) and taken synchronously by a dedicated thread with `sigwait`, so no handler runs
//! in an arbitrary context. Children get a clean signal mask from the standard library.

use nix::sys::signal::{SigSet, Signal};

/// The signals `rayvmm run` handles: stop requests and the screenshot request.
pub const HANDLED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
];

fn set() -> SigSet {
    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    set
}

/// Blocks the handled signals in the calling thread (and threads it starts later).
pub fn block() -> nix::Result<()> {
    set().thread_block()
}

/// Starts a thread that calls `deliver` for each handled signal, forever.
pub fn spawn_listener(deliver: impl Fn(Signal) + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let set = set();
            while let Ok(signal) = set.wait() {
                deliver(signal);
            }
        })?;
    Ok(())
}
