//! The ring worker: one thread waiting on the kick eventfds, the device's fence event and a
//! stop event, and serving whichever fired.
//!
//! The request handler registers and unregisters kick descriptors in the worker's epoll set as
//! the frontend replaces them. Each registration carries the ring index and the generation of
//! its kick descriptor, so an event that raced with a replacement is recognised and ignored.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::core::{lock, Core};
use super::device::DeviceModel;

const KIND_SHIFT: u32 = 56;
const KIND_KICK: u64 = 1;
const KIND_FENCE: u64 = 2;
const KIND_STOP: u64 = 3;

/// Packs a kick registration into epoll's user data.
fn kick_token(index: usize, generation: u32) -> u64 {
    (KIND_KICK << KIND_SHIFT) | (u64::from(generation) << 16) | (index as u64 & 0xffff)
}

/// The worker's epoll set, shared with the request handler.
#[derive(Clone)]
pub struct Kicks {
    epoll: Arc<Epoll>,
}

impl Kicks {
    /// Starts watching `fd` as the kick of ring `index`, generation `generation`.
    pub fn watch(&self, fd: RawFd, index: usize, generation: u32) -> io::Result<()> {
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, kick_token(index, generation)),
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
}

/// A running worker thread.
pub struct Worker {
    kicks: Kicks,
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker for `core`, watching the device's fence event if it has one.
    pub fn start<D: DeviceModel>(core: Arc<Mutex<Core<D>>>) -> io::Result<Worker> {
        let epoll = Arc::new(Epoll::new()?);
        let stop = EventFd::new(EFD_NONBLOCK)?;
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, KIND_STOP << KIND_SHIFT),
        )?;
        if let Some(fence) = lock(&core).device.fence_event() {
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
        let kicks = Kicks { epoll };
        let loop_epoll = Arc::clone(&kicks.epoll);
        let thread = thread::Builder::new()
            .name("vu-gpu-rings".into())
            .spawn(move || run(&loop_epoll, &core))?;
        Ok(Worker {
            kicks,
            stop,
            thread: Some(thread),
        })
    }

    /// The epoll set, for the request handler.
    pub fn kicks(&self) -> Kicks {
        self.kicks.clone()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Writing to a fresh eventfd cannot overflow its counter.
        let _ = self.stop.write(1);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("vhost-user ring worker panicked");
            }
        }
    }
}

fn run<D: DeviceModel>(epoll: &Epoll, core: &Mutex<Core<D>>) {
    let mut events = vec![EpollEvent::default(); 16];
    loop {
        let count = match epoll.wait(-1, &mut events) {
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("vhost-user ring worker: epoll_wait failed: {e}");
                return;
            }
        };
        for event in &events[..count] {
            let token = event.data();
            match token >> KIND_SHIFT {
                KIND_STOP => return,
                KIND_FENCE => lock(core).process_fences(),
                KIND_KICK => {
                    let index = (token & 0xffff) as usize;
                    let generation = ((token >> 16) & 0xffff_ffff) as u32;
                    let mut core = lock(core);
                    let Some(vring) = core.vrings.get_mut(index) else {
                        continue;
                    };
                    if vring.kick_generation() != generation || vring.kick().is_none() {
                        continue;
                    }
                    vring.clear_kick();
                    core.process_queue(index);
                }
                _ => {}
            }
        }
    }
}
