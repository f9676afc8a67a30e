//! The process that serves the vhost-user GPU device on the other end of the engine's socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use super::child::{ExitDescription, SupervisedChild};
use super::frame::Frame;

/// QEMU's reference vhost-user GPU backend (Debian package qemu-system-gui).
pub const REFERENCE_BACKEND: &str = "/usr/lib/qemu/vhost-user-gpu";

/// Something that happened to the GPU process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuEvent {
    /// It ended. `blocked` names the system call (with arguments) its filter refused, when it
    /// reported one in trap-and-report mode.
    Exited {
        exit: ExitDescription,
        blocked: Option<String>,
    },
}

/// Where a GPU server reports [`GpuEvent`]s; called from its own threads.
pub type GpuSink = Box<dyn Fn(GpuEvent) + Send + Sync>;

/// A running vhost-user GPU server.
pub trait GpuServer: Send {
    /// Who it is, for messages: program, pid, confinement.
    fn describe(&self) -> String;
    /// Asks it to stop and exit.
    fn request_stop(&mut self);
    /// Kills it outright (harmless once it is gone).
    fn kill(&mut self);
    /// The current scanout, if this server can produce one (`None`: not supported).
    fn screenshot(&mut self) -> Option<Result<Frame, String>>;
}

/// QEMU's unjailed reference backend: a comparison point, never for untrusted guests.
pub struct ReferenceGpu {
    child: SupervisedChild,
}

impl ReferenceGpu {
    /// Starts the reference backend on `socket` (inherited at fd 3, `--fd=3`).
    pub fn spawn(socket: OwnedFd, sink: GpuSink) -> std::io::Result<ReferenceGpu> {
        if !Path::new(REFERENCE_BACKEND).exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{REFERENCE_BACKEND} is missing (apt package qemu-system-gui)"),
            ));
        }
        let mut cmd = Command::new(REFERENCE_BACKEND);
        cmd.arg("--fd=3").stdin(Stdio::null());
        let child = SupervisedChild::spawn(
            cmd,
            &[socket.as_raw_fd()],
            Box::new(move |exit| {
                sink(GpuEvent::Exited {
                    exit,
                    blocked: None,
                })
            }),
        )?;
        Ok(ReferenceGpu { child })
    }
}

impl GpuServer for ReferenceGpu {
    fn describe(&self) -> String {
        format!(
            "{REFERENCE_BACKEND} (pid {}, NOT jailed: reference backend, 2D only)",
            self.child.pid()
        )
    }

    fn request_stop(&mut self) {
        self.child.signal(libc::SIGTERM);
    }

    fn kill(&mut self) {
        self.child.kill();
    }

    fn screenshot(&mut self) -> Option<Result<Frame, String>> {
        None
    }
}

impl Drop for ReferenceGpu {
    fn drop(&mut self) {
        self.child.kill();
    }
}
