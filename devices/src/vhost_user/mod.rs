//! The vhost-user backend: serves a device model to a vhost-user frontend (QEMU's
//! `vhost-user-gpu-pci`, or rayvmm's own engine) over an already-connected socket, such as the
//! socketpair end ray-gpu inherits.
//!
//! The frontend shares guest memory (memfds) and each ring's addresses and kick/call eventfds;
//! from then on the guest's notifications reach a worker thread here directly, and it
//! interrupts the guest directly through the call eventfds. Display output goes back to the
//! frontend over the vhost-user-gpu display socket ([`DisplaySocket`]).
//!
//! ```text
//!  serve() thread:  BackendReqHandler (vhost crate) -> Handler -> Core (lock) <- worker thread
//!                                                                   |            (kicks, fences)
//!                                                              DeviceModel --> DisplaySocket
//!                                                                                 (writer thread)
//! ```
//!
//! Every request is checked (ring indexes, sizes, alignment, addresses inside the shared
//! memory, memory regions against their files); a bad request is refused, never a panic. A
//! refused request does not end the connection; a broken socket does.

mod core;
mod device;
mod display;
mod handler;
mod memory;
mod vring;
mod worker;

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use vhost::vhost_user::{BackendReqHandler, Error as VhostError};

pub use self::device::DeviceModel;
pub use self::display::{
    DisplayError, DisplayMode, DisplaySocket, CURSOR_BYTES, CURSOR_SIZE, MAX_UPDATE_PAYLOAD,
};
pub use self::handler::{protocol_features, TRANSPORT_FEATURES};
pub use self::memory::MAX_REGIONS;
pub use self::vring::MAX_QUEUE_SIZE;

use self::core::{lock, Core};
use self::handler::Handler;
use self::worker::Worker;

/// Why serving stopped.
#[derive(Debug, Error)]
pub enum Error {
    #[error("starting the ring worker failed: {0}")]
    Worker(#[source] std::io::Error),
    #[error("the vhost-user connection broke: {0}")]
    Connection(#[source] VhostError),
}

/// A handle on the device being served, usable from other threads (screenshots, statistics).
pub struct DeviceHandle<D> {
    core: Arc<Mutex<Core<D>>>,
}

impl<D> Clone for DeviceHandle<D> {
    fn clone(&self) -> Self {
        DeviceHandle {
            core: Arc::clone(&self.core),
        }
    }
}

impl<D: DeviceModel> DeviceHandle<D> {
    /// Runs `f` on the device while holding the lock the rings are served under.
    pub fn with<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        f(&mut lock(&self.core).device)
    }
}

/// A device ready to be served over vhost-user.
pub struct Backend<D> {
    core: Arc<Mutex<Core<D>>>,
}

impl<D: DeviceModel> Backend<D> {
    /// Wraps `device`; nothing runs until [`Backend::serve`].
    pub fn new(device: D) -> Self {
        Backend {
            core: Arc::new(Mutex::new(Core::new(device))),
        }
    }

    /// A handle on the device for other threads.
    pub fn handle(&self) -> DeviceHandle<D> {
        DeviceHandle {
            core: Arc::clone(&self.core),
        }
    }

    /// Serves the frontend on `stream` until it disconnects (`Ok`) or the connection breaks.
    pub fn serve(self, stream: UnixStream) -> Result<(), Error> {
        let worker = Worker::start(Arc::clone(&self.core)).map_err(Error::Worker)?;
        let handler = Handler::new(Arc::clone(&self.core), worker.kicks());
        let mut requests = BackendReqHandler::from_stream(stream, Arc::new(Mutex::new(handler)));
        let result = loop {
            match requests.handle_request() {
                Ok(()) => {}
                Err(VhostError::Disconnected) => break Ok(()),
                Err(e) if connection_lost(&e) => break Err(Error::Connection(e)),
                Err(e) => log::warn!("vhost-user: request failed: {e}"),
            }
        };
        // Stop serving rings before the device goes away with the last handle.
        drop(worker);
        result
    }
}

/// Serves `device` on `stream` until the frontend disconnects.
pub fn serve<D: DeviceModel>(stream: UnixStream, device: D) -> Result<(), Error> {
    Backend::new(device).serve(stream)
}

/// Whether an error from the request loop means the socket is unusable.
fn connection_lost(error: &VhostError) -> bool {
    matches!(
        error,
        VhostError::PartialMessage
            | VhostError::SocketBroken(_)
            | VhostError::SocketError(_)
            | VhostError::SocketConnect(_)
    )
}
