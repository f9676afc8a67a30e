//! Where the backend's messages go: standard error, and syslog as well when standard error is
//! /dev/null. libvirt starts vhost-user backends detached, with both output streams on
//! /dev/null, so without syslog a backend that fails under libvirt would fail silently; on a
//! host with a syslog socket (journald's /dev/log) the lines land in the journal.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether messages also go to syslog.
static SYSLOG: AtomicBool = AtomicBool::new(false);

/// Decides where messages go; call once, early.
pub fn init() {
    if !stderr_is_dev_null() {
        return;
    }
    // SAFETY: the identity is a 'static C string, as openlog requires (it keeps the pointer).
    unsafe { libc::openlog(c"ray-gpu-backend".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    SYSLOG.store(true, Ordering::Release);
}

/// Prints one of the backend's messages.
pub fn say(message: &str) {
    eprintln!("ray-gpu-backend: {message}");
    if SYSLOG.load(Ordering::Acquire) {
        let line = CString::new(message.replace('\0', " ")).expect("NULs were replaced");
        // SAFETY: both pointers are valid C strings for the call; the message is passed as an
        // argument of a constant "%s" format, never as the format itself.
        unsafe { libc::syslog(libc::LOG_NOTICE, c"%s".as_ptr(), line.as_ptr()) };
    }
}

/// Whether descriptor 2 is /dev/null.
fn stderr_is_dev_null() -> bool {
    std::fs::read_link("/proc/self/fd/2").is_ok_and(|target| target.as_os_str() == "/dev/null")
}
