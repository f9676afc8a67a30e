//! Machine engines: what runs the guest's vCPUs around rayvmm's memory and GPU socket.
//!
//! An engine gets a [`MachineSpec`] (guest RAM as a memfd, the vhost-user GPU socket, the boot
//! source, the display) and starts a [`Machine`]. The only engine today is QEMU
//! ([`qemu::QemuEngine`]); rayvmm's own KVM engine can implement the same trait later.
//! Engines report asynchronous happenings (the guest shut down, the engine exited) through
//! an [`EventSink`], so the supervisor can wait on every child in one place.

pub mod accel;
pub mod qemu;
pub mod qmp;

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use thiserror::Error;

pub use accel::{Accelerator, AcceleratorChoice};

pub use crate::vm::child::ExitDescription;
use crate::vm::frame::Frame;
use crate::vm_config::{BootSource, DisplaySize};

/// Why an engine failed.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("running {binary} --version failed")]
    VersionProbe {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} printed no QEMU version: {output:?}")]
    VersionUnknown { binary: String, output: String },
    #[error("{binary} is QEMU {found}; rayvmm needs QEMU 8 or later (vhost-user under TCG), e.g. qemu-system-x86 from bookworm-backports (scripts/setup-guest-tools.sh installs it)")]
    TooOld { binary: String, found: String },
    #[error("starting {binary} failed")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("creating the engine's {what} failed")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("QEMU did not start (its own messages are above)")]
    Start(#[source] qmp::QmpError),
    #[error(transparent)]
    Qmp(#[from] qmp::QmpError),
    #[error("screenshot: {0}")]
    Screenshot(String),
}

/// What any engine needs to build the machine.
#[derive(Debug)]
pub struct MachineSpec<'a> {
    /// Guest RAM: a memfd of exactly `memory_mib` MiB, shared with the GPU process.
    pub memory: BorrowedFd<'a>,
    pub memory_mib: u64,
    pub cpus: u32,
    pub accelerator: Accelerator,
    pub boot: &'a BootSource,
    /// The engine's end of the vhost-user socketpair to the GPU process.
    pub gpu_socket: BorrowedFd<'a>,
    /// Display size the device offers the guest.
    pub display: DisplaySize,
}

/// Something that happened to a running machine, reported asynchronously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// The machine is going down; `guest` is true when the guest asked for it (power-off,
    /// reset, panic), and `reason` is the engine's word for why.
    ShuttingDown { guest: bool, reason: String },
    /// The engine process ended.
    Exited(ExitDescription),
}

/// Where an engine reports [`EngineEvent`]s; called from the engine's own threads.
pub type EventSink = Arc<dyn Fn(EngineEvent) + Send + Sync>;

/// A running machine.
pub trait Machine: Send {
    /// The engine's process id, for messages.
    fn pid(&self) -> u32;
    /// Asks the engine to stop the machine and exit (QMP `quit` for QEMU).
    fn request_quit(&mut self) -> Result<(), EngineError>;
    /// The current scanout as the engine's display sees it.
    fn screenshot(&mut self) -> Result<Frame, EngineError>;
    /// Kills the engine outright (idempotent; harmless once it exited).
    fn kill(&mut self);
    /// Asks the engine whether it still answers (QMP `query-status` for QEMU), waiting at
    /// most `timeout`.
    fn ping(&mut self, timeout: std::time::Duration) -> Result<(), EngineError>;
}
