//! rayvmm's vhost-user relay: it sits between QEMU (the vhost-user frontend) and the jailed
//! GPU process `ray-gpu` (the backend), on two socketpairs, and forwards every vhost-user
//! message after checking it.
//!
//! Why: QEMU trusts its vhost-user backend, and ray-gpu may be under a hostile guest's
//! control. So:
//! - every frontend request is checked against a table ([`rules`]): known request, payload
//!   size, descriptor count and kind (guest-RAM memfd, eventfd, unix socket), fields in range;
//!   anything else is a [`RelayEvent::FrontendViolation`] (a QEMU bug) and is not forwarded;
//! - the data plane is passed through untouched: memory-region memfds and kick/call/err
//!   eventfds travel with their messages, so kicks and interrupts go straight between QEMU and
//!   ray-gpu;
//! - VHOST_USER_GPU_SET_SOCKET is not forwarded: its socket goes to rayvmm
//!   ([`RelayEvent::DisplaySocket`]), so no byte ray-gpu writes reaches QEMU's display code;
//! - ray-gpu may only answer what was asked: after a request that gets a reply, the next
//!   backend message must be exactly that reply (same code, REPLY flag, version 1, exact size,
//!   no descriptors), within [`RelayConfig::reply_timeout`]. Anything else is a
//!   [`RelayEvent::BackendViolation`] and ends the relay. Reads are bounded in size (4 KiB),
//!   descriptors (8) and time, so ray-gpu can neither hang nor exhaust rayvmm or QEMU.
//!
//! The relay runs on one thread, polling both sockets and a stop eventfd. It ends at the first
//! violation or closed peer (reporting it once through the event callback) or when the
//! [`Relay`] is dropped; ending closes its ends of both sockets, which QEMU and ray-gpu see.

mod error;
mod rules;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

pub use error::RelayError;
pub use rules::{FileIdentity, GuestRam};

use rules::{Action, Expected, Negotiation};
use wire::{Message, WaitResult};

/// The two peers of the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// QEMU, the vhost-user frontend.
    Engine,
    /// ray-gpu, the jailed vhost-user backend.
    Gpu,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Engine => "QEMU (vhost-user frontend)",
            Side::Gpu => "ray-gpu (vhost-user backend)",
        })
    }
}

/// What the relay tells rayvmm, through the callback given to [`Relay::spawn`].
#[derive(Debug)]
pub enum RelayEvent {
    /// QEMU sent VHOST_USER_GPU_SET_SOCKET: its display socket, kept for rayvmm (ray-gpu
    /// never sees it). QEMU may send it again (a guest driver restart); each is reported.
    DisplaySocket(UnixStream),
    /// QEMU sent a message the relay refused (a bug in QEMU or in the rules); the relay ended.
    FrontendViolation(String),
    /// ray-gpu broke the protocol (it may be compromised); the relay ended.
    BackendViolation(String),
    /// A peer closed its socket; the relay ended.
    Closed {
        /// Who closed.
        side: Side,
    },
    /// The relay itself failed (polling its sockets); it ended.
    Failed(String),
}

/// How the relay checks and bounds the two peers.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The files memory-table messages may carry: rayvmm's own guest-RAM memfd, or (where
    /// the supervisor does not own guest RAM) any memfd. Either way each region must lie
    /// within its file.
    pub guest_ram: GuestRam,
    /// How long ray-gpu has to answer a request that gets a reply.
    pub reply_timeout: Duration,
    /// How long either peer has to finish a message it started, or to take one sent to it.
    pub io_timeout: Duration,
}

impl RelayConfig {
    /// The bounds rayvmm uses: 5 s for a reply, 5 s for a message to finish.
    pub fn new(guest_ram: FileIdentity) -> RelayConfig {
        RelayConfig {
            guest_ram: GuestRam::File(guest_ram),
            reply_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(5),
        }
    }

    /// The same bounds, with memory regions allowed in any memfd: for a supervisor that does
    /// not own guest RAM (the libvirt backend, where QEMU makes it).
    pub fn any_memfd() -> RelayConfig {
        RelayConfig {
            guest_ram: GuestRam::AnyMemfd,
            reply_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(5),
        }
    }
}

/// The running relay. Dropping it stops the thread and waits for it (at most one message's
/// `io_timeout`: the stop is seen at every wait).
pub struct Relay {
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying between `engine` (QEMU's end's peer) and `gpu` (ray-gpu's end's peer).
    /// `events` is called on the relay's thread: with each display socket, and once with the
    /// reason the relay ended (not when it was stopped by dropping the `Relay`).
    pub fn spawn(
        engine: UnixStream,
        gpu: UnixStream,
        config: RelayConfig,
        events: Box<dyn Fn(RelayEvent) + Send>,
    ) -> io::Result<Relay> {
        engine.set_nonblocking(true)?;
        gpu.set_nonblocking(true)?;
        let stop = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        )?);
        let session = Session {
            engine,
            gpu,
            config,
            stop: Arc::clone(&stop),
            negotiation: Negotiation::default(),
            events,
        };
        let thread = std::thread::Builder::new()
            .name("vhost-user-relay".to_string())
            .spawn(move || session.run())?;
        Ok(Relay {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the relay's thread has ended (after a violation or a closed peer).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // A failed write leaves the counter non-zero or full: either way the thread sees it.
        let _ = self.stop.write(1);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The relay thread's state.
struct Session {
    engine: UnixStream,
    gpu: UnixStream,
    config: RelayConfig,
    stop: Arc<EventFd>,
    negotiation: Negotiation,
    events: Box<dyn Fn(RelayEvent) + Send>,
}

impl Session {
    /// Relays until something ends it, then reports why.
    fn run(mut self) {
        let Err(reason) = self.serve();
        let event = match (&reason, reason.side()) {
            (RelayError::Stopped, _) => return,
            (RelayError::PeerClosed { side }, _) => RelayEvent::Closed { side: *side },
            (_, Some(Side::Engine)) => RelayEvent::FrontendViolation(reason.to_string()),
            (_, Some(Side::Gpu)) => RelayEvent::BackendViolation(reason.to_string()),
            (_, None) => RelayEvent::Failed(reason.to_string()),
        };
        (self.events)(event);
    }

    /// The relay loop: waits for a frontend request (any backend message now is unsolicited)
    /// and handles it. Returns only with the reason it ended.
    fn serve(&mut self) -> Result<std::convert::Infallible, RelayError> {
        loop {
            let mut fds = [
                PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.gpu.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.engine.as_fd(), PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(RelayError::Poll(errno.into())),
            }
            let [stop, gpu, engine] = fds.map(|fd| fd.any().unwrap_or(false));
            if stop {
                return Err(RelayError::Stopped);
            }
            if gpu {
                let msg = self.read(Side::Gpu)?;
                return Err(RelayError::Unsolicited {
                    request: rules::request_name(msg.header.request),
                    code: msg.header.request,
                    flags: msg.header.flags,
                });
            }
            if engine {
                self.handle_request()?;
            }
        }
    }

    /// Reads, checks and carries out one frontend request (with its reply, if it gets one).
    fn handle_request(&mut self) -> Result<(), RelayError> {
        let mut msg = self.read(Side::Engine)?;
        match rules::check_request(&msg, self.config.guest_ram, &mut self.negotiation)? {
            Action::KeepDisplaySocket { ack } => {
                let socket = msg.fds.pop().map(OwnedFd::into);
                if let Some(socket) = socket {
                    (self.events)(RelayEvent::DisplaySocket(socket));
                }
                if ack {
                    let (header, payload) = rules::ack(msg.header.request);
                    self.write(
                        Side::Engine,
                        &Message {
                            header,
                            payload: payload.to_vec(),
                            fds: Vec::new(),
                        },
                    )?;
                }
                Ok(())
            }
            Action::Forward { reply } => {
                self.write(Side::Gpu, &msg)?;
                let code = msg.header.request;
                // Our copies of the descriptors: ray-gpu has its own now.
                drop(msg);
                if let Some(shape) = reply {
                    let reply = self.await_reply(Expected { code, shape })?;
                    self.write(Side::Engine, &reply)?;
                }
                Ok(())
            }
        }
    }

    /// Waits at most `reply_timeout` for ray-gpu's next message and checks that it is the
    /// reply `expected`.
    fn await_reply(&mut self, expected: Expected) -> Result<Message, RelayError> {
        let deadline = Instant::now() + self.config.reply_timeout;
        let waited = wire::wait(
            self.gpu.as_fd(),
            PollFlags::POLLIN,
            self.stop.as_fd(),
            Some(deadline),
        );
        match waited.map_err(RelayError::Poll)? {
            WaitResult::Ready => {}
            WaitResult::Stopped => return Err(RelayError::Stopped),
            WaitResult::TimedOut => {
                return Err(RelayError::ReplyTimeout {
                    request: rules::request_name(expected.code),
                    timeout: self.config.reply_timeout,
                })
            }
        }
        let msg = self.read(Side::Gpu)?;
        rules::check_reply(expected, msg, &mut self.negotiation)
    }

    fn socket(&self, side: Side) -> &UnixStream {
        match side {
            Side::Engine => &self.engine,
            Side::Gpu => &self.gpu,
        }
    }

    fn read(&self, side: Side) -> Result<Message, RelayError> {
        wire::read_message(
            self.socket(side),
            side,
            self.stop.as_fd(),
            self.config.io_timeout,
        )
    }

    fn write(&self, side: Side, msg: &Message) -> Result<(), RelayError> {
        wire::write_message(
            self.socket(side),
            side,
            self.stop.as_fd(),
            self.config.io_timeout,
            msg.header,
            &msg.payload,
            &msg.fds,
        )
    }
}
