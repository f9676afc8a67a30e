//! ray-gpu's log: `log` records on stderr, one line each, prefixed `ray-gpu:`.
//!
//! The device code reports refused vhost-user requests, queue faults and renderer errors
//! through `log`; without a logger they would vanish. rayvmm decides where stderr goes (its own
//! stderr for `rayvmm run`, nothing otherwise). The level is `warn`, or the one named by
//! `RAYOS_GPU_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`) when the supervisor puts
//! it into the jail's environment.
//!
//! The logger writes to its own duplicate of stderr, taken at start: debug builds of rutabaga
//! point descriptor 2 at stdout (which rayvmm sends nowhere) while the renderer starts.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable naming the level.
pub const LEVEL_VAR: &str = "RAYOS_GPU_LOG";

struct StderrLogger {
    stderr: OnceLock<File>,
}

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
        if let Some(mut stderr) = self.stderr.get() {
            let _ = stderr.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger {
    stderr: OnceLock::new(),
};

/// Installs the logger; call once, before the renderer starts and before the filter.
pub fn init() {
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
        // No stderr to write to: nothing would be seen anyway.
        return;
    };
    let _ = LOGGER.stderr.set(File::from(stderr));
    let level = std::env::var(LEVEL_VAR)
        .ok()
        .and_then(|value| value.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Warn);
    // Fails only if a logger is already installed, which leaves that one in place.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
