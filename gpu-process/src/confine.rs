//! The confinement ray-gpu finishes itself after exec: Landlock, then (after the renderer has
//! started) the seccomp filter, with the SIGSYS reporter in trap-and-report mode.

use std::os::fd::RawFd;

use control::messages::LandlockRules;
use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, RulesetStatus, Scope, ABI,
};
use thiserror::Error;

/// The newest Landlock ABI asked for; older kernels enforce what they can (best effort).
const LANDLOCK_ABI: ABI = ABI::V6;

/// Why confinement could not be finished.
#[derive(Debug, Error)]
pub enum ConfineError {
    #[error("applying Landlock rules failed: {0}")]
    Landlock(#[from] RulesetError),
    #[error("installing the SIGSYS reporter failed: {0}")]
    Sigsys(#[source] std::io::Error),
    #[error("installing the seccomp filter failed: {0}")]
    Seccomp(#[from] seccompiler::Error),
    #[error("the seccomp filter has {0} instructions; the kernel takes 1 to 4096")]
    FilterSize(usize),
    #[error("restoring the default action of signal {signal} failed: {source}")]
    DefaultSignal {
        signal: i32,
        #[source]
        source: std::io::Error,
    },
}

/// Restricts file access to `rules` (and TCP and cross-domain signals and abstract sockets
/// to nothing). Returns whether the kernel enforced the rules, fully or in part.
pub fn apply_landlock(rules: &LandlockRules) -> Result<bool, ConfineError> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))?
        .scope(Scope::from_all(LANDLOCK_ABI))?
        .create()?
        .add_rules(path_beneath_rules(
            &rules.read_only,
            AccessFs::from_read(LANDLOCK_ABI),
        ))?
        .add_rules(path_beneath_rules(&rules.list_only, AccessFs::ReadDir))?
        .add_rules(path_beneath_rules(
            &rules.read_write,
            AccessFs::from_all(LANDLOCK_ABI),
        ))?
        .restrict_self()?;
    Ok(status.ruleset != RulesetStatus::NotEnforced)
}

/// Installs the packed filter on every thread; in trap-and-report mode first installs the
/// SIGSYS handler that reports a refused call on `tube`.
pub fn install_filter(packed: &[u64], report_on: Option<RawFd>) -> Result<(), ConfineError> {
    if packed.is_empty() || packed.len() > 4096 {
        return Err(ConfineError::FilterSize(packed.len()));
    }
    if let Some(tube) = report_on {
        crate::sigsys::install(tube).map_err(ConfineError::Sigsys)?;
    }
    crash_signals_kill()?;
    let program = seccomp::bpf_from_words(packed);
    seccompiler::apply_filter_all_threads(&program)?;
    Ok(())
}

/// Gives SIGSEGV and SIGBUS their default action back. The Rust runtime catches them to
/// report stack overflows; returning from any handler needs `rt_sigreturn`, which the filter
/// refuses, so a real crash would be reported as a refused system call (SIGSYS). With the
/// default action a crash is reported as what it is.
fn crash_signals_kill() -> Result<(), ConfineError> {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: SIG_DFL installs no handler, so no code of ours runs on the signal; the
        // previous handler (the runtime's stack-overflow reporter) is not needed in the jail.
        let previous = unsafe { libc::signal(signal, libc::SIG_DFL) };
        if previous == libc::SIG_ERR {
            return Err(ConfineError::DefaultSignal {
                signal,
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_is_refused() {
        let err = install_filter(&[], None).unwrap_err();

        assert!(matches!(err, ConfineError::FilterSize(0)), "{err}");
    }
}
