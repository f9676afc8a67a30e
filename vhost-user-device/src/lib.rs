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
//!  serving thread:  epoll { socket -> BackendReqHandler (vhost crate) -> Handler -> Core,
//!                           kicks, fence event -> Core -> DeviceModel -> DisplaySocket,
//!                           jobs from DeviceHandle (screenshots) -> DeviceModel }
//!  display writer thread: DisplaySocket queue -> display socket
//! ```
//!
//! Everything that touches the device runs on the thread that calls [`Backend::serve`]: the
//! renderer behind the GPU model is neither `Send` nor usable from another thread.
//!
//! Every request is checked (ring indexes, sizes, alignment, addresses inside the shared
//! memory, memory regions against their files); a bad request is refused, never a panic. A
//! refused request does not end the connection; a broken socket does.

mod core;
mod device;
mod gpu;
mod handler;
mod memory;
mod vring;
mod worker;

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use vhost::vhost_user::{BackendReqHandler, Error as VhostError};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub use self::device::DeviceModel;
pub use self::handler::{protocol_features, TRANSPORT_FEATURES};
pub use self::memory::MAX_REGIONS;
pub use self::vring::MAX_QUEUE_SIZE;
pub use qemu_display::{
    DisplayError, DisplayMode, DisplaySocket, CURSOR_BYTES, CURSOR_SIZE, MAX_UPDATE_PAYLOAD,
};

use self::core::Core;
use self::handler::Handler;
use self::worker::{Kicks, Ready};

/// Why serving stopped, or a job could not run.
#[derive(Debug, Error)]
pub enum Error {
    #[error("setting up the serving loop failed: {0}")]
    Setup(#[source] std::io::Error),
    #[error("waiting for events failed: {0}")]
    Wait(#[source] std::io::Error),
    #[error("the vhost-user connection broke: {0}")]
    Connection(#[source] VhostError),
    #[error("the device is no longer being served")]
    NotServing,
}

/// Work sent to the serving thread.
type Job<D> = Box<dyn FnOnce(&mut D) + Send>;

/// A handle on the served device for other threads (screenshots, statistics). Cheap to clone.
pub struct DeviceHandle<D> {
    jobs: Sender<Job<D>>,
    wake: Arc<EventFd>,
}

impl<D> Clone for DeviceHandle<D> {
    fn clone(&self) -> Self {
        DeviceHandle {
            jobs: self.jobs.clone(),
            wake: Arc::clone(&self.wake),
        }
    }
}

impl<D: DeviceModel> DeviceHandle<D> {
    /// Runs `f` on the device, on the serving thread between two requests, and returns its
    /// result. Fails if the device is not being served (before [`Backend::serve`] runs the
    /// job, it waits; after serving ended, it fails).
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut D) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (reply, result) = channel();
        let job: Job<D> = Box::new(move |device| {
            // The asker may have gone; nothing to do then.
            let _ = reply.send(f(device));
        });
        self.jobs.send(job).map_err(|_| Error::NotServing)?;
        self.wake.write(1).map_err(|_| Error::NotServing)?;
        result.recv().map_err(|_| Error::NotServing)
    }
}

/// A device ready to be served over vhost-user.
pub struct Backend<D> {
    core: Rc<RefCell<Core<D>>>,
    jobs: Receiver<Job<D>>,
    handle: DeviceHandle<D>,
}

impl<D: DeviceModel> Backend<D> {
    /// Wraps `device`; nothing runs until [`Backend::serve`].
    pub fn new(device: D) -> Result<Self, Error> {
        let (sender, jobs) = channel();
        let wake = EventFd::new(EFD_NONBLOCK).map_err(Error::Setup)?;
        Ok(Backend {
            core: Rc::new(RefCell::new(Core::new(device))),
            jobs,
            handle: DeviceHandle {
                jobs: sender,
                wake: Arc::new(wake),
            },
        })
    }

    /// A handle on the device for other threads.
    pub fn handle(&self) -> DeviceHandle<D> {
        self.handle.clone()
    }

    /// Serves the frontend on `stream`, on this thread, until it disconnects (`Ok`) or the
    /// connection breaks.
    pub fn serve(self, stream: UnixStream) -> Result<(), Error> {
        let kicks = {
            let core = self.core.borrow();
            Kicks::new(
                stream.as_fd(),
                // SAFETY: the eventfd lives in `self.handle` for the whole of `serve`, longer
                // than the epoll registration made from this borrow is used.
                unsafe { BorrowedFd::borrow_raw(self.handle.wake.as_raw_fd()) },
                core.device.fence_event(),
            )
            .map_err(Error::Setup)?
        };
        let handler = Handler::new(Rc::clone(&self.core), kicks.clone());
        let mut requests = BackendReqHandler::from_stream(stream, Arc::new(Mutex::new(handler)));
        let mut ready = Vec::new();
        let mut frame_due = None;
        loop {
            kicks.wait(&mut ready, frame_due).map_err(Error::Wait)?;
            for source in &ready {
                match *source {
                    Ready::Socket => match requests.handle_request() {
                        Ok(()) => {}
                        Err(VhostError::Disconnected) => {
                            self.core.borrow_mut().device.disconnected();
                            return Ok(());
                        }
                        Err(e) if connection_lost(&e) => {
                            self.core.borrow_mut().device.disconnected();
                            return Err(Error::Connection(e));
                        }
                        Err(e) => log::warn!("vhost-user: request failed: {e}"),
                    },
                    Ready::Kick { index, generation } => {
                        self.core.borrow_mut().kicked(index, generation)
                    }
                    Ready::Fence => self.core.borrow_mut().process_fences(),
                    Ready::Jobs => self.run_jobs(),
                }
            }
            frame_due = self.core.borrow_mut().present();
        }
    }

    fn run_jobs(&self) {
        // Consuming the counter first means a job sent during the loop wakes it again.
        let _ = self.handle.wake.read();
        for job in self.jobs.try_iter() {
            job(&mut self.core.borrow_mut().device);
        }
    }
}

/// Serves `device` on `stream`, on this thread, until the frontend disconnects.
pub fn serve<D: DeviceModel>(stream: UnixStream, device: D) -> Result<(), Error> {
    Backend::new(device)?.serve(stream)
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
