//! ray-gpu's log: `log` records on stderr, one line each, prefixed `ray-gpu:`.
//!
//! The device code reports refused vhost-user requests, queue faults and renderer errors
//! through `log`; without a logger they would vanish. rayvmm decides where stderr goes (its own
//! stderr for `rayvmm run`, nothing otherwise). The level is `warn`, or the one named by
//! `RAYOS_GPU_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`) when the supervisor puts
//! it into the jail's environment.
//!
//! Debug builds of rutabaga point descriptor 2 at stdout (which rayvmm sends nowhere) while
//! the renderer starts; [`KeepStderr`] puts the real stderr back afterwards, so the process
//! ends up with the descriptors it started with and nothing more.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable naming the level.
pub const LEVEL_VAR: &str = "RAYOS_GPU_LOG";

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per line, so lines from different threads do not interleave; a failed
        // write (stderr closed) has nowhere to be reported.
        let line = format!(
            "ray-gpu: {} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger; call once.
pub fn init() {
    let level = std::env::var(LEVEL_VAR)
        .ok()
        .and_then(|value| value.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Warn);
    // Fails only if a logger is already installed, which leaves that one in place.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Lowest descriptor number for the saved copy of stderr (below the jail's RLIMIT_NOFILE).
const SAVED_FD_MIN: libc::c_int = 512;

/// A copy of stderr taken before the renderer starts, put back on descriptor 2 by
/// [`KeepStderr::restore`] (before the filter: it needs `dup2`).
pub struct KeepStderr {
    saved: Option<OwnedFd>,
}

impl KeepStderr {
    /// Copies descriptor 2 (none if it is closed) to a high number, so the descriptors the
    /// renderer opens meanwhile get the numbers they would get without the copy.
    pub fn save() -> KeepStderr {
        // SAFETY: F_DUPFD_CLOEXEC on descriptor 2 only creates a new descriptor; its result
        // is checked and owned below.
        let fd = unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_DUPFD_CLOEXEC, SAVED_FD_MIN) };
        KeepStderr {
            // SAFETY: a non-negative result is a fresh descriptor that nothing else owns.
            saved: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) }),
        }
    }

    /// Points descriptor 2 at the saved stderr again and closes the copy.
    pub fn restore(self) -> std::io::Result<()> {
        let Some(saved) = self.saved else {
            return Ok(());
        };
        // SAFETY: dup2 onto descriptor 2 replaces only what stderr refers to; `saved` is an
        // open descriptor owned here, closed when it drops below.
        if unsafe { libc::dup2(saved.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
