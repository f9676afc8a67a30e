//! The jail builder: spawns a program in the jail of DESIGN.md, step by step in its order.
//!
//! minijail is not obtainable here, so this does minijail's steps itself on raw system calls:
//! 1. fork + exec through a raw `clone` (fresh ASLR), only the descriptors passed, an exact
//!    environment, `PR_SET_PDEATHSIG(SIGKILL)`;
//! 2. new user, pid, mount, network, ipc, uts and cgroup namespaces, one-to-one id maps of an
//!    unprivileged host identity (nobody by default; never host root);
//! 3. a size-capped empty tmpfs as root, read-only binds of what the GL stack loads, the GPU
//!    device nodes that exist, a fresh procfs, pivot_root and the old root detached;
//! 4. rlimits, the bounding set emptied, locked securebits, every capability set emptied,
//!    `no_new_privs`, and a delegated cgroup v2 where one is configured.
//!
//! Landlock and the seccomp filter (steps 4 and 5 of DESIGN.md) are applied by the jailed
//! program itself after exec; the supervisor verifies the result ([`verify`]).
//!
//! How the capability sets end up empty: the child's user namespace maps only the jail's
//! nonzero ids, so namespace root (uid 0) does not exist there. The child, which holds every
//! capability in its new namespace, changes to the jail's ids (no capability fixup applies,
//! as neither id is namespace root), uses its capabilities to build the mount tree, then
//! empties the bounding set, clears ambient capabilities, locks securebits `NOROOT` and
//! `NO_SETUID_FIXUP` with `KEEP_CAPS` off, empties its own sets with `capset` and sets
//! `no_new_privs`. At exec a non-root uid with empty ambient and inheritable sets gains
//! nothing (no file capabilities count under `no_new_privs` and nosuid mounts), so the
//! program starts with every set, the bounding set included, empty.

mod child;
pub mod config;
mod idmap;
mod plan;
mod process;
mod spawn;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use thiserror::Error;

pub use config::{
    render_nodes, CgroupLimits, ChildStderr, JailConfig, JailIds, PassFd, Resource, Rlimit,
    TreeEntry, DRI_DIR,
};
pub use idmap::IdMapError;
pub use plan::PlanError;
pub use process::{ExitStatus, JailedProcess};

/// Why a jailed process could not be started.
#[derive(Debug, Error)]
pub enum JailError {
    #[error(transparent)]
    Ids(#[from] IdMapError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("descriptor target {0} is invalid: targets must be 3 or more, unique, and below RLIMIT_NOFILE")]
    FdTarget(i32),
    #[error("opening /dev/null for the child's standard streams failed: {0}")]
    DevNull(#[source] std::io::Error),
    #[error("preparing the child's descriptors failed: {0}")]
    Descriptors(#[source] std::io::Error),
    #[error("reading /proc/sys/kernel/cap_last_cap failed: {0}")]
    LastCap(#[source] std::io::Error),
    #[error("clone into new namespaces failed: {0}")]
    Clone(#[source] std::io::Error),
    #[error("opening a pidfd for the child failed: {0}")]
    PidFd(#[source] std::io::Error),
    #[error("writing {path} failed: {source}")]
    IdMap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up cgroup {path} failed: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("letting the child go on failed: {0}")]
    Release(#[source] std::io::Error),
    #[error("reading the child's error pipe failed: {0}")]
    ErrorPipe(#[source] std::io::Error),
    #[error("the child did not reach exec within {0:?}")]
    ExecTimeout(Duration),
    /// A step of the jail failed in the child, before exec.
    #[error("{step} failed: {errno}")]
    PreExec { step: String, errno: Errno },
}

/// Spawns `config.program` in its jail, with each of `fds` at its target number.
///
/// Returns once the program has been exec'd, or with the step that failed before. The child
/// is killed and reaped if anything fails after the clone.
pub fn spawn(config: &JailConfig, fds: &[PassFd<'_>]) -> Result<JailedProcess, JailError> {
    spawn::spawn(config, fds)
}
