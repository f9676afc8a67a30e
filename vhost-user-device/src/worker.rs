//! The serving loop: one thread, one epoll set, holding the vhost-user socket, the kick
//! eventfds, the device's fence event, and a wake-up event for jobs sent from other threads.
//!
//! Everything that touches the device runs on this thread: the renderer behind the GPU model
//! (rutabaga, virglrenderer's GL contexts) is neither `Send` nor usable from a thread other
//! than the one that made its context current. Other threads reach the device by sending a
//! job ([`crate::DeviceHandle::with`]) that this loop runs between requests.
//!
//! The request handler registers and unregisters kick descriptors as the frontend replaces
//! them. Each registration carries the ring index and the generation of its kick descriptor,
//! so an event that raced with a replacement is recognised and ignored.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

const KIND_SHIFT: u32 = 56;
const KIND_KICK: u64 = 1;
const KIND_FENCE: u64 = 2;
const KIND_JOBS: u64 = 3;
const KIND_SOCKET: u64 = 4;

/// What became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The frontend sent a request (or hung up).
    Socket,
    /// Ring `index`'s kick, registered with `generation`.
    Kick { index: usize, generation: u32 },
    /// The device's fence event.
    Fence,
    /// Jobs from other threads are waiting.
    Jobs,
}

/// The loop's epoll set, shared with the request handler (same thread).
#[derive(Clone)]
pub struct Kicks {
    epoll: Rc<Epoll>,
}

impl Kicks {
    /// An epoll set watching the socket, the jobs event, and the fence event if any.
    pub fn new(
        socket: BorrowedFd<'_>,
        jobs: BorrowedFd<'_>,
        fence: Option<BorrowedFd<'_>>,
    ) -> io::Result<Kicks> {
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            socket.as_raw_fd(),
            EpollEvent::new(EventSet::IN, KIND_SOCKET << KIND_SHIFT),
        )?;
        epoll.ctl(
            ControlOperation::Add,
            jobs.as_raw_fd(),
            EpollEvent::new(EventSet::IN, KIND_JOBS << KIND_SHIFT),
        )?;
        if let Some(fence) = fence {
            // Edge-triggered: a fence that completes while the control ring is stopped stays
            // pending in the model and is delivered when the ring starts again.
            epoll.ctl(
                ControlOperation::Add,
                fence.as_raw_fd(),
                EpollEvent::new(
                    EventSet::IN | EventSet::EDGE_TRIGGERED,
                    KIND_FENCE << KIND_SHIFT,
                ),
            )?;
        }
        Ok(Kicks {
            epoll: Rc::new(epoll),
        })
    }

    /// Starts watching `fd` as the kick of ring `index`, generation `generation`.
    pub fn watch(&self, fd: RawFd, index: usize, generation: u32) -> io::Result<()> {
        let token = (KIND_KICK << KIND_SHIFT) | (u64::from(generation) << 16) | (index as u64);
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    }

    /// Stops watching `fd`; must happen before the descriptor is closed, since the frontend
    /// still holds the same open file and epoll would keep reporting it.
    pub fn unwatch(&self, fd: RawFd) {
        // Fails only if `fd` was not registered, which is the state wanted.
        let _ = self
            .epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default());
    }

    /// Waits for the next batch of ready sources, or until `timeout` passed (then `ready`
    /// is empty); `None` waits without end.
    pub fn wait(&self, ready: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        let mut events = [EpollEvent::default(); 16];
        // Rounded up, so a wait for a due time never returns just before it.
        let millis = timeout.map_or(-1, |t| {
            i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        });
        let count = loop {
            match self.epoll.wait(millis, &mut events) {
                Ok(count) => break count,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        ready.clear();
        ready.extend(events[..count].iter().filter_map(|event| {
            let token = event.data();
            match token >> KIND_SHIFT {
                KIND_SOCKET => Some(Ready::Socket),
                KIND_FENCE => Some(Ready::Fence),
                KIND_JOBS => Some(Ready::Jobs),
                KIND_KICK => Some(Ready::Kick {
                    index: (token & 0xffff) as usize,
                    generation: ((token >> 16) & 0xffff_ffff) as u32,
                }),
                _ => None,
            }
        }));
        Ok(())
    }
}
